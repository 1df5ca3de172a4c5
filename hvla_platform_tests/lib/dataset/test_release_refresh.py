"""Which releases follow new data, and the dated snapshot specs a nightly refresh registers."""

import datetime as dt

import pytest

from hvla_platform.lib.ingest.landing import land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.dataset.release_refresh import (
    converted_partitions,
    following_specs,
    plan_refresh,
    refresh_due,
    register_snapshot,
)
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.dataset.releases import load_release, register_release
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.fixtures.recordings import write_recording

DAY, ROBOT = "2026-11-10", "g1-001"
NIGHT = dt.date(2026, 11, 12)
FOLLOWS = "name: fol-v1\nrepo_id: hvla/fol\npartitions: all\nfps: 20\nheldout: {fraction: 0.5, seed: 3}\ndescription: Reach.\n"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("refresh")
    lake = LocalLake(root / "lake")
    land_recording(lake, write_recording(root / "recs", episode_id="ep-1", seed=1, duration_s=1.0))
    ingest_partition(lake, DAY, ROBOT)
    convert_partition(lake, DAY, ROBOT)
    register_release(lake, FOLLOWS)
    register_release(lake, FOLLOWS.replace("fol-v1", "fol-v1-r1"))  # a consent-withdrawal rebuild: no line of its own
    register_release(lake, f"name: pin-v1\nrepo_id: hvla/pin\npartitions: [{{capture_day: '{DAY}', robot_id: {ROBOT}}}]\n")
    lake.write_bytes("release-specs/broken.yaml", b"name: broken\n")  # no repo_id
    return lake


def test_only_specs_with_partitions_all_follow_new_data(lake):
    specs, problems = following_specs(lake)
    assert [s.name for s in specs] == ["fol-v1"]
    assert len(problems) == 1 and "broken.yaml" in problems[0] and "missing required field 'repo_id'" in problems[0]


def test_nightly_snapshot_pins_the_converted_partitions(lake):
    plans, _ = plan_refresh(lake, NIGHT)
    [plan] = plans
    assert plan.snapshot == "fol-v1-20261112" and plan.previous is None and plan.added == [f"{DAY}|{ROBOT}"]
    assert plan.partitions == converted_partitions(lake) and len(plan.partitions[f"{DAY}|{ROBOT}"]) == 64
    snap = register_snapshot(lake, plan)
    assert load_release(lake, "fol-v1-20261112") == snap
    base = load_release(lake, "fol-v1")
    assert snap.partitions == ((DAY, ROBOT),)
    assert (snap.repo_id, snap.fps, snap.heldout_fraction, snap.heldout_seed) == ("hvla/fol", 20, 0.5, 3)
    assert snap.cameras == base.cameras and snap.state_joints == base.state_joints
    assert snap.description.startswith("Reach. Nightly snapshot of fol-v1") and "2026-11-12" in snap.description
    # the snapshot is pinned, so it does not follow; the same night is not planned twice
    assert [s.name for s in following_specs(lake)[0]] == ["fol-v1"]
    assert plan_refresh(lake, NIGHT)[0] == []


def test_a_name_too_long_for_a_snapshot_is_a_problem_not_a_crash(lake):
    long = "l" * 60
    register_release(lake, FOLLOWS.replace("fol-v1", long))
    plans, problems = plan_refresh(lake, dt.date(2026, 11, 13))
    assert long not in {p.spec.name for p in plans}
    assert any(f"{long}-20261113" in p and "longer than 64" in p for p in problems)
    lake.delete(f"release-specs/{long}.yaml")


@pytest.mark.parametrize("now, last, due", [
    ("2026-11-12T03:30", None, ""),
    ("2026-11-12T02:59", None, "next release refresh after 03:00"),
    ("2026-11-12T04:00", "2026-11-12", "already refreshed on 2026-11-12"),
    ("2026-11-13T03:00", "2026-11-12", ""),
])
def test_refresh_is_due_once_a_night_after_its_time(now, last, due):
    got = refresh_due(dt.datetime.fromisoformat(now), dt.time(3, 0), last)
    assert (got == "") if not due else (due in got)
