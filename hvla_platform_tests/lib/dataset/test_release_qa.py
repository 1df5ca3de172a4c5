"""Release-level QA (lib/dataset/release_qa.py): checks that judge a release as a whole.

Pure checks on small real inputs — ``meta/stats.json`` files written by LeRobot's own statistics
code, camera statistics measured with OpenCV on real images — and one small real release built
from MCAP recordings through ``build_release``: its card's "Coverage and balance" and "Release
checks" sections, the findings recorded in its manifest and the Dagster check results all say the
same thing, naming the episodes and joints involved.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import dagster as dg
import numpy as np
import pytest

from hvla_platform.defs.dataset.assets import lerobot_dataset, release_check_results
from hvla_platform.lib.core import features
from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.dataset.build import build_release, episode_qa_metrics, previous_version_stats
from hvla_platform.lib.dataset.lerobot_release import read_hvla_episodes
from hvla_platform.lib.dataset.openpi_export import DEFAULT_ACTION_HORIZON
from hvla_platform.lib.dataset.release_qa import (
    RELEASE_CHECKS, PreviousVersion, ReleaseQA, ReleaseQAThresholds, action_chunk_fit, camera_image_outliers,
    constant_features, distribution_drift, episode_length_outliers, run_release_checks, task_coverage)
from hvla_platform.lib.dataset.releases import lerobot_prefix, register_release
from hvla_platform.lib.dataset.spec import ReleaseQASettings, ReleaseSpec, ReleaseSpecError
from hvla_platform.lib.formats.recording.contract import G1_ARM_JOINTS, G1_WAIST_JOINTS
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.recordings import write_recording

STATE_NAMES, ACTION_NAMES = G1_WAIST_JOINTS + G1_ARM_JOINTS, list(G1_ARM_JOINTS)
NAMES = {features.STATE: STATE_NAMES, features.ACTION: ACTION_NAMES}
TH = ReleaseQAThresholds()


def _row(ep: str, n: int, task: str = "touch the red cube", split: str = "train") -> dict:
    return {"episode_id": ep, "num_frames": n, "task": task, "split": split}


def _motion(seed: int, n: int = 120, shift: dict[str, float] | None = None, constant: tuple[str, ...] = ()):
    """Arm-reaching-like joint trajectories (rad): state (n, 17), action (n, 14) float32."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 2 * np.pi, n)[:, None]
    state = 0.3 * np.sin(t + rng.uniform(0, np.pi, len(STATE_NAMES))) + 0.02 * rng.standard_normal((n, len(STATE_NAMES)))
    for j, dx in (shift or {}).items():
        state[:, STATE_NAMES.index(j)] += dx
    for j in constant:
        state[:, STATE_NAMES.index(j)] = 0.0
    action = state[:, [STATE_NAMES.index(j) for j in ACTION_NAMES]] + 0.01
    return state.astype(np.float32), action.astype(np.float32)


def _stats_json(root: Path, episodes: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """A real ``meta/stats.json``: LeRobot's per-episode stats, ``aggregate_stats`` and ``write_stats``."""
    import_lerobot_dataset()
    from lerobot.datasets.compute_stats import aggregate_stats, compute_episode_stats
    from lerobot.datasets.utils import write_stats

    feats = {features.STATE: {"dtype": "float32", "shape": (len(STATE_NAMES),), "names": STATE_NAMES},
             features.ACTION: {"dtype": "float32", "shape": (len(ACTION_NAMES),), "names": ACTION_NAMES}}
    per = [compute_episode_stats({features.STATE: s, features.ACTION: a}, feats) for s, a in episodes]
    write_stats(aggregate_stats(per), root)
    return json.loads((root / "meta" / "stats.json").read_text())


# ---- episode length --------------------------------------------------------------------------------

def test_an_episode_of_abnormal_length_is_named_with_its_modified_z():
    rows = [_row(f"ep-{i}", n) for i, n in enumerate([90, 92, 88, 91, 89, 90, 400, 90])]
    c = episode_length_outliers(rows, TH)
    assert c.status == "failed" and c.episodes == ("ep-6",)
    # median 90, MAD 1: M = 0.6745 × 310 / 1.8 (the MAD floored at 2 % of the median)
    assert c.values["outliers"]["ep-6"] == {"num_frames": 400, "modified_z": pytest.approx(0.6745 * 310 / 1.8, rel=1e-5)}
    assert "ep-6: 400 frames (M +116.2)" in c.detail


def test_identical_lengths_do_not_turn_one_frame_into_an_outlier_and_few_episodes_are_not_judged():
    c = episode_length_outliers([_row(f"ep-{i}", 90) for i in range(7)] + [_row("ep-7", 91)], TH)
    assert c.status == "passed" and c.values["mad_frames"] == 0 and c.values["scale_frames"] == pytest.approx(1.8)
    few = episode_length_outliers([_row("a", 90), _row("b", 91), _row("c", 400), _row("d", 90)], TH)
    assert few.status == "not_judged" and few.passed and "4 episode(s), fewer than the 5" in few.detail


# ---- constant features and drift (real LeRobot stats.json) ----------------------------------------

def test_a_constant_joint_is_named(tmp_path):
    stats = _stats_json(tmp_path, [_motion(s, constant=("waist_yaw_joint",)) for s in range(3)])
    c = constant_features(stats, NAMES, TH)
    assert c.status == "failed" and c.features == ("observation.state waist_yaw_joint",)
    assert c.values["constant"] == {"observation.state waist_yaw_joint": 0.0}
    assert "observation.state waist_yaw_joint: std 0.00e+00" in c.detail
    moving = constant_features(_stats_json(tmp_path / "b", [_motion(s) for s in range(3)]), NAMES, TH)
    assert moving.status == "passed" and "observation.state (17), action (14)" in moving.detail
    assert constant_features(None, NAMES, TH).status == "not_judged"


def test_drift_between_two_real_stats_files_names_the_joint_that_moved(tmp_path):
    before = _stats_json(tmp_path / "v0", [_motion(s) for s in range(4)])
    # the left elbow now works 0.3 rad higher (about 1.3 pooled std): a large effect; the rest is resampled
    after = _stats_json(tmp_path / "v1", [_motion(s, shift={"left_elbow_joint": 0.3}) for s in range(4, 8)])
    prev = PreviousVersion("t-rel", before, NAMES)
    c = distribution_drift(after, NAMES, prev, TH)
    assert c.status == "failed"
    assert set(c.features) == {"observation.state left_elbow_joint", "action left_elbow_joint"}
    d = c.values["drifted"]["observation.state left_elbow_joint"]
    s0, s1 = before["observation.state"]["std"][6], after["observation.state"]["std"][6]
    n0, n1 = before["observation.state"]["count"][0], after["observation.state"]["count"][0]
    pooled = np.sqrt(((n1 - 1) * s1**2 + (n0 - 1) * s0**2) / (n0 + n1 - 2))
    assert d["smd"] == pytest.approx(abs(after["observation.state"]["mean"][6] - before["observation.state"]["mean"][6])
                                     / pooled, rel=1e-5) and d["smd"] > TH.max_drift_smd
    assert "since t-rel" in c.detail and c.values["previous_release"] == "t-rel"
    same = distribution_drift(_stats_json(tmp_path / "v2", [_motion(s) for s in range(4, 8)]), NAMES, prev, TH)
    assert same.status == "passed" and same.values["max_smd"] < TH.max_drift_smd
    first = distribution_drift(after, NAMES, None, TH)
    assert first.status == "not_judged" and "no previous version" in first.detail


# ---- coverage and balance --------------------------------------------------------------------------

def test_task_imbalance_and_too_few_episodes_per_task_are_named():
    rows = ([_row(f"a{i}", 100, "stack the cups") for i in range(12)] + [_row("b0", 80, "open the drawer")]
            + [_row("c0", 90, "wipe the table", split="heldout")])
    c = task_coverage(rows, TH)
    assert c.status == "failed" and c.values["imbalance"] == 12.0
    assert c.values["too_few"] == ["open the drawer", "wipe the table"]  # a held-out-only task has 0 train episodes
    assert c.values["tasks"]["stack the cups"] == {"train_episodes": 12, "train_frames": 1200, "heldout_episodes": 0,
                                                   "heldout_frames": 0, "train_frame_share": pytest.approx(1200 / 1280)}
    assert "imbalance 12.0 > 9 ('stack the cups' 12 vs 'open the drawer' 1)" in c.detail
    balanced = [_row(f"{t}{i}", 100, t) for t in ("x", "y") for i in range(10)]
    assert task_coverage(balanced, TH).status == "passed"
    assert task_coverage([_row("h", 90, split="heldout")], TH).status == "not_judged"


def test_train_episodes_shorter_than_the_action_horizon_are_named():
    assert TH.action_horizon == DEFAULT_ACTION_HORIZON == 50  # openpi's Pi0Config.action_horizon
    rows = [_row("ep-a", 120), _row("ep-b", 30), _row("ep-c", 49), _row("ep-d", 20, split="heldout")]
    c = action_chunk_fit(rows, TH)
    assert c.status == "failed" and c.episodes == ("ep-b", "ep-c") and c.values["short"] == {"ep-b": 30, "ep-c": 49}
    assert "2 of 3 train episode(s) shorter than the action horizon of 50 frames: ep-b (30), ep-c (49)" == c.detail
    assert action_chunk_fit(rows, dataclasses.replace(TH, action_horizon=20)).status == "passed"


# ---- camera image statistics (OpenCV on real images) ----------------------------------------------

def _camera_stats(img: np.ndarray) -> tuple[float, float]:
    """Exposure (mean grey level, 0–255) and sharpness (variance of the Laplacian) of an RGB image."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return float(grey.mean()), float(cv2.Laplacian(grey, cv2.CV_64F).var())


def test_camera_outliers_against_the_same_camera_and_unmeasured_episodes_are_named():
    rng = np.random.default_rng(0)
    scene = cv2.resize(rng.integers(40, 215, (30, 40, 3), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_NEAREST)
    qa: dict[str, dict] = {}
    rows = [_row(f"ep-{i}", 100) for i in range(10)]
    for i in range(8):
        img = np.clip(scene.astype(np.int16) + rng.integers(-6, 7, scene.shape), 0, 255).astype(np.uint8)
        head = (img * 0.25).astype(np.uint8) if i == 3 else img  # an under-exposed head camera
        wrist = cv2.GaussianBlur(img, (15, 15), 5) if i == 5 else img  # a smeared wrist lens
        (eh, sh), (ew, sw) = _camera_stats(head), _camera_stats(wrist)
        qa[f"ep-{i}"] = {"camera_exposure": {"head": eh, "wrist": ew}, "camera_sharpness": {"head": sh, "wrist": sw}}
    qa["ep-8"] = {"duration_s": 5.0}  # converted before camera statistics were recorded; ep-9 has no row at all
    qa["ep-7"]["camera_exposure"].pop("wrist")  # no usable wrist frame (all black): left out by the conversion
    qa["ep-7"]["camera_sharpness"].pop("wrist")
    c = camera_image_outliers(rows, qa, ["head", "wrist"], TH)
    assert c.status == "failed"
    head, wrist = c.values["per_camera"]["head"], c.values["per_camera"]["wrist"]
    assert set(head["exposure"]["outliers"]) == {"ep-3"}
    # the variance of the Laplacian scales with contrast², so the dark frame is also less sharp
    assert set(head["sharpness"]["outliers"]) == {"ep-3"}
    assert set(wrist["sharpness"]["outliers"]) == {"ep-5"}
    assert not wrist["exposure"]["outliers"]  # a blur keeps the mean level
    assert head["exposure"]["median"] > 100
    assert c.values["not_measured"] == ["ep-7", "ep-8", "ep-9"] and c.episodes[-3:] == ("ep-7", "ep-8", "ep-9")
    assert (c.values["not_recorded"], c.values["no_usable_frames"]) == (["ep-8", "ep-9"], ["ep-7"])
    assert head["exposure"]["measured"] == 8 and wrist["exposure"]["measured"] == 7
    assert "head ep-3: exposure" in c.detail and "darker" in c.detail and "wrist ep-5: sharpness" in c.detail
    assert "blurrier" in c.detail and "3 of 10 episode(s) not measured — converted before camera image statistics " \
        "were recorded: ep-8, ep-9 — a camera without any usable (not black, not saturated) frame: ep-7" in c.detail
    unmeasured = camera_image_outliers(rows, {}, ["head"], TH)
    assert unmeasured.status == "not_judged" and unmeasured.values["not_measured"] == [r["episode_id"] for r in rows]
    assert unmeasured.detail.startswith("no episode has camera image statistics; 10 of 10 episode(s) not measured "
                                        "— converted before camera image statistics were recorded: ep-0, ep-1")


# ---- thresholds in the release spec ---------------------------------------------------------------

BASE = "name: qa-v1\nrepo_id: hvla/qa\n"


def test_the_spec_qa_block_overrides_thresholds_and_a_misspelled_key_is_refused():
    assert set(ReleaseQASettings.model_fields) == {f.name for f in dataclasses.fields(ReleaseQAThresholds)}
    spec = ReleaseSpec.from_yaml(BASE + "qa: {min_episodes_per_task: 3, action_horizon: 16}\n")
    th = ReleaseQAThresholds.with_overrides(spec.qa)
    assert (th.min_episodes_per_task, th.action_horizon, th.max_modified_z) == (3, 16, 3.5)
    assert spec.to_dict()["qa"] == {"min_episodes_per_task": 3, "action_horizon": 16}
    assert ReleaseSpec.from_mapping(spec.to_dict()) == spec and spec.digest() != ReleaseSpec.from_yaml(BASE).digest()
    assert "qa" not in ReleaseSpec.from_yaml(BASE).to_dict()
    for text, message in (("qa: {min_episodes_per_tsk: 3}\n", "qa: unknown key 'min_episodes_per_tsk' "
                                                               "(did you mean 'min_episodes_per_task'?)"),
                          ("qa: {action_horizon: 0}\n", "qa.action_horizon: expected a value >= 1, got 0")):
        with pytest.raises(ReleaseSpecError) as err:
            ReleaseSpec.from_yaml(BASE + text, source="releases/qa-v1.yaml")
        assert str(err.value) == f"releases/qa-v1.yaml: {message}"


def test_findings_round_trip_through_json():
    rows = [_row(f"ep-{i}", 90 + i) for i in range(6)]
    qa = run_release_checks(rows, stats=None, feature_names=NAMES, previous=None, qa_metrics={}, cameras=["head"],
                            thresholds=TH)
    assert [c.check for c in qa.checks] == list(RELEASE_CHECKS)
    assert ReleaseQA.from_dict(json.loads(json.dumps(qa.to_dict()))) == qa


# ---- a small real release --------------------------------------------------------------------------

DAY, ROBOT = "2026-11-10", "g1-001"
SPEC = f"""\
name: t-rqa
repo_id: hvla/t-rqa
partitions: [{{capture_day: "{DAY}", robot_id: {ROBOT}}}]
fps: 20
heldout: {{episode_ids: [ep-b]}}
qa: {{min_episodes_per_task: 1, max_task_imbalance: 2}}
"""
SHORT_TASK = "touch the blue sphere with the left hand"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Four 3 s episodes of one task (ep-b held out) and a 1.5 s one (ep-e) of another, built as a
    release with LeRobot through ``build_release``."""
    base = tmp_path_factory.mktemp("rqa")
    for i, ep in enumerate(("ep-a", "ep-b", "ep-c", "ep-d", "ep-e")):
        write_recording(base / "recs", episode_id=ep, seed=i + 1, duration_s=1.5 if ep == "ep-e" else 3.0,
                        **({"task": SHORT_TASK} if ep == "ep-e" else {}))
    env = pytest.MonkeyPatch()
    env.setenv("HVLA_HOME", str(base / "home"))
    lake = LocalLake(base / "lake")
    land_and_convert(lake, base / "recs", DAY, ROBOT)
    spec = register_release(lake, SPEC)
    build = build_release(lake, spec)
    with lake.local_artifact(lerobot_prefix(build.spec)) as root:
        card, rows = (Path(root) / "README.md").read_text(), read_hvla_episodes(Path(root))
    yield {"lake": lake, "spec": spec, "build": build, "card": card, "rows": {r["episode_id"]: r for r in rows}}
    env.undo()


def test_the_release_records_its_findings_and_the_card_shows_them(release):
    build, card, rows = release["build"], release["card"], release["rows"]
    qa = ReleaseQA.from_dict(build.manifest.release_checks)
    assert build.release_qa == qa and qa.thresholds.max_task_imbalance == 2 and qa.previous_release is None
    short = rows["ep-e"]["num_frames"]
    assert short < 50 <= min(r["num_frames"] for e, r in rows.items() if e != "ep-e")
    status = {c.check: c.status for c in qa.checks}
    assert status == {"episode_length_outliers": "failed", "constant_features": "passed",
                      "distribution_drift": "not_judged", "task_coverage": "failed", "action_chunk_fit": "failed",
                      "camera_image_outliers": status["camera_image_outliers"]}
    assert qa.check("episode_length_outliers").episodes == ("ep-e",)
    assert qa.check("action_chunk_fit").values["short"] == {"ep-e": short}
    assert qa.check("task_coverage").values["imbalance"] == 3.0  # 3 train episodes vs 1
    # episodes whose conversion recorded no camera statistics are reported as not measured
    metrics = episode_qa_metrics(build.selection)
    assert qa.check("camera_image_outliers").values["not_measured"] == sorted(
        e for e in rows if "camera_exposure" not in metrics[e])
    # the card: coverage per task and one line per check, rendered from those findings
    assert "## Coverage and balance" in card and "## Release checks" in card
    assert f"| {SHORT_TASK} | 1 | {short} | {short / (short + 3 * rows['ep-a']['num_frames']):.1%} | 0 | 0 |" in card
    assert "- Task imbalance (largest / smallest train episode count): 3.0 (warning above 2)" in card
    assert f"action horizon (50 frames, a policy's action chunk; openpi's default `action_horizon` unless the " \
           f"release spec's `qa` sets it): ep-e ({short} frames)." in card
    for c in qa.checks:
        word = {"passed": "passed", "failed": "**warning**", "not_judged": "not judged"}[c.status]
        assert f"- `{c.check}`: {word} — {c.detail}\n" in card
    assert card.index("## Coverage and balance") < card.index("## QA and outcome") < card.index("## Release checks")


def test_dagster_reports_one_warning_per_release_check(release):
    names = {k.name for k in lerobot_dataset.check_keys}
    assert set(RELEASE_CHECKS) <= names
    specs = {s.name: s for s in lerobot_dataset.check_specs}
    assert not any(specs[n].blocking for n in RELEASE_CHECKS)
    results = {r.check_name: r for r in release_check_results(release["build"].release_qa)}
    assert list(results) == list(RELEASE_CHECKS)
    assert all(r.severity == dg.AssetCheckSeverity.WARN for r in results.values())
    fit = results["action_chunk_fit"]
    assert not fit.passed and fit.metadata["hvla/episodes"].value == "ep-e"
    assert results["distribution_drift"].passed and results["distribution_drift"].metadata["hvla/status"].value == "not judged"
    old = release_check_results(None)  # a version built before release checks: a warning, never a pass
    assert [r.passed for r in old] == [False] * len(RELEASE_CHECKS)
    assert old[0].metadata["hvla/status"].value == "not recorded"


def test_previous_version_statistics_are_read_from_the_lake(release):
    m = release["build"].manifest
    prev = previous_version_stats(release["lake"], m)
    assert prev.release == "t-rqa" and list(prev.feature_names[features.STATE]) == list(release["spec"].state_joints)
    with release["lake"].local_artifact(lerobot_prefix(release["build"].spec)) as root:
        stats = json.loads((Path(root) / "meta" / "stats.json").read_text())
    assert prev.stats == stats
    same = distribution_drift(stats, prev.feature_names, prev, TH)
    assert same.status == "passed" and same.values["max_smd"] == 0.0
