"""The drop area with a rosbag2 bag directory inside a recording folder, locally and on a real S3
server: the bag directory (which has a ``metadata.yaml`` of its own) is part of its recording, never a
recording itself; the recording waits until hvla's ``metadata.yaml`` arrives, then lands with the
bag's files under their relative paths."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ingest.drop_area import LocalDropArea, S3DropArea
from hvla_platform.lib.ingest.drop_watch import watch_drop_area
from hvla_platform_tests.fixtures.bags import as_layout
from hvla_platform_tests.fixtures.recordings import write_recording

DAY, ROBOT = "2026-11-10", "g1-001"


@pytest.fixture(scope="module")
def rec(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("drop-bags")
    base = write_recording(root / "base", episode_id="ep-base", duration_s=1.0, seed=8)
    return as_layout(base, root / "ep-sq", "sqlite3_split")


@pytest.fixture(params=["local", "s3"])
def drop(request, tmp_path):
    if request.param == "local":
        root = tmp_path / "drop"
        root.mkdir()

        def put(src: Path, rel: str, key: str) -> None:
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, root / key)
        return LocalDropArea(root), put
    client = request.getfixturevalue("s3_client")
    bucket, prefix = f"drop-{uuid.uuid4().hex[:8]}", "uploads"
    client.create_bucket(Bucket=bucket)

    def put_s3(src: Path, rel: str, key: str) -> None:
        client.upload_file(str(src / rel), bucket, f"{prefix}/{key}")
    return S3DropArea(bucket, prefix, client), put_s3


def test_a_rosbag2_directory_belongs_to_its_recording_folder(rec, drop, tmp_path):
    area, put = drop
    lake = LocalLake(tmp_path / "lake")
    bag_files = sorted(p.relative_to(rec).as_posix() for p in (rec / "bag").iterdir())
    assert len(bag_files) > 3 and "bag/metadata.yaml" in bag_files
    for rel in bag_files:  # the bag first (with rosbag2's own metadata.yaml) ...
        put(rec, rel, f"robot-a/ep-sq/{rel}")
    (folder,) = area.scan()
    assert folder.key == "robot-a/ep-sq" and folder.names == bag_files and not folder.complete
    p = watch_drop_area(lake, area, {}, settle_seconds=0)
    assert p.handled == [] and p.waiting == [area.uri("robot-a/ep-sq")]
    for rel in ("operator_notes.md", "metadata.yaml"):  # ... hvla's metadata.yaml last
        put(rec, rel, f"robot-a/ep-sq/{rel}")
    p = watch_drop_area(lake, area, p.seen, settle_seconds=0)
    assert [(h.result.status, h.result.episode_id) for h in p.handled] == [("landed", "ep-sq")], p.handled
    for rel in bag_files + ["operator_notes.md", "metadata.yaml"]:
        assert lake.read_bytes(f"landing/{DAY}/{ROBOT}/ep-sq/{rel}") == (rec / rel).read_bytes(), rel
