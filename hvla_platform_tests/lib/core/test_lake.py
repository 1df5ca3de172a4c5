"""Both lake backends behave the same: atomic objects, write-once, manifest-committed artifacts."""

import json
import uuid

import pytest

from hvla_platform.lib.core.lake import MANIFEST_NAME, ArtifactNotFoundError, LocalLake, ObjectExistsError, S3Lake


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path):
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    client = request.getfixturevalue("s3_client")
    return S3Lake(f"lake-{uuid.uuid4().hex[:10]}", client)


def test_objects_roundtrip_and_listing(lake):
    lake.write_bytes("a/b/one.bin", b"1")
    lake.write_json("a/two.json", {"x": 1})
    assert lake.read_bytes("a/b/one.bin") == b"1"
    assert lake.read_json("a/two.json") == {"x": 1}
    assert lake.list_keys("a") == ["a/b/one.bin", "a/two.json"]
    assert lake.list_keys("a/b") == ["a/b/one.bin"]
    assert lake.list_keys("nothing") == []
    assert lake.exists("a/b/one.bin") and not lake.exists("a/b/none")
    assert lake.size("a/two.json") == len(json.dumps({"x": 1}, indent=2, sort_keys=True))


def test_write_once_refuses_to_replace(lake):
    lake.write_bytes("raw/x.mcap", b"original", write_once=True)
    with pytest.raises(ObjectExistsError):
        lake.write_bytes("raw/x.mcap", b"tampered", write_once=True)
    assert lake.read_bytes("raw/x.mcap") == b"original"


def test_put_file_write_once(lake, tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(b"abc")
    lake.put_file(src, "raw/f.bin", write_once=True)
    src.write_bytes(b"xyz")
    with pytest.raises(ObjectExistsError):
        lake.put_file(src, "raw/f.bin", write_once=True)
    assert lake.read_bytes("raw/f.bin") == b"abc"
    assert lake.sha256("raw/f.bin") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize("key", ["../escape", "/abs/path", "a/../../b", "a/./b", "a\\b", ""])
def test_keys_cannot_escape(lake, key):
    with pytest.raises(ValueError):
        lake.write_bytes(key, b"x")


def test_artifact_is_invisible_until_its_manifest_is_written(lake, tmp_path):
    src = tmp_path / "art"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "data.txt").write_text("v1")
    assert lake.read_manifest("arts/one") is None
    lake.publish_artifact("arts/one", src, {"version": 1})
    assert lake.read_manifest("arts/one") == {"version": 1}
    assert lake.list_artifacts("arts") == ["arts/one"]
    with lake.local_artifact("arts/one") as d:
        assert (d / "sub" / "data.txt").read_text() == "v1"
        assert (d / MANIFEST_NAME).exists()


def test_republish_replaces_whole_artifact(lake, tmp_path):
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    v1.mkdir()
    v2.mkdir()
    (v1 / "old.txt").write_text("old")
    (v1 / "keep.txt").write_text("1")
    (v2 / "keep.txt").write_text("2")
    lake.publish_artifact("arts/x", v1, {"v": 1})
    lake.publish_artifact("arts/x", v2, {"v": 2})
    assert sorted(k.rsplit("/", 1)[1] for k in lake.list_keys("arts/x")) == sorted(["keep.txt", MANIFEST_NAME])
    assert lake.read_bytes("arts/x/keep.txt") == b"2"


def test_crash_before_manifest_leaves_no_visible_artifact(lake, tmp_path):
    """Simulate a crash mid-publish: data files uploaded, manifest never written."""
    lake.write_bytes("arts/half/data.txt", b"partial")
    assert lake.read_manifest("arts/half") is None
    assert lake.list_artifacts("arts") == []
    with pytest.raises(ArtifactNotFoundError):
        with lake.local_artifact("arts/half"):
            pass


def test_local_publish_is_a_single_rename(tmp_path, monkeypatch):
    """On the local backend a failure while staging leaves the previous version intact."""
    lake = LocalLake(tmp_path / "lake")
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "a.txt").write_text("v1")
    lake.publish_artifact("arts/y", v1, {"v": 1})
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "a.txt").write_text("v2")
    import shutil

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copytree", boom)
    with pytest.raises(OSError):
        lake.publish_artifact("arts/y", v2, {"v": 2})
    assert lake.read_manifest("arts/y") == {"v": 1}
    assert lake.read_bytes("arts/y/a.txt") == b"v1"
