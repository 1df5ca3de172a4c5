"""Incremental, parallel partition conversion (``convert_partition``) on real MCAP recordings: a newly
landed episode is the only one converted and the earlier episode's file is carried over untouched;
a changed QA threshold converts everything again; a withdrawn episode leaves the artifact; two
worker processes write the same bytes as one; a failing episode in the pool is quarantined alone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hvla_platform.lib.core.keys import episodes_prefix
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ingest.landing import land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.ops.revocation import revoke_consent
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.processing.pool import ordered_map
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform_tests.fixtures.recordings import default_rights, write_recording

DAY, ROBOT = "2026-11-12", "g1-001"
PREFIX = episodes_prefix(DAY, ROBOT)
LAKE_WIDE = ("duplicate", "recording_complete")  # redone over the lake at every version


@pytest.fixture(scope="module")
def recs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("recs")
    return {
        "ep-inc-a": write_recording(root, episode_id="ep-inc-a", capture_day=DAY, seed=11),
        "ep-inc-b": write_recording(root, episode_id="ep-inc-b", capture_day=DAY, seed=12,
                                    rights=default_rights(consent_refs=["consent-inc-b"])),
        "ep-inc-c": write_recording(root, episode_id="ep-inc-c", capture_day=DAY, seed=13),
        "ep-inc-bad": write_recording(root, episode_id="ep-inc-bad", capture_day=DAY, seed=14, defects=("empty_task",)),
    }


def _land(lake: LocalLake, *folders: Path) -> None:
    for f in folders:
        assert land_recording(lake, f).status == "landed"
    ingest_partition(lake, DAY, ROBOT)


def _stat(lake: LocalLake, rel: str) -> tuple[bytes, int]:
    p = lake.path(f"{PREFIX}/{rel}")
    return p.read_bytes(), p.stat().st_mtime_ns


def _rows(lake: LocalLake) -> dict[str, dict]:
    return {r["episode_id"]: r for r in lake.read_manifest(PREFIX)["conversions"]}


def _own(row: dict) -> dict:
    """A conversions row without the lake-wide checks (and the score they feed)."""
    out = {k: v for k, v in row.items() if k not in ("qa_checks", "quality_score", "quality_components")}
    out["qa_checks"] = {k: v for k, v in row["qa_checks"].items() if k not in LAKE_WIDE}
    return out


@pytest.fixture(scope="module")
def grown(tmp_path_factory, recs):
    """One episode landed and converted, then a second landed and converted."""
    lake = LocalLake(tmp_path_factory.mktemp("grow") / "lake")
    _land(lake, recs["ep-inc-a"])
    first = convert_partition(lake, DAY, ROBOT)
    before = {"h5": _stat(lake, "ep-inc-a.h5"), "row": _rows(lake)["ep-inc-a"],
              "files": {f["path"]: f["sha256"] for f in lake.read_manifest(PREFIX)["files"]}}
    time.sleep(0.01)  # a rewritten file would get a later mtime
    _land(lake, recs["ep-inc-b"])
    second = convert_partition(lake, DAY, ROBOT)
    return lake, first, second, before


def test_landing_a_second_episode_converts_only_it(grown):
    lake, first, second, before = grown
    assert first.status == "materialized" and first.attempted == ["ep-inc-a"]
    assert second.status == "materialized"
    assert second.attempted == ["ep-inc-b"] and second.reused == ["ep-inc-a"]
    # the first episode's file is the one published before: same bytes, never rewritten
    assert _stat(lake, "ep-inc-a.h5") == before["h5"]
    manifest = lake.read_manifest(PREFIX)
    assert manifest["episode_ids"] == ["ep-inc-a", "ep-inc-b"]
    files = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert files["ep-inc-a.h5"] == before["files"]["ep-inc-a.h5"] and "ep-inc-b.h5" in files
    rows = _rows(lake)
    assert [rows[e]["status"] for e in ("ep-inc-a", "ep-inc-b")] == ["converted", "converted"]
    assert _own(rows["ep-inc-a"]) == _own(before["row"])  # its QA results carried over
    assert set(rows["ep-inc-a"]["qa_checks"]) >= set(LAKE_WIDE)  # and re-checked against the lake
    # the partition's QA report covers both episodes
    report = json.loads(lake.read_bytes(f"{PREFIX}/qa_metrics.json"))
    assert set(report["episodes"]) == {"ep-inc-a", "ep-inc-b"}
    assert "ep-inc-a" in lake.read_bytes(f"{PREFIX}/qa_report.html").decode()
    # nothing changed since: cached, nothing converted
    again = convert_partition(lake, DAY, ROBOT)
    assert again.status == "cached" and again.attempted == []


def test_publishing_the_grown_partition_neither_copies_nor_rehashes_the_carried_episode(tmp_path, recs, monkeypatch):
    from hvla_platform.lib.core import manifest as manifest_mod
    from hvla_platform.lib.core.lake import sha256_file

    lake = LocalLake(tmp_path / "lake")
    _land(lake, recs["ep-inc-a"])
    convert_partition(lake, DAY, ROBOT)
    inode = lake.path(f"{PREFIX}/ep-inc-a.h5").stat().st_ino
    hashed: list[str] = []

    def counting(path):
        hashed.append(Path(path).name)
        return sha256_file(path)

    monkeypatch.setattr(manifest_mod, "sha256_file", counting)
    _land(lake, recs["ep-inc-b"])
    assert convert_partition(lake, DAY, ROBOT).reused == ["ep-inc-a"]
    assert "ep-inc-a.h5" not in hashed and "ep-inc-b.h5" in hashed  # only what is new is read
    published = lake.path(f"{PREFIX}/ep-inc-a.h5")
    assert published.stat().st_ino == inode  # the same file, linked into the new version
    files = {f["path"]: f["sha256"] for f in lake.read_manifest(PREFIX)["files"]}
    assert files["ep-inc-a.h5"] == sha256_file(published)  # and the manifest's hash is still true


def test_a_changed_qa_threshold_converts_every_episode_again(tmp_path, recs):
    lake = LocalLake(tmp_path / "lake")
    _land(lake, recs["ep-inc-a"], recs["ep-inc-c"])
    assert convert_partition(lake, DAY, ROBOT).attempted == ["ep-inc-a", "ep-inc-c"]
    old = _stat(lake, "ep-inc-a.h5")
    time.sleep(0.01)
    res = convert_partition(lake, DAY, ROBOT, qa=QAThresholds(spike_k=9.0))
    assert res.status == "materialized" and res.reused == [] and res.attempted == ["ep-inc-a", "ep-inc-c"]
    new = _stat(lake, "ep-inc-a.h5")
    assert new[0] == old[0] and new[1] != old[1]  # rewritten (same content: the format does not hold QA)
    assert lake.read_manifest(PREFIX)["config"]["qa"]["spike_k"] == 9.0


def test_a_withdrawn_episode_leaves_the_artifact_and_the_others_are_kept(tmp_path, recs):
    lake = LocalLake(tmp_path / "lake")
    _land(lake, recs["ep-inc-a"], recs["ep-inc-b"])
    convert_partition(lake, DAY, ROBOT)
    kept = _stat(lake, "ep-inc-a.h5")
    revoke_consent(lake, "consent-inc-b", reason="the operator withdrew consent", by="test")
    manifest = lake.read_manifest(PREFIX)
    assert manifest["episode_ids"] == ["ep-inc-a"]
    assert not lake.exists(f"{PREFIX}/ep-inc-b.h5")
    assert [r["episode_id"] for r in manifest["conversions"]] == ["ep-inc-a"]
    assert _stat(lake, "ep-inc-a.h5") == kept
    res = convert_partition(lake, DAY, ROBOT)
    assert res.status == "cached" and [s["episode_id"] for s in res.skipped] == ["ep-inc-b"]


def _converted(root: Path, recs: dict[str, Path], workers: int) -> LocalLake:
    lake = LocalLake(root)
    _land(lake, *(recs[e] for e in ("ep-inc-a", "ep-inc-bad", "ep-inc-c")))
    res = convert_partition(lake, DAY, ROBOT, workers=workers)
    assert res.attempted == ["ep-inc-a", "ep-inc-bad", "ep-inc-c"]
    return lake


@pytest.fixture(scope="module")
def serial_and_parallel(tmp_path_factory, recs) -> tuple[LocalLake, LocalLake]:
    return (_converted(tmp_path_factory.mktemp("serial") / "lake", recs, 1),
            _converted(tmp_path_factory.mktemp("parallel") / "lake", recs, 2))


def test_two_workers_write_the_same_bytes_as_one(serial_and_parallel):
    serial, parallel = serial_and_parallel
    ms, mp = serial.read_manifest(PREFIX), parallel.read_manifest(PREFIX)
    assert ms["files"] == mp["files"]  # every file (HDF5, thumbnails, QA report) with its sha256
    assert ms["conversions"] == mp["conversions"] and ms["episode_ids"] == mp["episode_ids"]
    for f in ms["files"]:
        assert serial.read_bytes(f"{PREFIX}/{f['path']}") == parallel.read_bytes(f"{PREFIX}/{f['path']}")


def test_a_failing_episode_in_the_pool_is_quarantined_alone(serial_and_parallel):
    _, lake = serial_and_parallel
    rows = _rows(lake)
    assert list(rows) == ["ep-inc-a", "ep-inc-bad", "ep-inc-c"]  # partition order, whoever finished first
    assert rows["ep-inc-a"]["status"] == rows["ep-inc-c"]["status"] == "converted"
    assert rows["ep-inc-bad"]["status"] == "failed" and "empty_task" in rows["ep-inc-bad"]["reason"]
    assert lake.read_manifest(PREFIX)["episode_ids"] == ["ep-inc-a", "ep-inc-c"]
    assert lake.exists(f"{PREFIX}/ep-inc-a.h5") and lake.exists(f"{PREFIX}/ep-inc-c.h5")
    assert not lake.exists(f"{PREFIX}/ep-inc-bad.h5")
    assert not [k for k in lake.list_keys(PREFIX) if k.endswith(".tmp")]  # no half file
    reason = lake.read_json(f"quarantine/{DAY}/{ROBOT}/ep-inc-bad/reason.json")
    assert reason["stage"] == "episodes_hdf5" and "empty_task" in reason["reasons"][0]
    assert not lake.exists(f"quarantine/{DAY}/{ROBOT}/ep-inc-a/reason.json")


def _slow_square(x: int) -> int:
    time.sleep(0.05 * (3 - x))  # the first item finishes last
    return x * x


def _fail_on_two(x: int) -> int:
    if x == 2:
        raise ValueError("item 2 is bad")
    return x


def test_ordered_map_keeps_the_input_order_and_releases_every_item():
    released: list[int] = []
    assert ordered_map(_slow_square, [0, 1, 2, 3], workers=2, after=released.append) == [0, 1, 4, 9]
    assert sorted(released) == [0, 1, 2, 3]
    released.clear()
    with pytest.raises(ValueError, match="item 2 is bad"):
        ordered_map(_fail_on_two, [0, 1, 2, 3, 4, 5, 6], workers=2, after=released.append)
    assert len(released) == len(set(released)) and 2 in released  # each item started is released once


def test_a_process_that_loaded_jax_or_torch_is_not_forked(monkeypatch):
    """fork only where it is safe: after JAX or torch is imported (their native thread pools) the
    conversion pool starts its workers from a fork server."""
    import sys
    import types

    from hvla_platform.lib.processing import pool

    monkeypatch.delenv("HVLA_CONVERT_START_METHOD", raising=False)
    for name in pool.NATIVE_THREADED:
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert pool.start_method() == "fork"
    monkeypatch.setitem(sys.modules, "jax", types.ModuleType("jax"))
    assert pool.start_method() == "forkserver"
    monkeypatch.setenv("HVLA_CONVERT_START_METHOD", "fork")  # the operator's choice wins
    assert pool.start_method() == "fork"


def test_workers_from_a_fork_server_write_the_same_bytes(tmp_path, recs, serial_and_parallel, monkeypatch):
    monkeypatch.setenv("HVLA_CONVERT_START_METHOD", "forkserver")
    serial, _ = serial_and_parallel
    lake = _converted(tmp_path / "lake", recs, 2)
    assert lake.read_manifest(PREFIX)["files"] == serial.read_manifest(PREFIX)["files"]
