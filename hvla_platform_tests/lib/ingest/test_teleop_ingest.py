"""Seed-003 teleop episodes into the lake: landing (write-once, refusals with a reason), raw
publication with the raw checks, quarantine with a one-line reason (the landed files untouched),
and the usable raw episodes read back with the input a derived artifact records."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from hvla_platform.lib.core.keys import raw_teleop_prefix, teleop_landing_prefix, teleop_quarantine_prefix
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import RawTeleopEpisodeManifest, require_manifest
from hvla_platform.lib.ingest.teleop import (TELEOP_CHECKS, check_phase_order, find_teleop_episodes,
                                             ingest_teleop_partition, land_teleop_episode,
                                             list_teleop_landing_partitions, load_raw_teleop_episodes)
from hvla_platform.lib.lineage.graph import upstream
from hvla_platform_tests.lib.formats.teleop.test_teleop_pkl_episode import SMALL_PHASES, episode_folder

DAY, ROBOT = "2026-11-14", "ur5e-001"


def _land_all(lake, root):
    return {r.episode_id or r.source: r for r in (land_teleop_episode(lake, f) for f in find_teleop_episodes(root))}


def _landing_bytes(lake, ep):
    prefix = teleop_landing_prefix(DAY, ROBOT, ep)
    return {k: lake.read_bytes(k) for k in lake.list_keys(prefix)}


class _RunsCode:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_good_episode_is_published_and_read_back(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    episode_folder(tmp_path / "rec", "tp-good")
    landed = _land_all(lake, tmp_path / "rec")
    assert landed["tp-good"].status == "landed" and list_teleop_landing_partitions(lake) == [(DAY, ROBOT)]
    result = ingest_teleop_partition(lake, DAY, ROBOT)
    (out,) = result.episodes
    assert out.status == "published" and out.usable, out.reasons
    assert list(out.checks) == list(TELEOP_CHECKS)
    prefix = raw_teleop_prefix(DAY, ROBOT, "tp-good")
    m = require_manifest(lake, prefix, RawTeleopEpisodeManifest)
    assert m.artifact_type == "raw_teleop_episode" and m.num_frames == 9 and m.fps == 30.0
    assert m.phase_counts == {"teleop": 3, "skill": 2, "correction": 2, "skill_resume": 2}
    assert sorted(f.path for f in m.files)[:2] == ["episode_meta.json", "frame_0000.pkl"]
    assert "metadata.yaml" in {f.path for f in m.files} and m.rights["consent_refs"] == ["consent-2026-0042"]
    assert m.inputs[0].key == teleop_landing_prefix(DAY, ROBOT, "tp-good")
    ((ref, ep),) = load_raw_teleop_episodes(lake, [f"{DAY}|{ROBOT}"])
    assert (ref.key, ref.kind, ref.episode_ids, ref.sha256) == (prefix, "raw_teleop", ["tp-good"], m.sha256())
    assert ep.episode_id == "tp-good" and ep.phases == SMALL_PHASES and ep.images["base_rgb"].shape == (9, 256, 256, 3)
    # lineage names the raw teleop episode as a leaf
    node = upstream(lake, prefix)
    assert node.type == "raw_teleop_episode" and node.episode_ids == ["tp-good"] and not node.children
    # ingesting again changes nothing
    before = {k: lake.sha256(k) for k in lake.list_keys(prefix)}
    assert [e.status for e in ingest_teleop_partition(lake, DAY, ROBOT).episodes] == ["cached"]
    assert {k: lake.sha256(k) for k in lake.list_keys(prefix)} == before


def test_a_pickle_that_runs_code_is_quarantined_with_the_global_named(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    marker = tmp_path / "pwned"
    episode_folder(tmp_path / "rec", "tp-evil", mutate=lambda f: f[4].update(phase=_RunsCode(f"touch {marker}")))
    assert _land_all(lake, tmp_path / "rec")["tp-evil"].status == "landed"
    landed = _landing_bytes(lake, "tp-evil")
    (out,) = ingest_teleop_partition(lake, DAY, ROBOT).episodes
    assert not marker.exists()
    assert out.status == "quarantined" and not out.usable
    assert out.checks["readable"]["detail"] == (f"frame_0004.pkl: refused global '{os.system.__module__}.system' "
                                                "(not in the seed-003 frame format)")
    assert out.checks["phases"]["detail"] == "not checked: the episode is unreadable"
    assert not lake.list_keys(raw_teleop_prefix(DAY, ROBOT, "tp-evil"))  # never published
    q = teleop_quarantine_prefix(DAY, ROBOT, "tp-evil")
    reason = lake.read_json(f"{q}/reason.json")
    assert "\n" not in reason["reason"] and "refused global" in reason["reason"] and reason["stage"] == "raw_teleop"
    assert lake.exists(f"{q}/files/frame_0004.pkl")  # the evidence is kept
    assert _landing_bytes(lake, "tp-evil") == landed  # the landed files are untouched
    with pytest.raises(FileNotFoundError, match="no raw teleop episodes"):
        load_raw_teleop_episodes(lake, [(DAY, ROBOT)])


def _phase(i, label):
    return lambda frames: frames[i].update(phase=label)


# (episode, defect, the check it fails, its detail, other checks the same defect fails)
@pytest.mark.parametrize("episode, mutate, check, detail, also", [
    ("tp-order", _phase(6, "skill"), "phases", "frame 6 goes back from 'correction' to 'skill'", {"frames_complete"}),
    ("tp-start", _phase(0, "skill"), "phases", "the first frame is 'skill'; recording starts with teleop",
     {"frames_complete"}),
    ("tp-skew", lambda f: [x.update(base_timestamp=x["base_timestamp"] + 0.2) for x in f[2:]], "camera_skew",
     "base_rgb 188.0 ms at frame_0002.pkl", set()),
    ("tp-back", lambda f: f[5].update(timestamp=f[3]["timestamp"]), "monotonic",
     "frame stamps do not increase at frame_0005.pkl", {"camera_skew"}),
    ("tp-grip", lambda f: f[1].update(gripper_pos=300), "gripper_range", "gripper_pos 300 at frame_0001.pkl outside 0-255",
     set()),
    ("tp-small", lambda f: [x.update(wrist_rgb=x["wrist_rgb"][:128, :128].copy()) for x in f], "image_shapes",
     "found {'wrist_rgb': [(128, 128, 3)]}", set()),
    ("tp-rate", lambda f: [x.update(timestamp=x["timestamp"] + i * 0.02, base_timestamp=x["base_timestamp"] + i * 0.02,
                                    wrist_timestamp=x["wrist_timestamp"] + i * 0.02) for i, x in enumerate(f)],
     "frame_rate", "median frame interval 53.3 ms", set()),
])
def test_each_raw_check_fails_on_its_defect_and_the_episode_is_not_usable(tmp_path, episode, mutate, check, detail,
                                                                          also):
    lake = LocalLake(tmp_path / "lake")
    episode_folder(tmp_path / "rec", episode, mutate=mutate)
    _land_all(lake, tmp_path / "rec")
    (out,) = ingest_teleop_partition(lake, DAY, ROBOT).episodes
    failed = {n for n, c in out.checks.items() if not c["passed"]}
    assert check in failed and detail in out.checks[check]["detail"], out.checks[check]
    assert failed == {check} | also
    assert out.status == "published" and not out.usable  # raw keeps the evidence; downstream does not use it
    assert json.loads(lake.read_bytes(f"{teleop_quarantine_prefix(DAY, ROBOT, episode)}/reason.json"))["reasons"]
    assert load_raw_teleop_episodes(lake, [(DAY, ROBOT)]) == []


def test_missing_frames_and_bad_meta_are_named(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    gap = episode_folder(tmp_path / "rec", "tp-gap")
    (gap / "frame_0003.pkl").unlink()
    meta = episode_folder(tmp_path / "rec", "tp-meta")
    doc = json.loads((meta / "episode_meta.json").read_text())
    doc["num_frame"] = doc.pop("num_frames")
    (meta / "episode_meta.json").write_text(json.dumps(doc))
    _land_all(lake, tmp_path / "rec")
    outs = {e.episode_id: e for e in ingest_teleop_partition(lake, DAY, ROBOT).episodes}
    c = outs["tp-gap"].checks["frames_complete"]
    assert not c["passed"] and "missing frame(s) ['frame_0003.pkl']" in c["detail"]
    assert "num_frames is 9, the folder holds 8 frame(s)" in c["detail"]
    r = outs["tp-meta"].checks["readable"]
    assert not r["passed"] and "unknown key 'num_frame' (did you mean 'num_frames'?)" in r["detail"]
    assert outs["tp-meta"].status == "quarantined"


def test_rights_come_from_metadata_yaml(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    episode_folder(tmp_path / "rec", "tp-norights", rights=None)
    episode_folder(tmp_path / "rec", "tp-typo", site=None, sitee="lab-a")
    _land_all(lake, tmp_path / "rec")
    outs = {e.episode_id: e for e in ingest_teleop_partition(lake, DAY, ROBOT).episodes}
    assert "metadata.yaml has no 'rights' block" in outs["tp-norights"].checks["rights"]["detail"]
    assert "unknown key 'sitee' (did you mean 'site'?)" in outs["tp-typo"].checks["rights"]["detail"]
    assert all(o.status == "quarantined" for o in outs.values())
    assert not lake.list_keys(raw_teleop_prefix(DAY, ROBOT, "tp-typo"))


def test_landing_refuses_what_is_not_a_teleop_episode_folder(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    nometa = episode_folder(tmp_path / "rec", "tp-nometa")
    (nometa / "metadata.yaml").unlink()
    episode_folder(tmp_path / "rec", "tp-mcap", format=None)
    stray = episode_folder(tmp_path / "rec", "tp-stray")
    (stray / "camera.mp4").write_bytes(b"x")
    landed = {r.source.rsplit("/", 1)[-1]: r
              for r in (land_teleop_episode(lake, f) for f in find_teleop_episodes(tmp_path / "rec"))}
    assert all(r.status == "rejected" for r in landed.values())
    assert "no metadata.yaml" in landed["tp-nometa"].reason
    assert "format is None; a teleop episode folder declares format: seed003_pkl" in landed["tp-mcap"].reason
    assert "unexpected ['camera.mp4']" in landed["tp-stray"].reason
    assert all(lake.exists(f"{r.evidence}/reason.json") for r in landed.values())
    assert list_teleop_landing_partitions(lake) == []


def test_landing_is_write_once(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    folder = episode_folder(tmp_path / "rec", "tp-once")
    assert land_teleop_episode(lake, folder).status == "landed"
    assert land_teleop_episode(lake, folder).status == "already_landed"
    frame = pickle.loads((folder / "frame_0001.pkl").read_bytes())
    frame["gripper_pos"] = 7
    (folder / "frame_0001.pkl").write_bytes(pickle.dumps(frame))
    again = land_teleop_episode(lake, folder)
    assert again.status == "conflict" and "frame_0001.pkl already landed with different content" in again.reason
    landed = pickle.loads(lake.read_bytes(f"{teleop_landing_prefix(DAY, ROBOT, 'tp-once')}/frame_0001.pkl"))
    assert landed["gripper_pos"] == 20


def test_phase_order_rule():
    assert check_phase_order(["teleop", "skill", "skill_resume"]) == (
        False, "['skill_resume'] without the phase before it (teleop -> skill -> correction -> skill_resume)")
    assert check_phase_order(["teleop", "teleop"])[0]
    assert not check_phase_order(["teleop", "armed"])[0]
    assert check_phase_order(list(SMALL_PHASES)) == (
        True, "phases in order: {'teleop': 3, 'skill': 2, 'correction': 2, 'skill_resume': 2}")
