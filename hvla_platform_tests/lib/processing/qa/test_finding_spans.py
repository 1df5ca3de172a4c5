"""QA findings placed in time: a real recording with a frozen head camera and a joint-state spike
planted at known times, landed, ingested and converted; the findings read back from the published
partition manifest cover the planted times within one frame period, on the planted camera / joint; a
clean episode has none. About 5 s (two 3 s recordings converted once for the module)."""

import numpy as np
import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.processing.qa.findings import (
    MAX_SPANS,
    TIMED_CHECKS,
    Finding,
    episode_findings,
    mask_spans,
    timeline_spans,
)
from hvla_platform.lib.processing.qa.metrics import ALL_QA_CHECKS
from hvla_platform_tests.fixtures.planted import DAY, ROBOT, Planted, run_suite, write_suite

FPS = 20  # run_suite converts at 20 fps: one frame period is 0.05 s
FROZEN_AT, FROZEN_LEN, SPIKE_AT = 1.0, 1.0, 2.2
SUITE = (
    Planted("ep-times-clean", "clean", 401, 2.0),
    Planted("ep-times-defects", "frozen_camera", 402, 3.0, ("frozen_camera", "state_spike"),
            {"frozen_camera": {"at": FROZEN_AT, "length": FROZEN_LEN, "camera": "head"},
             "state_spike": {"at": SPIKE_AT, "size": 0.3, "joint": "left_elbow_joint"}}),
)


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("spans")
    write_suite(root / "recs", SUITE)
    lake = LocalLake(root / "lake")
    convs = run_suite(lake, root / "recs")
    assert {e: c.status for e, c in convs.items()} == {p.episode_id: "converted" for p in SUITE}
    return lake


def _by_check(lake, episode_id):
    return {f.check: f for f in episode_findings(lake, DAY, ROBOT, episode_id)}


def test_frozen_camera_span_covers_the_planted_stretch_on_its_camera(lake):
    f = _by_check(lake, "ep-times-defects")["camera_frozen"]
    assert (f.severity, f.passed) == ("gate", False)
    assert "head" in f.detail
    assert len(f.spans) == 1
    start, end, camera = f.spans[0]
    assert camera == "head"
    assert abs(start - FROZEN_AT) <= 1 / FPS and abs(end - (FROZEN_AT + FROZEN_LEN)) <= 1 / FPS


def test_state_spike_span_is_at_the_planted_sample_on_its_joint(lake):
    f = _by_check(lake, "ep-times-defects")["state_spikes"]
    assert (f.severity, f.passed) == ("gate", False)
    assert "left_elbow_joint" in f.detail
    assert [s[2] for s in f.spans] == ["left_elbow_joint"]
    start, end, _ = f.spans[0]
    assert start <= SPIKE_AT + 1 / FPS and end >= SPIKE_AT - 1 / FPS and end - start <= 1 / FPS


def test_only_failing_timed_checks_carry_spans(lake):
    found = _by_check(lake, "ep-times-defects")
    assert set(found) == set(ALL_QA_CHECKS)
    for name, f in found.items():
        assert isinstance(f, Finding)
        if name not in TIMED_CHECKS:
            assert f.spans is None, name
        elif f.passed:
            assert f.spans == [], name
        else:
            assert f.spans and all(0.0 <= a <= b <= 3.0 for a, b, _ in f.spans), (name, f.spans)


def test_clean_episode_has_no_spans(lake):
    found = _by_check(lake, "ep-times-clean")
    assert [n for n, f in found.items() if not f.passed] == []
    assert {n: f.spans for n, f in found.items() if f.spans} == {}
    assert all(found[n].spans == [] for n in TIMED_CHECKS)


def test_unknown_episode_is_refused_naming_the_partition(lake):
    with pytest.raises(KeyError, match=f"ep-nope.*{DAY}\\|{ROBOT}"):
        episode_findings(lake, DAY, ROBOT, "ep-nope")


def test_spans_are_on_the_timeline_merged_and_capped_to_the_worst():
    t0 = 5_000_000_000  # frame 0's raw time
    stamps = t0 + 1_000_000_000 + np.arange(1000, dtype=np.int64) * 10_000_000  # 100 Hz from 1.0 s
    mask = np.zeros(1000, bool)
    mask[[10, 11, 12]] = True   # one run: 1.10–1.12 s
    mask[14] = True             # 20 ms after it: less than a frame period, merged
    mask[50] = True             # 1.50 s, alone
    assert timeline_spans(mask_spans(stamps, mask, "j1"), t0, 20.0, 300) == [[1.1, 1.14, "j1"], [1.5, 1.5, "j1"]]
    # before frame 0 / after the last frame: clipped to the timeline [0, (11 - 1) / 20]
    assert timeline_spans([(t0 - 10**9, t0 + 10**9, "cam", 0.0)], t0, 20.0, 11) == [[0.0, 0.5, "cam"]]
    # 100 isolated spikes (0.1 s apart) of growing size: the MAX_SPANS largest kept, in time order
    spikes = np.zeros(1000, bool)
    spikes[::10] = True
    kept = timeline_spans(mask_spans(stamps, spikes, "j2", np.arange(1000.0)), t0, 20.0, 300)
    assert [s[0] for s in kept] == [round(1.0 + 0.1 * k, 3) for k in range(100 - MAX_SPANS, 100)]
    assert all(a == b and subj == "j2" for a, b, subj in kept)
