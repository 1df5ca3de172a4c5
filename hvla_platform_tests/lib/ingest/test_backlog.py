"""Which partitions ingest has not caught up with, read from a real lake (landed, ingested, converted)."""

import shutil

import pytest

from hvla_platform.lib.ingest.backlog import ingest_backlog, partition_state
from hvla_platform.lib.ingest.landing import land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.fixtures.recordings import write_recording

DAY = "2026-11-10"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """g1-001 converted; g1-002 landed only; g1-003 ingested, every episode quarantined; g1-004 ingested, not converted."""
    root = tmp_path_factory.mktemp("backlog")
    lake = LocalLake(root / "lake")
    recs = root / "recs"
    for ep, robot, defect in [("ep-1", "g1-001", None), ("ep-2", "g1-002", None), ("ep-3", "g1-003", "no_rights"),
                              ("ep-4", "g1-004", None)]:
        land_recording(lake, write_recording(recs, episode_id=ep, robot_id=robot, seed=1, duration_s=1.0, defect=defect))
    for robot in ("g1-001", "g1-003", "g1-004"):
        ingest_partition(lake, DAY, robot)
    convert_partition(lake, DAY, "g1-001")
    return lake


def test_backlog_names_each_partition_behind_and_why(lake, tmp_path):
    assert {s.key: s.behind for s in ingest_backlog(lake)} == {
        f"{DAY}|g1-002": "never ingested",
        f"{DAY}|g1-004": "raw episodes ingested but not converted to HDF5",
    }
    # converted, and all-quarantined (nothing to convert), partitions are not behind
    assert partition_state(lake, DAY, "g1-001").behind == ""
    assert partition_state(lake, DAY, "g1-003").behind == ""
    before = partition_state(lake, DAY, "g1-001")
    # a late episode of a converted partition puts it behind again, with a new content digest
    land_recording(lake, write_recording(tmp_path, episode_id="ep-5", robot_id="g1-001", seed=5, duration_s=1.0))
    after = partition_state(lake, DAY, "g1-001")
    assert after.behind == "1 episode(s) landed since the last ingest: ep-5"
    assert after.landed == ("ep-1", "ep-5") and after.digest != before.digest
    assert [s.key for s in ingest_backlog(lake, [(DAY, "g1-001"), (DAY, "g1-003")])] == [f"{DAY}|g1-001"]
    shutil.rmtree(lake.path(f"landing/{DAY}/g1-001/ep-5"))  # module fixture: leave it as found


def test_digest_depends_only_on_the_landed_episodes(lake):
    a, b = partition_state(lake, DAY, "g1-002"), partition_state(lake, DAY, "g1-002")
    assert a.digest == b.digest and len(a.digest) == 16
    assert a.digest != partition_state(lake, DAY, "g1-004").digest
