"""The landing sensor's plain logic: drop area (local folder and S3 prefix) → write-once landing.

Real recordings, a real local lake, and an S3 drop area on a SeaweedFS server over HTTP.
"""

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from hvla_platform.lib.ingest.drop_area import LocalDropArea, S3DropArea, parse_drop_uri
from hvla_platform.lib.core.keys import CONFLICTS
from hvla_platform.lib.ingest.drop_watch import watch_drop_area
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.fixtures.recordings import write_recording

DAY, ROBOT = "2026-11-10", "g1-001"


@pytest.fixture(scope="module")
def recs(tmp_path_factory) -> Path:
    """Source recordings: ep-1, ep-2, and ep-1 recorded again with other data (a changed re-upload)."""
    root = tmp_path_factory.mktemp("recs")
    write_recording(root, episode_id="ep-1", seed=1, duration_s=1.0)
    write_recording(root, episode_id="ep-2", seed=2, duration_s=1.0)
    write_recording(root / "changed", episode_id="ep-1", seed=7, duration_s=1.0)
    return root


class LocalDrop:
    """Uploads into a local drop folder the way an uploader does: the MCAP first, metadata.yaml last."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.area = LocalDropArea(root)

    def put(self, src: Path, folder: str, names: list[str]) -> None:
        (self.root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(src / name, self.root / folder / name)

    def snapshot(self) -> dict[str, bytes]:
        return {p.relative_to(self.root).as_posix(): p.read_bytes() for p in self.root.rglob("*") if p.is_file()}


class S3Drop:
    """Uploads into an S3 drop prefix (one PUT per file, metadata.yaml last)."""

    def __init__(self, client, bucket: str, prefix: str):
        self.client, self.bucket, self.prefix = client, bucket, prefix
        client.create_bucket(Bucket=bucket)
        self.area = S3DropArea(bucket, prefix, client)

    def put(self, src: Path, folder: str, names: list[str]) -> None:
        for name in names:
            self.client.upload_file(str(src / name), self.bucket, f"{self.prefix}/{folder}/{name}")

    def snapshot(self) -> dict[str, bytes]:
        objs = self.client.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {o["Key"]: self.client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read() for o in objs}


@pytest.fixture(params=["local", "s3"])
def drop(request, tmp_path):
    if request.param == "local":
        return LocalDrop(tmp_path / "drop")
    return S3Drop(request.getfixturevalue("s3_client"), f"drop-{uuid.uuid4().hex[:8]}", "uploads/site-a")


@pytest.fixture()
def lake(tmp_path):
    return LocalLake(tmp_path / "lake")


FILES = ["ep-1_0.mcap", "operator_notes.md", "metadata.yaml"]


def test_partial_upload_waits_then_lands_once(lake, drop, recs):
    # the MCAP has arrived, metadata.yaml not yet: a partial upload, ignored
    drop.put(recs / "ep-1", "robot-a/ep-1", ["ep-1_0.mcap"])
    p = watch_drop_area(lake, drop.area, {}, settle_seconds=0)
    assert p.handled == [] and p.waiting == [drop.area.uri("robot-a/ep-1")] and p.seen == {}
    assert lake.list_keys("landing") == [] and lake.list_keys("quarantine") == []
    # metadata.yaml, written last, completes it: it lands, under its capture day / robot / episode
    drop.put(recs / "ep-1", "robot-a/ep-1", ["operator_notes.md", "metadata.yaml"])
    before = drop.snapshot()
    p = watch_drop_area(lake, drop.area, p.seen, settle_seconds=0)
    assert [(h.result.status, h.result.episode_id, h.uri) for h in p.handled] == [
        ("landed", "ep-1", drop.area.uri("robot-a/ep-1"))]
    assert p.partitions() == [(DAY, ROBOT)]
    assert lake.read_bytes(f"landing/{DAY}/{ROBOT}/ep-1/ep-1_0.mcap") == (recs / "ep-1" / "ep-1_0.mcap").read_bytes()
    # the same upload is not landed again; the drop area was only read
    again = watch_drop_area(lake, drop.area, p.seen, settle_seconds=0)
    assert again.handled == [] and again.waiting == [] and again.seen == p.seen
    assert drop.snapshot() == before


def test_changed_reupload_is_kept_as_evidence_not_landed(lake, drop, recs):
    drop.put(recs / "ep-1", "robot-a/ep-1", FILES)
    seen = watch_drop_area(lake, drop.area, {}, settle_seconds=0).seen
    landed = {k: lake.read_bytes(k) for k in lake.list_keys("landing")}
    # the robot uploads ep-1 again, with different data, into another folder of the drop area
    drop.put(recs / "changed" / "ep-1", "robot-a/retry/ep-1", FILES)
    p = watch_drop_area(lake, drop.area, seen, settle_seconds=0)
    [h] = p.handled
    assert h.result.status == "conflict" and "already landed with different content" in h.result.reason
    assert p.partitions() == [] and p.partitions("conflict") == [(DAY, ROBOT)]  # nothing new to ingest
    assert drop.area.uri("robot-a/retry/ep-1") in h.result.reason
    assert {k: lake.read_bytes(k) for k in lake.list_keys("landing")} == landed  # nothing replaced
    record = lake.read_json(h.conflict_record)
    assert h.conflict_record.startswith(f"{CONFLICTS}/{DAY}/{ROBOT}/ep-1/")
    assert record["source"] == drop.area.uri("robot-a/retry/ep-1")
    assert record["differing_files"]["ep-1_0.mcap"]["landed_sha256"] != record["differing_files"]["ep-1_0.mcap"]["new_sha256"]
    kept = h.conflict_record.rsplit("/", 1)[0] + "/files/ep-1_0.mcap"
    assert lake.read_bytes(kept) == (recs / "changed" / "ep-1" / "ep-1_0.mcap").read_bytes()
    # reported once: the next pass does not look at the unchanged folder again
    assert watch_drop_area(lake, drop.area, p.seen, settle_seconds=0).handled == []


def test_bad_and_withdrawn_uploads_are_reported_once(lake, drop, recs, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copyfile(recs / "ep-2" / "ep-2_0.mcap", bad / "ep-2_0.mcap")
    (bad / "metadata.yaml").write_text("episode_id: [unterminated\n")
    drop.put(bad, "robot-a/broken", ["ep-2_0.mcap", "metadata.yaml"])
    drop.put(recs / "ep-2", "robot-a/ep-2", ["ep-2_0.mcap", "operator_notes.md", "metadata.yaml"])
    # ep-2's consent was withdrawn before its upload was looked at (the record `hvla rights revoke` writes)
    lake.write_json("rights-revocations/consent-2026-0001/20261111T000000Z-abc123.json", {
        "consent": "consent-2026-0001", "reason": "demonstrator withdrew consent", "at": "2026-11-11T00:00:00+00:00",
        "episodes": [], "by": "dpo", "raw_policy": "restrict", "impacted": []})
    p = watch_drop_area(lake, drop.area, {}, settle_seconds=0)
    by = {h.folder: h.result for h in p.handled}
    assert by["robot-a/broken"].status == "rejected"
    assert by["robot-a/broken"].reason.startswith(drop.area.uri("robot-a/broken") + "/metadata.yaml: cannot read")
    [reason_key] = [k for k in lake.list_keys("quarantine/_rejected") if k.endswith("reason.json")]
    assert lake.read_json(reason_key)["source"] == drop.area.uri("robot-a/broken")
    assert by["robot-a/ep-2"].status == "withdrawn" and "consent-2026-0001" in by["robot-a/ep-2"].reason
    assert lake.list_keys("landing") == [] and p.partitions() == []
    assert watch_drop_area(lake, drop.area, p.seen, settle_seconds=0).handled == []


def test_local_folder_lands_only_once_settled(lake, tmp_path, recs):
    drop = LocalDrop(tmp_path / "drop")
    drop.put(recs / "ep-1", "ep-1", FILES)
    now = time.time()
    p = watch_drop_area(lake, drop.area, {}, now=now, settle_seconds=60)
    assert p.handled == [] and p.settling == [drop.area.uri("ep-1")] and lake.list_keys("landing") == []
    for f in (drop.root / "ep-1").iterdir():
        os.utime(f, (now - 120, now - 120))
    p = watch_drop_area(lake, drop.area, {}, now=now, settle_seconds=60)
    assert [h.result.status for h in p.handled] == ["landed"]


def test_time_budget_defers_the_rest_to_the_next_pass(lake, tmp_path, recs):
    drop = LocalDrop(tmp_path / "drop")
    drop.put(recs / "ep-1", "a/ep-1", FILES)
    drop.put(recs / "ep-2", "b/ep-2", ["ep-2_0.mcap", "metadata.yaml"])
    p = watch_drop_area(lake, drop.area, {}, settle_seconds=0, budget_seconds=0)
    assert [h.folder for h in p.handled] == ["a/ep-1"] and p.deferred == [drop.area.uri("b/ep-2")]
    p = watch_drop_area(lake, drop.area, p.seen, settle_seconds=0, budget_seconds=0)
    assert [h.folder for h in p.handled] == ["b/ep-2"] and p.deferred == []


def test_missing_drop_area_and_bad_uris_say_what_is_wrong(tmp_path, s3_client):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LocalDropArea(tmp_path / "nowhere").scan()
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket' does not exist"):
        S3DropArea("no-such-bucket", "uploads", s3_client).scan()
    assert parse_drop_uri("s3://drop/uploads/site-a/") == ("s3", "drop", "uploads/site-a")
    assert parse_drop_uri("file:///data/drop") == ("local", "/data/drop", "")
    for bad, msg in [("", "empty"), ("s3:///x", "names no bucket"), ("gs://b/p", "only a local folder")]:
        with pytest.raises(ValueError, match=msg):
            parse_drop_uri(bad)
