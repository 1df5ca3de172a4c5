"""The planted-defect suite (issue 14) through the real pipeline: every planted defect, in both its
variants, is caught by its own check **and gated** (kept out of a default release unless a
supervisor approves it); the clean episodes and the original of each duplicate pass and enter a
default release. About a minute on 2 cores (30 short recordings written, landed, ingested and
converted once for the module)."""

import itertools

import numpy as np
import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.dataset.releases import select_episodes
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.formats.mcap.streams import read_episode_streams
from hvla_platform.lib.processing.qa.decisions import record_decision
from hvla_platform.lib.processing.qa.duplicates import near_duplicate, near_duplicate_frames, signal_fingerprint
from hvla_platform.lib.processing.qa.metrics import (
    ALL_QA_CHECKS,
    camera_offsets_s,
    chatter_mask,
    hampel_outliers,
)
from hvla_platform.lib.processing.qa.score import GATES, REPORT_ONLY, SCORE_ONLY
from hvla_platform.lib.processing.qa.thresholds import DEFAULT_MIN_QUALITY, QAThresholds
from hvla_platform_tests.fixtures.planted import DAY, DAY2, KINDS, ROBOT, SUITE, run_suite, write_suite

TH = QAThresholds()
DEFECTIVE = [p for p in SUITE if p.kind != "clean"]
CLEAN = [p for p in SUITE if p.kind == "clean"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    folders = write_suite(root / "recs")
    lake = LocalLake(root / "lake")
    return lake, run_suite(lake, root / "recs"), folders


def _default_release(lake, name="planted-v1"):
    spec = ReleaseSpec.from_mapping({"name": name, "repo_id": "hvla/planted", "fps": 20,
                                     "partitions": [{"capture_day": DAY, "robot_id": ROBOT},
                                                    {"capture_day": DAY2, "robot_id": ROBOT}]})
    assert spec.min_quality == DEFAULT_MIN_QUALITY
    return select_episodes(lake, spec)


def test_every_check_has_one_policy():
    assert set(GATES) | set(SCORE_ONLY) | set(REPORT_ONLY) == set(ALL_QA_CHECKS)
    assert not (set(GATES) & set(SCORE_ONLY)) and not (set(GATES) & set(REPORT_ONLY))
    assert {p.kind for p in DEFECTIVE} == set(KINDS) and len(KINDS) == 13


def test_clean_episodes_pass_every_check(suite):
    _, convs, _ = suite
    for p in CLEAN:
        c = convs[p.episode_id]
        assert c.status == "converted", c.reason
        assert [k for k, v in c.qa_checks.items() if not v["passed"]] == [], p.episode_id
        assert set(c.qa_checks) == set(ALL_QA_CHECKS)
        assert c.quality_score > 0.9


@pytest.mark.parametrize("planted", DEFECTIVE, ids=[p.episode_id for p in DEFECTIVE])
def test_planted_defect_is_caught_by_its_check_and_gated(suite, planted):
    _, convs, _ = suite
    c = convs[planted.episode_id]
    own = KINDS[planted.kind]
    if own == "conversion":  # refused before QA: quarantined, never in a release
        assert c.status == "failed" and planted.kind in c.reason, c.reason
        return
    assert c.status == "converted", c.reason
    assert not c.qa_checks[own]["passed"], (own, c.qa_checks[own])
    assert own in GATES
    assert c.quality_score == 0.0


def test_duplicates_name_their_original(suite):
    _, convs, _ = suite
    for p in (p for p in SUITE if p.copy_of):
        chk = convs[p.episode_id].qa_checks["duplicate"]
        assert chk["original"] == p.copy_of and chk["kind"] == ("exact" if p.exact else "near"), chk
        assert convs[p.copy_of].qa_checks["duplicate"]["passed"]  # the original is not the copy


def test_default_release_takes_the_clean_episodes_only_unless_approved(suite):
    lake, convs, _ = suite
    sel = _default_release(lake)
    assert sorted(e.episode_id for e in sel.episodes) == sorted(p.episode_id for p in CLEAN)
    assert set(sel.excluded) == {p.episode_id for p in DEFECTIVE}
    record_decision(lake, "ep-cam-offset-a", "approve", "offset measured and corrected downstream", by="supervisor")
    sel = _default_release(lake, "planted-v2")
    assert "ep-cam-offset-a" in sel.approved and "ep-cam-offset-a" in {e.episode_id for e in sel.episodes}


def test_detectors_on_arrays():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 3, 301)[:, None]
    x = np.sin(t + rng.uniform(0, 3, (1, 4))) + rng.normal(0, 2e-4, (301, 4))
    assert not hampel_outliers(x, 5, TH.spike_k, TH.spike_min_rad).any()
    x2 = x.copy()
    x2[150, 2] += 0.08
    assert np.argwhere(hampel_outliers(x2, 5, TH.spike_k, TH.spike_min_rad)).tolist() == [[150, 2]]
    fast = x.copy()
    fast[150:, 1] += 0.5  # a fast real move stays: a step, not a spike
    assert not hampel_outliers(fast, 5, TH.spike_k, TH.spike_min_rad).any()
    cmd = x[::2].copy()
    assert not chatter_mask(cmd, TH.chatter_step_rad, TH.chatter_reversals).any()
    cmd[40:50, 0] += 0.02 * (-1) ** np.arange(10)
    m = chatter_mask(cmd, TH.chatter_step_rad, TH.chatter_reversals)
    assert m[:, 0].any() and not m[:, 1:].any() and m[:, 0].nonzero()[0].min() >= 39


def test_camera_offset_and_fingerprint_on_recordings(suite):
    _, _, folders = suite
    off = camera_offsets_s(read_episode_streams(next(folders["ep-cam-offset-a"].glob("*.mcap"))))
    assert off["head"] == pytest.approx(0.15, abs=0.02) and abs(off["wrist_right"]) < 0.03
    fp = {k: signal_fingerprint(read_episode_streams(next(folders[k].glob("*.mcap"))).joint_states)
          for k in ("ep-clean-3", "ep-dup-b", "ep-clean-4")}
    assert near_duplicate(fp["ep-clean-3"], fp["ep-dup-b"], TH)
    assert not near_duplicate(fp["ep-clean-3"], fp["ep-clean-4"], TH)


def test_frame_fingerprints_find_the_copies_and_no_two_different_recordings(suite):
    # the suite's recordings show the same scene (a square moving the same way in every recording; the
    # frames differ by sensor noise), many with the same duration: only a copy shares its video
    _, convs, _ = suite
    m = {k: c.qa_metrics for k, c in convs.items() if "frame_fingerprint" in c.qa_metrics}

    def same_video(a, b):
        return near_duplicate_frames(m[a]["frame_fingerprint"], m[b]["frame_fingerprint"],
                                     m[a]["fingerprint"]["duration_s"], m[b]["fingerprint"]["duration_s"], TH)

    originals = [p.episode_id for p in SUITE if p.copy_of is None and p.episode_id in m]
    assert len(originals) >= 20
    assert [(a, b) for a, b in itertools.combinations(originals, 2) if same_video(a, b)] == []
    for p in (p for p in SUITE if p.copy_of):
        assert same_video(p.episode_id, p.copy_of) == ["head", "wrist_right"], p.episode_id
