"""The S3 lake end to end, without a click: recordings dropped on an S3 prefix → landing sensor →
ingest_job → nightly release refresh → release_job (LeRobot dataset, norm stats, Robo-DM cache),
all on a real S3 server (SeaweedFS) over HTTP with real boto3 clients and the code location configured by the
environment, as deployed."""

import datetime as dt
import re
import uuid

import dagster as dg
import pytest

from hvla_platform_tests.fixtures.recordings import write_recording

SPEC = "name: s3-v1\nrepo_id: hvla/s3\npartitions: all\nfps: 20\nheldout: {fraction: 0.0}\n"
PART = "2026-11-10|g1-001"


def _upload(client, bucket: str, folder, key_prefix: str, names: list[str]) -> None:
    """PUT the files one by one, as an uploader does (metadata.yaml last)."""
    for name in names:
        client.upload_file(str(folder / name), bucket, f"{key_prefix}/{name}")


@pytest.mark.s3
def test_drop_on_s3_prefix_to_release_without_a_click(s3_server, s3_client, tmp_path, monkeypatch):
    bucket, drop_bucket = f"hvla-{uuid.uuid4().hex[:8]}", f"drop-{uuid.uuid4().hex[:8]}"
    for k, v in {"HVLA_LAKE_BACKEND": "s3", "HVLA_S3_BUCKET": bucket, "HVLA_S3_ENDPOINT_URL": s3_server,
                 "HVLA_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "home" / "dagster"),
                 "HVLA_DROP_URI": f"s3://{drop_bucket}/uploads/site-a", "HVLA_DROP_SETTLE_SECONDS": "0",
                 "HVLA_TIMEZONE": "UTC", "HVLA_RELEASE_REFRESH_AT": "00:00"}.items():
        monkeypatch.setenv(k, v)
    s3_client.create_bucket(Bucket=drop_bucket)
    recs = tmp_path / "recs"
    for i in (1, 2, 3):
        write_recording(recs, episode_id=f"ep-s3-{i}", seed=i)
    for i in (1, 2):
        _upload(s3_client, drop_bucket, recs / f"ep-s3-{i}", f"uploads/site-a/g1-001/ep-s3-{i}",
                [f"ep-s3-{i}_0.mcap", "operator_notes.md", "metadata.yaml"])
    _upload(s3_client, drop_bucket, recs / "ep-s3-3", "uploads/site-a/g1-001/ep-s3-3", ["ep-s3-3_0.mcap"])  # partial
    (tmp_path / "spec.yaml").write_text(SPEC)

    from hvla_platform.cli.release import register_release_file
    from hvla_platform.defs.resources import lake_from_env
    from hvla_platform.lib.dataset.release_refresh import plan_refresh
    from hvla_platform.lib.dataset.releases import load_release
    from hvla_platform.lib.core.lake import ObjectExistsError
    from hvla_platform.cli.orchestration import instance, load_defs, run_job

    lake = lake_from_env().get_lake()
    assert lake.root_uri().startswith(f"s3://{bucket}")
    defs, inst = load_defs(), instance()
    repo = defs.get_repository_def()
    assert register_release_file(tmp_path / "spec.yaml") == "s3-v1"  # follows new data (partitions: all)

    def evaluate(sensor: str, cursor=None):
        with dg.build_sensor_context(instance_ref=inst.get_ref(), repository_def=repo, cursor=cursor,
                                     resources=repo.get_top_level_resources()) as ctx:
            res = repo.get_sensor_def(sensor).evaluate_tick(ctx)
        for req in res.dynamic_partitions_requests:  # what the sensor daemon does with them
            inst.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        return res

    # 1. the landing sensor lands the complete uploads (not the partial one) and requests their ingest
    landed = evaluate("landing_sensor")
    [req] = landed.run_requests
    assert req.partition_key == PART
    assert sorted(k.split("/")[3] for k in lake.list_keys("landing") if k.endswith("metadata.yaml")) == [
        "ep-s3-1", "ep-s3-2"]
    o = run_job(defs, inst, "ingest_job", req.partition_key, tags=req.tags)
    assert o.success, o.error
    assert o.materializations["raw_mcap"]["dagster/uri"].startswith(f"s3://{bucket}/raw-mcap/")
    assert o.materializations["episodes_hdf5"]["hvla/num_episodes"] == 2
    assert evaluate("landing_sensor", landed.cursor).run_requests == []

    # 2. the nightly refresh snapshots the release that follows new data and builds it
    refresh = evaluate("nightly_release_refresh")
    [rel] = refresh.run_requests
    snapshot = rel.partition_key
    assert re.fullmatch(r"s3-v1-\d{8}", snapshot) and load_release(lake, snapshot).partitions == (tuple(PART.split("|")),)
    derivatives = evaluate("release_derivatives_automation")  # its first evaluation, before the build
    o = run_job(defs, inst, "release_job", snapshot, tags=rel.tags)
    assert o.success, o.error
    # release_job built the norm stats, cache and openpi export itself: declarative automation has nothing to add
    assert evaluate("release_derivatives_automation", derivatives.cursor).run_requests == []
    assert set(o.materializations) == {"lerobot_dataset", "norm_stats", "robodm_cache", "openpi_export"}
    m = lake.read_manifest(f"lerobot/hvla/s3/{snapshot}")
    assert m["num_episodes"] == 2 and m["probe"]["num_episodes"] == 2
    keys = lake.list_keys(f"lerobot/hvla/s3/{snapshot}")
    assert any(k.endswith(".mp4") for k in keys) and any(k.endswith("meta/info.json") for k in keys)
    assert lake.read_manifest(f"norm-stats/{snapshot}") is not None and lake.exists(f"norm-stats/{snapshot}/norm_stats.json")
    assert len([k for k in lake.list_keys(f"robodm-cache/{snapshot}") if k.endswith(".vla")]) == 2
    # once a night; and with no new data since, the next night takes no snapshot
    assert "already refreshed" in evaluate("nightly_release_refresh", refresh.cursor).skip_message
    assert plan_refresh(lake, dt.date.today() + dt.timedelta(days=1))[0] == []

    # raw objects on S3 are write-once
    with pytest.raises(ObjectExistsError):
        lake.write_bytes("raw-mcap/2026-11-10/g1-001/ep-s3-1/ep-s3-1_0.mcap", b"overwrite", write_once=True)
