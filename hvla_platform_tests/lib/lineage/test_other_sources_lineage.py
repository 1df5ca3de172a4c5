"""Lineage over the raw sources beside robot MCAP episodes: a seed-003 teleop episode and an
action-free human video clip, each landed and ingested into a local lake by the platform's own
ingest, each with a real derived release (the teleop ``planner`` target written by LeRobot, the
``manipulation`` bucket release written by LeRobot) and a mixture of the two. ``upstream`` of a
derived artifact ends in the raw leaves; ``downstream`` of a consent, an id or a raw prefix reaches
every artifact built from them; the text answers name and count them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import RawHumanVideoManifest, RawTeleopEpisodeManifest, require_manifest
from hvla_platform.lib.dataset.mixture import build_mixture
from hvla_platform.lib.dataset.mixture_spec import MixtureSpec
from hvla_platform.lib.dataset.teleop_lerobot import publish_teleop_lerobot
from hvla_platform.lib.dataset.teleop_targets import TargetOptions, teleop_sources
from hvla_platform.lib.dataset.video_release import build_video_release, parse_video_release_spec
from hvla_platform.lib.ingest.human_video import ingest_clip_partition, land_clip
from hvla_platform.lib.ingest.teleop import ingest_teleop_partition, land_teleop_episode, load_raw_teleop_episodes
from hvla_platform.lib.lineage import graph as lin
from hvla_platform.lib.lineage.standing import annotate_tree
from hvla_platform.lib.sim.human_video import clip_metadata, write_clip
from hvla_platform.lib.sim.recorder import default_rights
from hvla_platform_tests.fixtures.human_video_clips import FPS, sim_frames
from hvla_platform_tests.lib.formats.teleop.test_teleop_pkl_episode import episode_folder

TP_DAY, TP_ROBOT, TP_EP, TP_CONSENT = "2026-11-14", "ur5e-001", "tp-lin-001", "consent-tp-0007"
HV_DAY, HV_DEVICE, HV_CLIP, HV_CONSENT = "2026-11-10", "headcam-sim-01", "hv-lin-001", "consent-hv-0009"
TP_RAW = f"raw-teleop/{TP_DAY}/{TP_ROBOT}/{TP_EP}"
HV_RAW = f"raw-human-video/{HV_DAY}/{HV_DEVICE}/{HV_CLIP}"


def build_other_sources_lake(root: Path) -> dict:
    """A local lake with one teleop episode (9 frames, 256 × 256 images) and one 3 s manipulation
    clip, both landed and ingested; the teleop ``planner`` target as LeRobot (64 × 64), the
    clip's bucket release and a mixture of the two. Returns the prefixes (about 15–25 s of CPU)."""
    lake = LocalLake(root / "lake")
    folder = episode_folder(root / "rec", TP_EP, rights=default_rights(TP_DAY, consent_ref=TP_CONSENT))
    assert land_teleop_episode(lake, folder).status == "landed"
    assert [e.status for e in ingest_teleop_partition(lake, TP_DAY, TP_ROBOT).episodes] == ["published"]
    loaded = load_raw_teleop_episodes(lake, [f"{TP_DAY}|{TP_ROBOT}"])
    sources = teleop_sources(lake, [(ref, ep) for ref, ep in loaded])
    planner = publish_teleop_lerobot(lake, sources, "planner", options=TargetOptions(image_size=64),
                                     partitions=[f"{TP_DAY}|{TP_ROBOT}"])

    frames, task = sim_frames("manipulation")
    meta = clip_metadata(clip_id=HV_CLIP, device_id=HV_DEVICE, capture_date=HV_DAY, role="manipulation", task=task,
                         seed=0, consent_ref=HV_CONSENT)
    clip = write_clip(root / "clips", frames, meta, FPS)
    assert land_clip(lake, clip.folder).status == "landed"
    assert [c.status for c in ingest_clip_partition(lake, HV_DAY, HV_DEVICE).clips] == ["published"]
    video = build_video_release(lake, parse_video_release_spec(
        {"name": "hv-mani-lin", "repo_id": "hvla/human-video-manipulation", "bucket": "manipulation", "fps": 10}))

    spec = MixtureSpec.from_mapping({
        "name": "lin-cotrain", "repo_id": "hvla/lin-cotrain", "kind": "mixture",
        "sources": [{"release": planner.manifest.release, "weight": 0.7},
                    {"release": video.manifest.release, "weight": 0.3}]}, source="lin-cotrain.yaml")
    mixture = build_mixture(lake, spec)
    return {"lake": lake, "planner": planner.prefix, "video": video.prefix, "mixture": mixture.prefix,
            "teleop_folder": folder, "clip_folder": clip.folder}


@pytest.fixture(scope="module")
def sources_lake(tmp_path_factory) -> dict:
    return build_other_sources_lake(tmp_path_factory.mktemp("other-sources"))


def test_upstream_of_each_release_ends_in_its_raw_leaf(sources_lake):
    lake = sources_lake["lake"]
    tree = lin.upstream(lake, sources_lake["planner"])
    assert tree.type == "lerobot_dataset"
    (leaf,) = tree.children
    tp = require_manifest(lake, TP_RAW, RawTeleopEpisodeManifest)
    assert (leaf.type, leaf.key, leaf.episode_ids, leaf.children) == ("raw_teleop_episode", TP_RAW, [TP_EP], [])
    assert leaf.sha256 == tp.episode_sha256 and leaf.sha256_matches is True
    assert leaf.info["robot_id"] == TP_ROBOT and leaf.rights["consent_refs"] == [TP_CONSENT]
    assert [n.key for n in tree.raw_episodes()] == [TP_RAW]

    tree = lin.upstream(lake, sources_lake["video"])
    (leaf,) = tree.children
    hv = require_manifest(lake, HV_RAW, RawHumanVideoManifest)
    assert (leaf.type, leaf.key, leaf.episode_ids, leaf.children) == ("raw_human_video_clip", HV_RAW, [HV_CLIP], [])
    assert leaf.sha256 == hv.video_sha256 == lake.sha256(hv.video_key) and leaf.sha256_matches is True
    assert leaf.info["device_id"] == HV_DEVICE and leaf.info["learning_role"] == "manipulation"


def test_upstream_of_the_mixture_names_and_counts_both_sources(sources_lake):
    lake = sources_lake["lake"]
    tree = lin.upstream(lake, sources_lake["mixture"])
    assert tree.type == "mixture_release"
    assert sorted(c.key for c in tree.children) == sorted([sources_lake["planner"], sources_lake["video"]])
    assert [(n.type, n.key) for n in tree.raw_episodes()] == [("raw_human_video_clip", HV_RAW),
                                                               ("raw_teleop_episode", TP_RAW)]
    text = lin.render_tree(tree)
    assert f"raw teleop {TP_EP} | episode sha256 " in text and f"robot {TP_ROBOT} | day {TP_DAY}" in text
    assert f"raw clip {HV_CLIP} | video sha256 " in text and f"device {HV_DEVICE} | day {HV_DAY}" in text
    assert text.splitlines()[-1] == ("= 1 raw episode(s) from 1 robot(s), 2 capture day(s), "
                                     "1 human video clip(s) from 1 device(s)")
    summary = annotate_tree(lake, tree)
    assert summary.line() == text.splitlines()[-1]
    assert (summary.episode_ids, summary.robots, summary.clip_ids, summary.devices) == (
        [TP_EP], [TP_ROBOT], [HV_CLIP], [HV_DEVICE])
    assert summary.capture_days == [HV_DAY, TP_DAY] and not summary.missing and not summary.withdrawn


@pytest.mark.parametrize("query", [f"consent:{TP_CONSENT}", TP_EP, TP_RAW, "customer:internal"])
def test_downstream_of_the_teleop_episode_reaches_its_target_and_the_mixture(sources_lake, query):
    lake = sources_lake["lake"]
    hits = {h.key: h for h in lin.downstream(lake, query)}
    assert hits[TP_RAW].type == "raw_teleop_episode" and hits[TP_RAW].episode_ids == [TP_EP]
    assert hits[sources_lake["planner"]].type == "lerobot_dataset"
    assert hits[sources_lake["mixture"]].type == "mixture_release"
    assert TP_EP in hits[sources_lake["mixture"]].episode_ids
    if query != "customer:internal":  # the clip's customer is internal too
        assert set(hits) == {TP_RAW, sources_lake["planner"], sources_lake["mixture"]}


@pytest.mark.parametrize("query", [f"consent:{HV_CONSENT}", HV_CLIP, HV_RAW])
def test_downstream_of_the_clip_reaches_its_bucket_release_and_the_mixture(sources_lake, query):
    lake = sources_lake["lake"]
    hits = lin.downstream(lake, query)
    assert [(h.type, h.key, h.episode_ids) for h in hits] == [
        ("raw_human_video_clip", HV_RAW, [HV_CLIP]),
        ("lerobot_dataset", sources_lake["video"], [HV_CLIP]),
        ("mixture_release", sources_lake["mixture"], [HV_CLIP])]
    text = lin.render_hits(query, hits)
    assert text.splitlines()[0] == f"downstream of {query}: 3 artifact(s)"
    assert f"  {sources_lake['video']}  (1 of the episodes: {HV_CLIP})" in text


def test_downstream_refuses_a_release_and_suggests_a_clip_id(sources_lake):
    lake = sources_lake["lake"]
    with pytest.raises(lin.LineageError, match="not a raw episode; downstream takes a raw episode "
                                               r"\(robot or teleop\) or human video clip"):
        lin.downstream(lake, sources_lake["video"])
    with pytest.raises(lin.LineageError, match=f"did you mean '{HV_CLIP}'"):
        lin.downstream(lake, "hv-lin-00l")
    with pytest.raises(lin.LineageError, match=f"did you mean '{HV_CONSENT}'"):
        lin.downstream(lake, "consent:consent-hv-009")
