"""Landing → raw (write-once, quarantine) → synchronised HDF5, on real MCAP files, local and S3."""

import uuid

import numpy as np
import pytest

from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform.lib.formats.episode_h5 import read_episode_h5
from hvla_platform.lib.ingest.landing import find_recordings, land_recording, list_landing_partitions
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.core.lake import LocalLake, S3Lake
from hvla_platform_tests.fixtures.recordings import write_recording

DAY, ROBOT = "2026-11-10", "g1-001"


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    return S3Lake(f"lake-{uuid.uuid4().hex[:10]}", request.getfixturevalue("s3_client"))


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    root = tmp_path_factory.mktemp("recs")
    write_recording(root, episode_id="ep-good-1", seed=1)
    write_recording(root, episode_id="ep-good-2", seed=2)
    write_recording(root, episode_id="ep-missing-cam", seed=3, defect="missing_topic")
    write_recording(root, episode_id="ep-backwards", seed=4, defect="backwards")
    write_recording(root, episode_id="ep-no-rights", seed=5, defect="no_rights")
    return root


def test_partition_goes_through_with_bad_episodes_quarantined(lake, recordings):
    before = {p: p.read_bytes() for p in recordings.rglob("*") if p.is_file()}
    for rec in find_recordings(recordings):
        assert land_recording(lake, rec).status == "landed"
    assert list_landing_partitions(lake) == [(DAY, ROBOT)]

    res = ingest_partition(lake, DAY, ROBOT)
    by = {e.episode_id: e for e in res.episodes}
    assert by["ep-good-1"].convertible and by["ep-good-2"].convertible
    assert res.failing("required_topics") == ["ep-missing-cam"]
    assert "/camera/wrist_right" in by["ep-missing-cam"].checks["required_topics"]["detail"]
    assert res.failing("monotonic") == ["ep-backwards"]
    assert res.failing("rights") == ["ep-no-rights"]
    assert "no 'rights' block" in by["ep-no-rights"].checks["rights"]["detail"]
    # evidence with valid rights is published to raw even with a contract problem; no rights → not published
    assert lake.read_manifest(f"raw-mcap/{DAY}/{ROBOT}/ep-missing-cam") is not None
    assert lake.read_manifest(f"raw-mcap/{DAY}/{ROBOT}/ep-no-rights") is None
    assert lake.exists(f"quarantine/{DAY}/{ROBOT}/ep-no-rights/files/ep-no-rights_0.mcap")
    reason = lake.read_json(f"quarantine/{DAY}/{ROBOT}/ep-backwards/reason.json")
    assert any("monotonic" in r for r in reason["reasons"])
    # the landing copies are untouched, and so are the source files
    assert lake.exists(f"landing/{DAY}/{ROBOT}/ep-no-rights/ep-no-rights_0.mcap")
    assert before == {p: p.read_bytes() for p in recordings.rglob("*") if p.is_file()}

    # second ingest: write-once raw layer reports cached, nothing replaced
    again = {e.episode_id: e.status for e in ingest_partition(lake, DAY, ROBOT).episodes}
    assert again["ep-good-1"] == "cached"

    conv = convert_partition(lake, DAY, ROBOT, SyncConfig(fps=20))
    assert conv.status == "materialized"
    assert sorted(e.episode_id for e in conv.converted) == ["ep-good-1", "ep-good-2"]
    assert sorted(s["episode_id"] for s in conv.skipped) == ["ep-backwards", "ep-missing-cam", "ep-no-rights"]
    assert conv.rights.allowed_uses == {"internal_training", "lab_robot", "staging_demo"}
    with lake.local_artifact(f"episodes-hdf5/{DAY}/{ROBOT}") as d:
        ep = read_episode_h5(d / "ep-good-1.h5")
    assert ep.fps == 20 and ep.num_frames == 41  # streams overlap on [0, 2.0] s → frames at 0, 0.05, ..., 2.0 s
    np.testing.assert_allclose(np.diff(ep.timestamps), 0.05, atol=1e-9)
    assert ep.state.shape == (41, 29) and ep.action.shape == (41, 14)
    assert ep.images["head"].shape == (41, 96, 128, 3) and ep.images["head"].dtype == np.uint8
    assert float(ep.skew["head"].max()) <= 1 / 30 + 1e-6  # nearest 15 Hz frame is ≤ half a period away
    assert ep.task == "touch the red cube with the right hand"

    assert convert_partition(lake, DAY, ROBOT, SyncConfig(fps=20)).status == "cached"
    assert convert_partition(lake, DAY, ROBOT, SyncConfig(fps=10)).status == "materialized"


def test_changed_reupload_is_reported_not_replaced(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    rec = write_recording(tmp_path / "a", episode_id="ep-x", seed=1)
    assert land_recording(lake, rec).status == "landed"
    assert land_recording(lake, rec).status == "already_landed"
    original = lake.read_bytes(f"landing/{DAY}/{ROBOT}/ep-x/ep-x_0.mcap")
    rec2 = write_recording(tmp_path / "b", episode_id="ep-x", seed=2)
    r = land_recording(lake, rec2)
    assert r.status == "conflict" and "write-once" in r.reason
    assert lake.read_bytes(f"landing/{DAY}/{ROBOT}/ep-x/ep-x_0.mcap") == original


@pytest.mark.parametrize("bad_id", ["../../etc", "/abs", "ép-ünïcode", "a/b", ".."])
def test_ids_that_escape_their_folder_are_rejected_at_landing(tmp_path, bad_id):
    import yaml

    lake = LocalLake(tmp_path / "lake")
    rec = write_recording(tmp_path / "src", episode_id="ep-ok", seed=1)
    meta = yaml.safe_load((rec / "metadata.yaml").read_text())
    meta["episode_id"] = bad_id
    (rec / "metadata.yaml").write_text(yaml.safe_dump(meta))
    r = land_recording(lake, rec)
    assert r.status == "rejected" and "not a safe id" in r.reason
    assert lake.list_keys("landing") == []
    assert any(k.endswith("reason.json") for k in lake.list_keys("quarantine/_rejected"))
    assert not (tmp_path / "etc").exists()
