"""raw → episodes → LeRobot through Dagster with the lake on S3 (moto's server over HTTP, real boto3)."""

import uuid

import dagster as dg
import pytest

from hvla_platform_tests.fixtures.recordings import write_recording

SPEC = "name: s3-v1\nrepo_id: hvla/s3\npartitions: all\nfps: 20\nheldout: {fraction: 0.0}\n"


@pytest.mark.s3
def test_ingest_and_release_on_s3(s3_server, tmp_path, monkeypatch):
    bucket = f"hvla-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("HVLA_LAKE_BACKEND", "s3")
    monkeypatch.setenv("HVLA_S3_BUCKET", bucket)
    monkeypatch.setenv("HVLA_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("HVLA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    recs = tmp_path / "recs"
    write_recording(recs, episode_id="ep-s3-1", seed=1)
    write_recording(recs, episode_id="ep-s3-2", seed=2)
    (tmp_path / "spec.yaml").write_text(SPEC)

    from hvla_platform.cli import land_folder, register_release_file
    from hvla_platform.defs.resources import lake_from_env
    from hvla_platform.orchestration import instance, load_defs, run_job

    lake = lake_from_env().get_lake()
    assert lake.root_uri().startswith(f"s3://{bucket}")
    defs, inst = load_defs(), instance()
    assert land_folder(recs) == [("2026-11-10", "g1-001")]
    o = run_job(defs, inst, "ingest_job", dg.MultiPartitionKey({"capture_day": "2026-11-10", "robot": "g1-001"}))
    assert o.success, o.error
    assert o.materializations["raw_mcap"]["dagster/uri"].startswith(f"s3://{bucket}/raw-mcap/")
    release = register_release_file(tmp_path / "spec.yaml")
    o = run_job(defs, inst, "release_job", release)
    assert o.success, o.error
    m = lake.read_manifest("lerobot/hvla/s3/s3-v1")
    assert m["num_episodes"] == 2 and m["probe"]["num_episodes"] == 2
    keys = lake.list_keys("lerobot/hvla/s3/s3-v1")
    assert any(k.endswith(".mp4") for k in keys) and any(k.endswith("meta/info.json") for k in keys)
    # raw objects on S3 are write-once
    from hvla_platform.lib.storage import ObjectExistsError

    with pytest.raises(ObjectExistsError):
        lake.write_bytes("raw-mcap/2026-11-10/g1-001/ep-s3-1/ep-s3-1_0.mcap", b"overwrite", write_once=True)
