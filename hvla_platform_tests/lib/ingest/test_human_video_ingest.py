"""Human video clips: landing (write-once, refusals kept with the reason), raw publication with its
manifest, quarantine of bad clips, and the landed copy left untouched."""

import shutil

import yaml

from hvla_platform.lib.core.keys import human_video_landing_prefix, human_video_quarantine_prefix, human_video_raw_prefix
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import RawHumanVideoManifest, require_manifest
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.ingest.human_video import (
    find_clips, ingest_clip_partition, land_clip, list_clip_partitions, list_raw_clips)
from hvla_platform.lib.lineage.graph import upstream
from hvla_platform.lib.sim.human_video import clip_metadata, write_clip
from hvla_platform_tests.fixtures.human_video_clips import FPS, sim_frames

DAY, DEVICE = "2026-11-10", "headcam-sim-01"


def _clip(tmp_path, clip_id, role="manipulation", **meta_kw):
    frames, task = sim_frames(role)
    meta = clip_metadata(clip_id=clip_id, device_id=DEVICE, capture_date=DAY, role=role, task=task, seed=0, **meta_kw)
    return write_clip(tmp_path / "src", frames, meta, FPS)


def _landed_snapshot(lake):
    return {k: lake.sha256(k) for k in lake.list_keys("landing-human-video")}


def test_land_and_publish_a_clip(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    clip = _clip(tmp_path, "hv-good-001")
    assert find_clips(tmp_path / "src") == [clip.folder]
    landed = land_clip(lake, clip.folder)
    assert (landed.status, landed.capture_day, landed.robot_id, landed.episode_id) == ("landed", DAY, DEVICE, "hv-good-001")
    assert land_clip(lake, clip.folder).status == "already_landed"
    assert list_clip_partitions(lake) == [(DAY, DEVICE)]
    before = _landed_snapshot(lake)

    result = ingest_clip_partition(lake, DAY, DEVICE)
    (out,) = result.clips
    assert out.status == "published" and out.usable, out.reasons
    assert out.learning_role == "manipulation" and out.probe["num_frames"] == 30 and out.probe["codec"] == "h264"
    prefix = human_video_raw_prefix(DAY, DEVICE, "hv-good-001")
    m = require_manifest(lake, prefix, RawHumanVideoManifest)
    assert m.video_key == f"{prefix}/hv-good-001.mp4" and m.video_sha256 == lake.sha256(m.video_key)
    assert m.episode_ids == ["hv-good-001"] and m.inputs == []
    assert m.rights_obj.contains_human_video and m.rights_obj.requires_face_blur
    assert m.demonstrator_consent_ref in m.rights_obj.consent_refs
    assert lake.read_bytes(m.video_key) == clip.video.read_bytes()  # byte for byte
    assert [x.clip_id for x in list_raw_clips(lake)] == ["hv-good-001"]
    # write-once: a second run finds it cached; the landed copy is untouched
    assert ingest_clip_partition(lake, DAY, DEVICE).clips[0].status == "cached"
    assert _landed_snapshot(lake) == before
    # lineage sees the clip as a leaf
    node = upstream(lake, prefix)
    assert node.type == "raw_human_video_clip"


def test_misspelled_key_is_refused_at_ingest_with_the_key_named(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    clip = _clip(tmp_path, "hv-typo-001")
    meta = yaml.safe_load((clip.folder / "metadata.yaml").read_text())
    meta["learning_rol"] = meta.pop("learning_role")
    (clip.folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    assert land_clip(lake, clip.folder).status == "landed"  # identity is fine: it lands, raw refuses it
    before = _landed_snapshot(lake)
    (out,) = ingest_clip_partition(lake, DAY, DEVICE).clips
    assert out.status == "quarantined" and not out.usable
    assert "unknown key 'learning_rol' (did you mean 'learning_role'?)" in out.checks["rights"]["detail"]
    reason = lake.read_json(f"{human_video_quarantine_prefix(DAY, DEVICE, 'hv-typo-001')}/reason.json")
    assert any("learning_rol" in r for r in reason["reasons"]) and "\n" not in reason["reasons"][0]
    assert lake.exists(f"{human_video_quarantine_prefix(DAY, DEVICE, 'hv-typo-001')}/files/hv-typo-001.mp4")
    assert lake.read_manifest(human_video_raw_prefix(DAY, DEVICE, "hv-typo-001")) is None
    assert _landed_snapshot(lake) == before


def test_human_video_rules_contains_human_video_and_consent(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    a = _clip(tmp_path, "hv-noflag-001")
    meta = yaml.safe_load((a.folder / "metadata.yaml").read_text())
    meta["rights"]["contains_human_video"] = False
    (a.folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    b = _clip(tmp_path, "hv-noconsent-001")
    meta = yaml.safe_load((b.folder / "metadata.yaml").read_text())
    meta["rights"]["consent_refs"] = ["someone-else"]
    (b.folder / "metadata.yaml").write_text(yaml.safe_dump(meta))
    for c in (a, b):
        assert land_clip(lake, c.folder).status == "landed"
    outs = {o.clip_id: o for o in ingest_clip_partition(lake, DAY, DEVICE).clips}
    assert "contains_human_video must be true" in outs["hv-noflag-001"].checks["rights"]["detail"]
    assert "consent_ref 'consent-hv-sim-001' is not among rights.consent_refs" in outs["hv-noconsent-001"].checks["rights"]["detail"]
    assert not any(o.usable for o in outs.values())


def test_truncated_video_is_quarantined_and_refusals_at_landing_are_kept(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    bad = _clip(tmp_path, "hv-trunc-001")
    data = bad.video.read_bytes()
    bad.video.write_bytes(data[: len(data) // 3])  # a copy cut short
    assert land_clip(lake, bad.folder).status == "landed"
    (out,) = ingest_clip_partition(lake, DAY, DEVICE).clips
    assert out.status == "quarantined" and not out.checks["readable"]["passed"]
    assert out.checks["readable"]["detail"].startswith(human_video_landing_prefix(DAY, DEVICE, "hv-trunc-001"))

    two = _clip(tmp_path, "hv-two-001")
    shutil.copy(two.video, two.folder / "second.mp4")
    refused = land_clip(lake, two.folder)
    assert refused.status == "rejected" and "exactly one .mp4" in refused.reason
    assert lake.exists(f"{refused.evidence}/reason.json")
    nometa = _clip(tmp_path, "hv-nometa-001")
    (nometa.folder / "metadata.yaml").unlink()
    assert land_clip(lake, nometa.folder).status == "rejected"


def test_identifiable_people_use_keeps_faces_and_robot_rights_are_unchanged():
    base = {"site": "s", "customer": "c", "rights": {
        "data_owner": "o", "license": "l", "consent_refs": [], "allowed_uses": ["internal_training"],
        "retention_until": "2031-01-01", "contains_human_video": False}}
    robot = Rights.from_episode_metadata(base)
    assert not robot.requires_face_blur and not robot.identifiable_people_allowed
    assert set(robot.to_dict()) == {"data_owners", "sites", "customers", "consent_refs", "licenses", "allowed_uses",
                                    "retention_until", "contains_human_video", "contains_customer_environment"}
    human = Rights.from_episode_metadata({**base, "rights": {**base["rights"], "contains_human_video": True,
                                                             "allowed_uses": ["internal_training",
                                                                              "identifiable_people_training"]}})
    assert human.identifiable_people_allowed and not human.requires_face_blur
