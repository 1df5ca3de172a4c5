"""lerobot-doctor as a peer reviewer of the LeRobot datasets our pipeline writes.

* The release built from the committed demo recordings passes ``lerobot-doctor check --ci`` with no
  error; its warnings are all of kinds docs/peer_validation.md explains.
* Planted defects (frozen joint, black camera segment, timestamp jump) go through the real pipeline
  (landing → raw → QA + sync → release); our checks flag each of them, lerobot-doctor flags those it
  can see in a LeRobot dataset, and every episode lerobot-doctor flags is flagged by the mapped check
  of ours (:func:`hvla_platform_tests.peer.doctor.doctor_findings_to_our_checks`).

The planted recordings are the test fixture's synthetic ones, not copies of the simulated demo
recordings: the simulated expert holds its arm targets bit-identical at the start and end of every
episode, which lerobot-doctor reports as "frozen actions" in every demo episode (see the clean test),
so on simulated copies its per-episode findings could not be attributed to the planted defects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.ingest.landing import find_recordings, land_recording, list_landing_partitions
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.processing.qa.decisions import record_decision
from hvla_platform.lib.dataset.timestamps import check_lerobot_timestamps
from hvla_platform_tests.peer.doctor import (
    DATASET_TIMESTAMPS,
    DoctorError,
    doctor_findings_to_our_checks,
    parse_finding,
    run_lerobot_doctor,
    uncovered,
)
from hvla_platform.lib.formats.mcap.streams import read_episode_streams
from hvla_platform.lib.formats.recording.contract import CAMERA_TOPICS
from hvla_platform.lib.formats.recording.mcap_writer import RecordingWriter
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.fixtures.recordings import write_recording

REPO = Path(__file__).resolve().parents[2]
RECORDINGS = REPO / "data" / "recordings"
DEFAULT_SPEC = REPO / "releases" / "g1-reach-v1.yaml"

#: Doctor finding kinds on the demo release that are properties of the demo data, not defects
#: (docs/peer_validation.md, "Findings on the demo release").
DEMO_KINDS = {"frozen_action", "action_at_bound", "zero_variance", "constant_feature", "chunk_size", "summary"}
#: Dataset-level kinds (they name no episode) that are expected on the synthetic planted data.
DATASET_LEVEL_OK = {"zero_variance", "constant_feature", "chunk_size", "summary"}


def _pipeline(lake: LocalLake, recordings: Path, approve: bool = False) -> dict[str, object]:
    """Land, ingest and convert every recording under ``recordings``; return the conversions by
    episode id (converted or not). With ``approve``, every episode failing a QA check is approved
    by a supervisor decision so that a release keeps it."""
    for rec in find_recordings(recordings):
        assert land_recording(lake, rec).status == "landed"
    convs = {}
    for day, robot in list_landing_partitions(lake):
        ingest_partition(lake, day, robot)
        for e in convert_partition(lake, day, robot, SyncConfig(fps=20)).episodes:
            convs[e.episode_id] = e
            if approve and any(not c["passed"] for c in e.qa_checks.values()):
                record_decision(lake, e.episode_id, "approve", "peer validation: let the defect reach the dataset")
    return convs


#: Consequences of a frozen measured joint whose command moves: the per-joint tracking check (issue 14),
#: and the joint jumping back faster than it can move when it resumes (``joint_velocity``).
TRACKING = {"action_state_divergence", "joint_velocity"}


def _failing(conv) -> set[str]:
    return {k for k, c in conv.qa_checks.items() if not c["passed"]}


def _ours_by_index(manifest: dict, convs: dict, ds_checks: dict[int, dict]) -> dict[int, set[str]]:
    """LeRobot episode index → our failing checks (episode QA + the dataset-level timestamp check)."""
    out = {}
    for ep_id, idx in manifest["episode_index"].items():
        out[idx] = _failing(convs[ep_id]) | ({DATASET_TIMESTAMPS} if not ds_checks[idx]["passed"] else set())
    return out


def _comparison(report, ours: dict[int, set[str]], names: dict[int, str]) -> str:
    """Side-by-side table for assertion messages: episode → doctor's findings vs our failing checks."""
    by_ep = report.flagged_episodes()
    lines = ["episode | lerobot-doctor | ours"]
    for idx in sorted(names):
        doc = "; ".join(f"[{f.severity}] {f.group}: {f.message}" for f in by_ep.get(idx, [])) or "-"
        lines.append(f"{idx} {names[idx]} | {doc} | {sorted(ours.get(idx, set())) or '-'}")
    lines.append("dataset-level: " + " || ".join(f"[{f.severity}] {f.group}: {f.message}"
                                                 for f in report.findings if not f.episodes))
    return "\n".join(lines)


# --------------------------------------------------------------------------- clean demo release


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    lake = LocalLake(tmp_path_factory.mktemp("clean") / "lake")
    convs = _pipeline(lake, RECORDINGS)
    build = build_release(lake, ReleaseSpec.from_yaml(DEFAULT_SPEC.read_text()))
    with lake.local_artifact(build.prefix) as root:
        dest = tmp_path_factory.mktemp("clean-ds") / "dataset"
        shutil.copytree(root, dest)
    return convs, build.manifest.to_dict(), dest, run_lerobot_doctor(dest)


def test_demo_release_passes_lerobot_doctor_ci_without_errors(clean):
    convs, manifest, root, report = clean
    assert manifest["num_episodes"] == 8 and len(convs) == 8
    assert report.errors == [], "\n".join(report.summary_lines())
    assert report.exit_code == 0 and report.overall_severity in ("PASS", "WARN")
    # the CLI exit code itself, as CI runs it (no --json, default --fail-on fail)
    ci = subprocess.run([str(Path(sys.executable).parent / "lerobot-doctor"), "check", str(root), "--ci"],
                        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert ci.returncode == 0, ci.stderr
    assert json.loads(ci.stdout)["summary"]["FAIL"] == 0
    # the format-level groups are clean
    for group in ("Metadata & Format Compliance", "Temporal Consistency", "Video Integrity",
                  "Feature Consistency", "Training Readiness", "Portability"):
        assert report.groups[group] == "PASS", (group, report.by_group().get(group))
    # our side: every episode passes every QA check and the dataset-level timestamp check
    assert {e: sorted(_failing(c)) for e, c in convs.items() if _failing(c)} == {}
    ts = check_lerobot_timestamps(root)
    assert sorted(ts) == list(range(8)) and all(c["passed"] for c in ts.values()), ts


def test_demo_release_warnings_are_the_documented_ones(clean):
    convs, manifest, root, report = clean
    unknown = [f"[{f.severity}] {f.group}: {f.message} (kind {f.kind})" for f in report.findings
               if not set(f.kinds) <= DEMO_KINDS]
    assert unknown == [], "doctor reports something docs/peer_validation.md does not explain:\n" + "\n".join(unknown)
    # the one episode-level finding: the simulated expert's bit-identical hold phases, in every episode;
    # none of our checks looks at held commands, so it is the documented gap (and nothing else is)
    gaps = uncovered(report, {i: set() for i in range(8)})
    assert {report_kind for _, key, _ in gaps for report_kind in
            next(f.kinds for f in report.findings if f.key == key)} == {"frozen_action"}
    assert sorted({ep for ep, _, _ in gaps}) == list(range(8))


# --------------------------------------------------------------------------- planted defects

PLANTED = {  # episode id → fixture defects
    "ep-clean-1": (), "ep-clean-2": (),
    "ep-frozen": ("frozen_joint",), "ep-black": ("black_camera",), "ep-jump": ("clock_jump",),
    "ep-frozen-black": ("frozen_joint", "black_camera"),
}
STUCK = ("ep-stuck-1", "ep-stuck-2")  # robot g1-009: left elbow encoder dead from 0.2 s on
JUMP_EPISODE, JUMP_FRAME, JUMP_S = "ep-clean-2", 30, 0.8  # dataset-level timestamp jump


def _copy_with_stuck_joint(src: Path, dst_root: Path, episode_id: str, joint: str, from_s: float) -> Path:
    """Copy a recording folder, rewriting its MCAP so that ``joint``'s measured position stays
    bit-identical from ``from_s`` seconds to the end (a dead encoder); every other stream is kept."""
    s = read_episode_streams(next(src.glob("*.mcap")))
    out = dst_root / episode_id
    out.mkdir(parents=True)
    w = RecordingWriter(out / f"{episode_id}_0.mcap")
    js = s.joint_states
    pos = js.position.copy()
    j = js.names.index(joint)
    t0 = int(js.stamps_ns[0])
    k = int(np.searchsorted(js.stamps_ns, t0 + int(from_s * 1e9)))
    pos[k:, j] = pos[k, j]
    for st, p, v in zip(js.stamps_ns, pos, js.velocity):
        w.joint_state(int(st), int(st) + 1_000_000, js.names, p, v)
    for st, p in zip(s.arm_command.stamps_ns, s.arm_command.position):
        w.arm_command(int(st), int(st) + 500_000, s.arm_command.names, p)
    for st, (f, l, y, h) in zip(s.locomotion_stamps_ns, s.locomotion):
        w.locomotion(int(st), int(st) + 500_000, int(f), int(l), int(y), float(h))
    w.task(t0, s.task)
    for cam, im in s.cameras.items():
        assert cam in CAMERA_TOPICS
        for st, data, fmt in zip(im.stamps_ns, im.frames, im.formats):
            w.image(cam, int(st), int(st) + 10_000_000, data, fmt)
    w.close()
    meta = yaml.safe_load((src / "metadata.yaml").read_text())
    meta["episode_id"] = episode_id
    (out / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (out / "operator_notes.md").write_text(f"# {episode_id}\n\nCopy of {src.name} with {joint} stuck from {from_s} s.\n")
    return out


def _plant_timestamp_jump(root: Path, episode_index: int, frame: int, jump_s: float) -> None:
    """In a copy of a LeRobot dataset, add ``jump_s`` to the timestamps of ``episode_index`` from
    ``frame`` on (what a writer that did not resample a clock jump would produce)."""
    for f in sorted((root / "data").rglob("*.parquet")):
        t = pq.read_table(f)
        ep = t.column("episode_index").to_numpy()
        fi = t.column("frame_index").to_numpy()
        ts = t.column("timestamp").to_numpy().copy()
        sel = (ep == episode_index) & (fi >= frame)
        if sel.any():
            ts[sel] += jump_s
            i = t.schema.get_field_index("timestamp")
            t = t.set_column(i, t.schema.field(i), pa.array(ts, type=t.schema.field(i).type))
            pq.write_table(t, f)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    base = tmp_path_factory.mktemp("planted")
    recs = base / "recs"
    for i, (ep, defects) in enumerate(PLANTED.items()):
        write_recording(recs / "a", episode_id=ep, seed=40 + i, duration_s=3.0, defects=defects)
    for i, ep in enumerate(STUCK):  # distinct sources: copies of one recording are near-duplicates to doctor
        src = write_recording(base / "src", episode_id=f"{ep}-src", robot_id="g1-009", seed=60 + i, duration_s=2.5)
        _copy_with_stuck_joint(src, recs / "b", ep, "left_elbow_joint", 0.2)
    lake = LocalLake(base / "lake")
    convs = _pipeline(lake, recs, approve=True)
    out = {}
    for name, robot in (("planted-v1", "g1-001"), ("stuck-v1", "g1-009")):
        spec = ReleaseSpec.from_yaml(yaml.safe_dump({
            "name": name, "repo_id": f"hvla/{name.split('-')[0]}", "fps": 20, "min_quality": 0.0,
            "heldout": {"fraction": 0.0}, "partitions": [{"capture_day": "2026-11-10", "robot_id": robot}]}))
        build = build_release(lake, spec)
        with lake.local_artifact(f"lerobot/{spec.repo_id}/{spec.name}") as root:
            dest = base / name
            shutil.copytree(root, dest)
        out[name] = (build.manifest.to_dict(), dest, run_lerobot_doctor(dest))
    jumped = base / "planted-v1-tsjump"
    shutil.copytree(out["planted-v1"][1], jumped)
    _plant_timestamp_jump(jumped, out["planted-v1"][0]["episode_index"][JUMP_EPISODE], JUMP_FRAME, JUMP_S)
    out["tsjump"] = (out["planted-v1"][0], jumped, run_lerobot_doctor(jumped))
    return convs, out


def test_our_qa_flags_every_planted_defect_at_its_frames(planted):
    convs, _ = planted
    assert _failing(convs["ep-clean-1"]) == set() and _failing(convs["ep-clean-2"]) == set()
    # a frozen measured joint also stops following its command: the per-joint tracking check
    # (action_state_divergence, issue 14) sees that consequence too
    assert _failing(convs["ep-frozen"]) - TRACKING == {"frozen_joints"}
    assert "left_elbow_joint" in convs["ep-frozen"].qa_checks["frozen_joints"]["detail"]
    assert _failing(convs["ep-black"]) == {"camera_black"}
    assert all(16 <= f <= 30 for f in convs["ep-black"].qa_checks["camera_black"]["frames"])
    assert _failing(convs["ep-frozen-black"]) - TRACKING == {"frozen_joints", "camera_black"}
    for ep in STUCK:
        assert _failing(convs[ep]) - TRACKING == {"frozen_joints"}, convs[ep].qa_checks
        assert "left_elbow_joint" in convs[ep].qa_checks["frozen_joints"]["detail"]
    # a raw clock jump: our clock_jumps check flags it, and synchronisation refuses the episode
    # (0.8 s with no camera frame → camera coverage 80 %), so it never reaches a LeRobot dataset
    jump = convs["ep-jump"]
    assert "clock_jumps" in _failing(jump), jump.qa_checks["clock_jumps"]
    assert re.search(r"largest 0\.8\d\d s", jump.qa_checks["clock_jumps"]["detail"]), jump.qa_checks["clock_jumps"]
    assert jump.status == "failed" and "camera_coverage" in jump.reason


def test_raw_clock_jump_never_reaches_the_dataset(planted):
    _, out = planted
    manifest, root, report = out["planted-v1"]
    assert "ep-jump" not in manifest["episode_index"] and "ep-jump" in manifest["excluded"]
    assert sorted(manifest["episode_index"]) == sorted(set(PLANTED) - {"ep-jump"})
    assert all(c["passed"] for c in check_lerobot_timestamps(root).values())
    assert report.groups["Temporal Consistency"] == "PASS", report.by_group().get("Temporal Consistency")


def test_timestamp_jump_in_the_dataset_flagged_by_doctor_and_by_ours_at_the_same_frame(planted):
    convs, out = planted
    manifest, root, report = out["tsjump"]
    idx = manifest["episode_index"][JUMP_EPISODE]
    ours = check_lerobot_timestamps(root)
    assert [i for i, c in ours.items() if not c["passed"]] == [idx], ours
    assert ours[idx]["frames"] == [JUMP_FRAME - 1] and f"{JUMP_S + 0.05:+.3f} s" in ours[idx]["detail"]
    gaps = [f for f in report.findings if f.kind == "timestamp_gap" and f.episodes]
    assert gaps and {e for f in gaps for e in f.episodes} == {idx}, "\n".join(report.summary_lines())
    assert any(f.group == "Temporal Consistency" and f.frames == (JUMP_FRAME - 1,) for f in gaps)
    assert report.errors == [] and report.exit_code == 0  # doctor rates a timestamp gap a warning
    mapping = doctor_findings_to_our_checks(report)
    assert all(DATASET_TIMESTAMPS in mapping[f.key] for f in gaps)
    names = {i: e for e, i in manifest["episode_index"].items()}
    ours_by = _ours_by_index(manifest, convs, ours)
    assert uncovered(report, ours_by) == [], _comparison(report, ours_by, names)


def test_frozen_joint_across_a_robots_episodes_flagged_by_doctor_and_ours(planted):
    convs, out = planted
    manifest, root, report = out["stuck-v1"]
    info = json.loads((root / "meta" / "info.json").read_text())
    stuck = [f for f in report.findings if f.kind == "stuck_actuator"]
    names = {i: e for e, i in manifest["episode_index"].items()}
    ours_by = _ours_by_index(manifest, convs, check_lerobot_timestamps(root))
    table = _comparison(report, ours_by, names)
    assert stuck, "doctor did not report the stuck joint:\n" + table
    for f in stuck:
        joint = info["features"][f.feature]["names"][f.dim]
        assert joint == "left_elbow_joint", (f.message, joint)
        assert "frozen_joints" in doctor_findings_to_our_checks(report)[f.key]
        ours_flagging = [i for i, checks in ours_by.items() if "frozen_joints" in checks
                         and joint in convs[names[i]].qa_checks["frozen_joints"]["detail"]]
        assert len(ours_flagging) >= f.episodes_affected == len(STUCK), table
    assert uncovered(report, ours_by) == [], table


@pytest.mark.parametrize("scenario", ["planted-v1", "stuck-v1", "tsjump"])
def test_ours_flag_every_episode_doctor_flags(planted, scenario):
    convs, out = planted
    manifest, root, report = out[scenario]
    names = {i: e for e, i in manifest["episode_index"].items()}
    ours_by = _ours_by_index(manifest, convs, check_lerobot_timestamps(root))
    table = _comparison(report, ours_by, names)
    assert report.errors == [], table
    assert uncovered(report, ours_by) == [], "doctor flags episodes none of our mapped checks flags:\n" + table
    # findings that name no episode: dataset-level properties of the synthetic data, or covered
    # dataset-wide (the stuck actuator, checked joint by joint above)
    mapping = doctor_findings_to_our_checks(report)
    loose = [f.key for f in report.findings if not f.episodes and not set(f.kinds) <= DATASET_LEVEL_OK
             and not (f.kind == "stuck_actuator" and "frozen_joints" in mapping[f.key])]
    assert loose == [], table


def test_what_doctor_cannot_see_is_what_the_docs_say(planted):
    """docs/peer_validation.md: lerobot-doctor 0.2.0 does not look at video pixels (black segment)
    and only reports a frozen joint when it is static for > 80 % of > 80 % of the episodes; a
    1.2 s freeze in one episode passes it. If this fails, doctor learned something: update the docs."""
    convs, out = planted
    manifest, root, report = out["planted-v1"]
    names = {i: e for e, i in manifest["episode_index"].items()}
    ours_by = _ours_by_index(manifest, convs, check_lerobot_timestamps(root))
    table = _comparison(report, ours_by, names)
    by_ep = report.flagged_episodes()
    for ep in ("ep-frozen", "ep-black", "ep-frozen-black"):
        assert ours_by[manifest["episode_index"][ep]], table
        assert manifest["episode_index"][ep] not in by_ep, table
    assert not [f for f in report.findings if f.kind in ("stuck_actuator", "frozen_action")], table


# --------------------------------------------------------------------------- the runner itself


def test_runner_refuses_a_path_that_is_not_a_local_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta/info.json"):
        run_lerobot_doctor(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text("{not json")
    with pytest.raises(DoctorError, match="Error loading dataset"):
        run_lerobot_doctor(tmp_path)


def test_parser_reads_episode_frame_and_feature_from_doctor_messages():
    f = parse_finding("Temporal Consistency", "WARN", "Episode 3: 1 dropped frame gap(s) at frame indices [29]")
    assert (f.kind, f.episodes, f.frames) == ("timestamp_gap", (3,), (29,))
    f = parse_finding("Anomaly Detection", "WARN", "observation.state[6]: stuck/static in 2/2 episodes "
                      "(>80% unchanged each) -- possible stuck actuator or unused DOF")
    assert (f.kind, f.feature, f.dim, f.episodes_affected, f.episodes) == ("stuck_actuator", "observation.state", 6, 2, ())
    f = parse_finding("Per-Episode Summary", "WARN", "Episode 5: 2 dropped frame(s); 3 action jump(s) in action")
    assert f.episodes == (5,) and f.kinds == ("timestamp_gap", "action_jump")
    f = parse_finding("Episode Health", "WARN", "2 episode(s) shorter than 20 frames (<1.0s): [4, 7]")
    assert (f.kind, f.episodes) == ("short_episode", (4, 7))
    f = parse_finding("Anomaly Detection", "WARN", "2 near-duplicate episode pair(s) detected: [(0, 1), (1, 4)]")
    assert (f.kind, f.episodes) == ("near_duplicate", (0, 1, 4))
    assert parse_finding("Training Readiness", "WARN", "something new").kind == "other"
