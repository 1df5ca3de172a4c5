"""WORM raw storage (seed 001): on an S3 bucket with Object Lock, raw objects are written with a
COMPLIANCE retention period from the episode's rights, so the store itself refuses to delete or
overwrite them; a consent withdrawal with ``--raw-policy delete`` says the store keeps them until
that date. Against a real S3 server (SeaweedFS)."""

import datetime as dt
import uuid

import pytest

from hvla_platform.lib.core.lake import LocalLake, ObjectExistsError, S3Lake
from hvla_platform.lib.core.withdrawals import audit_log
from hvla_platform.lib.ingest.landing import find_recordings, land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.ops.revocation import revoke_consent
from hvla_platform_tests.fixtures.recordings import default_rights, write_recording

DAY, ROBOT, EP = "2026-11-10", "g1-001", "ep-worm-1"
RAW_MCAP = f"raw-mcap/{DAY}/{ROBOT}/{EP}/{EP}_0.mcap"


@pytest.fixture()
def worm_lake(s3_client, tmp_path):
    bucket = f"worm-{uuid.uuid4().hex[:10]}"
    s3_client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    lake = S3Lake(bucket, s3_client)
    write_recording(tmp_path / "recs", episode_id=EP, seed=1,
                    rights=default_rights(consent_refs=["consent-worm"], retention_until="2031-01-01"))
    for rec in find_recordings(tmp_path / "recs"):
        assert land_recording(lake, rec).status == "landed"
    assert ingest_partition(lake, DAY, ROBOT).episodes[0].convertible
    return lake


@pytest.mark.s3
def test_raw_objects_are_locked_until_the_rights_retention_date(worm_lake, s3_client):
    assert worm_lake.enforces_retention
    assert worm_lake.retention_until(RAW_MCAP) == dt.date(2031, 1, 1)
    retention = s3_client.get_object_retention(Bucket=worm_lake.bucket, Key=RAW_MCAP)["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    version = s3_client.head_object(Bucket=worm_lake.bucket, Key=RAW_MCAP)["VersionId"]
    with pytest.raises(s3_client.exceptions.ClientError, match="AccessDenied"):  # the store refuses, not us
        s3_client.delete_object(Bucket=worm_lake.bucket, Key=RAW_MCAP, VersionId=version)
    with pytest.raises(ObjectExistsError):
        worm_lake.write_bytes(RAW_MCAP, b"tampered", write_once=True)
    # the landing copy is a staging area, not evidence: it carries no lock
    assert worm_lake.retention_until(f"landing/{DAY}/{ROBOT}/{EP}/{EP}_0.mcap") is None


@pytest.mark.s3
def test_revoke_with_delete_says_the_store_holds_the_raw_data_until_its_retention_date(worm_lake, s3_client):
    version = s3_client.head_object(Bucket=worm_lake.bucket, Key=RAW_MCAP)["VersionId"]
    res = revoke_consent(worm_lake, "consent-worm", reason="withdrawn (ticket 1)", by="dpo", raw_policy="delete",
                         rebuild=False)
    assert RAW_MCAP in res.raw_handled[EP] and not worm_lake.exists(RAW_MCAP)  # hidden from every reader
    assert res.raw_held[EP][RAW_MCAP] == "2031-01-01"
    held = [e for e in audit_log(worm_lake) if e["event"] == "raw_held_by_store"]
    assert held and held[0]["retained_until"][RAW_MCAP] == "2031-01-01" and "COMPLIANCE" in held[0]["detail"]
    versions = s3_client.list_object_versions(Bucket=worm_lake.bucket, Prefix=RAW_MCAP).get("Versions", [])
    assert [v["VersionId"] for v in versions] == [version]  # the locked data is still in the store


@pytest.mark.s3
def test_a_bucket_without_object_lock_or_a_local_lake_enforces_nothing(s3_client, tmp_path):
    plain = S3Lake(f"plain-{uuid.uuid4().hex[:10]}", s3_client)
    local = LocalLake(tmp_path / "lake")
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    for lake in (plain, local):
        assert not lake.enforces_retention
        lake.put_file_retained(src, "raw-mcap/a/b", retain_until=dt.date(2031, 1, 1))
        assert lake.retention_until("raw-mcap/a/b") is None
        with pytest.raises(ObjectExistsError):  # still write-once
            lake.put_file_retained(src, "raw-mcap/a/b", retain_until=dt.date(2031, 1, 1))
