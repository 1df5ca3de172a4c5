"""The tables stages hand to each other (``hvla_platform.lib.core.tables``): each schema accepts what
the pipeline really writes (real small artifacts: ingest + conversion of MCAP recordings, a Robo-DM
cache built from a LeRobot release, the lineage index of that lake) and its reader refuses a
corrupted copy with one line naming the table, where it is, the column and the rows."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvla_platform.cli.qa import cmd_qa
from hvla_platform.lib.core import tables
from hvla_platform.lib.core.keys import PARTITION_INDEX, episodes_prefix, raw_prefix
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.tables import TableError
from hvla_platform.lib.dataset import lerobot_release as lr
from hvla_platform.lib.dataset import robodm_cache as rc
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.ingest.raw import RAW_CHECKS, read_partition_index
from hvla_platform.lib.lineage import graph as lin
from hvla_platform.lib.processing.build import PROCESSING_CHECKS, convert_partition
from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform.lib.formats.robodm_manifest import MANIFEST_COLUMNS, write_cache_manifest
from hvla_platform.lib.training.data import CacheError, read_manifest as read_training_manifest
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.recordings import write_recording
from hvla_platform_tests.lib.episode_factory import write_episodes

DAY, ROBOT = "2026-11-10", "g1-001"
INDEX_KEY = f"{raw_prefix(DAY, ROBOT)}/{PARTITION_INDEX}"
REPO = "hvla/t-tables"


# ---- real artifacts -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> LocalLake:
    """Two good recordings and one without rights, landed, ingested and converted to HDF5."""
    tmp = tmp_path_factory.mktemp("tables")
    recs = tmp / "recs"
    write_recording(recs, episode_id="ep-good-1", seed=1)
    write_recording(recs, episode_id="ep-good-2", seed=2)
    write_recording(recs, episode_id="ep-no-rights", seed=5, defect="no_rights")
    lake = LocalLake(tmp / "lake")
    assert land_and_convert(lake, recs, DAY, ROBOT, SyncConfig(fps=20)) == "materialized"
    return lake


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> rc.RoboDMCacheResult:
    """A Robo-DM cache built from a two-episode LeRobot release (one held out)."""
    tmp = tmp_path_factory.mktemp("tables-cache")
    paths = write_episodes(tmp / "h5", 2, num_frames=12, height=48, width=64)
    spec = ReleaseSpec.from_mapping({"name": "t-tables", "repo_id": REPO, "fps": 20,
                                     "heldout": {"episode_ids": ["ep-001"]}})
    release = lr.build_lerobot_dataset(spec, paths, tmp / "ds")
    return rc.build_robodm_cache(release.root, REPO, tmp / "cache", release="t-tables",
                                 converter_version="test-1", created_at="2026-11-12T08:30:00+00:00",
                                 hdf5_files=rc.local_hdf5_files(release.root, paths))


@contextlib.contextmanager
def rewritten(lake: LocalLake, key: str, change):
    """``key``'s JSON changed by ``change(doc)`` for the duration of the block, then restored."""
    original = lake.read_bytes(key)
    doc = json.loads(original)
    change(doc)
    lake.write_bytes(key, json.dumps(doc).encode())
    try:
        yield
    finally:
        lake.write_bytes(key, original)


def assert_one_line(exc: BaseException, *parts: str) -> str:
    msg = str(exc)
    assert "\n" not in msg, msg
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"
    return msg


def test_schema_names_follow_the_pipeline():
    assert tables.RAW_CHECK_NAMES == RAW_CHECKS
    assert tables.PROCESSING_CHECK_NAMES == PROCESSING_CHECKS
    assert set(tables.robodm_manifest_schema().columns) == set(MANIFEST_COLUMNS)
    assert tables.SPLITS == ("train", "heldout")


# ---- partition index ----------------------------------------------------------------------------
def test_partition_index_accepts_what_ingest_writes(lake):
    doc = read_partition_index(lake, DAY, ROBOT)
    status = {e["episode_id"]: (e["status"], e["convertible"]) for e in doc["episodes"]}
    assert status == {"ep-good-1": ("published", True), "ep-good-2": ("published", True),
                      "ep-no-rights": ("quarantined", False)}


def _episode(doc, episode_id):
    return next(e for e in doc["episodes"] if e["episode_id"] == episode_id)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: [e.pop("status") for e in d["episodes"]], ["column 'status' is missing"]),
    (lambda d: d["episodes"].append(dict(d["episodes"][0])),
     ["column 'episode_id' has duplicate value(s)", "'ep-good-1'"]),
    (lambda d: _episode(d, "ep-good-2").update(convertible="yes"),
     ["column 'convertible' has dtype String, expected Boolean at row 1 (episode_id 'ep-good-2'): 'yes'"]),
    (lambda d: _episode(d, "ep-no-rights").update(convertible=True),
     ["convertible must equal", "episode_id 'ep-no-rights'"]),
    (lambda d: _episode(d, "ep-good-1").update(status="ok"),
     ["column 'status' fails isin", "episode_id 'ep-good-1'", ": ok"]),
    (lambda d: d.update(robot_id="g1-999"), ["robot_id is 'g1-999', expected 'g1-001'"]),
])
def test_partition_index_refuses_a_corrupted_index_on_read(lake, change, expected):
    with rewritten(lake, INDEX_KEY, change):
        with pytest.raises(TableError) as exc:
            read_partition_index(lake, DAY, ROBOT)
    assert_one_line(exc.value, "partition index", lake.uri(INDEX_KEY), *expected)


def test_processing_refuses_a_corrupted_partition_index(lake):
    with rewritten(lake, INDEX_KEY, lambda d: _episode(d, "ep-good-1").update(sha256="not-a-sha")):
        with pytest.raises(TableError) as exc:
            convert_partition(lake, DAY, ROBOT, SyncConfig(fps=20))
    msg = assert_one_line(exc.value, "partition index", INDEX_KEY, "column 'sha256'", "'ep-good-1'")
    assert exc.value.columns == ["sha256"], msg


def test_partition_index_is_checked_before_it_is_written(lake):
    doc = read_partition_index(lake, DAY, ROBOT)
    _episode(doc, "ep-good-2")["rights"] = None  # convertible without rights
    with pytest.raises(TableError) as exc:
        tables.check_partition_index(doc, where="raw-mcap/x/_partition.json", capture_day=DAY, robot_id=ROBOT)
    assert_one_line(exc.value, "a convertible episode needs mcap_key, sha256 and rights", "'ep-good-2'")


# ---- QA results ---------------------------------------------------------------------------------
def _manifest_key(lake):
    return lake.manifest_key(episodes_prefix(DAY, ROBOT))


def _conversion(doc, episode_id):
    return next(c for c in doc["conversions"] if c["episode_id"] == episode_id)


def _qa_list(lake, monkeypatch):
    monkeypatch.setenv("HVLA_LAKE_BACKEND", "local")
    monkeypatch.setenv("HVLA_LAKE_ROOT", str(lake.root))
    return cmd_qa(argparse.Namespace(action="list", episode=None, reason="", by=None, json=False))


def test_qa_results_accept_what_processing_writes(lake, monkeypatch, capsys):
    manifest = lake.read_manifest(episodes_prefix(DAY, ROBOT))
    rows = tables.check_qa_results(manifest["conversions"], where="w")
    assert sorted(r["episode_id"] for r in rows) == ["ep-good-1", "ep-good-2"]
    assert all(r["status"] == "converted" and 0.0 <= r["quality_score"] <= 1.0 for r in rows)
    assert any(r["qa_checks"] for r in rows)  # the dynamic qa_checks.<name>.passed columns were checked
    # the cached path re-reads (and re-checks) the same table
    assert convert_partition(lake, DAY, ROBOT, SyncConfig(fps=20)).status == "cached"
    assert _qa_list(lake, monkeypatch) == 0
    assert "ep-good-1" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: _conversion(d, "ep-good-2").update(quality_score=1.7),
     ["column 'quality_score' fails in_range(0.0, 1.0)", "episode_id 'ep-good-2'", "1.7"]),
    (lambda d: d["conversions"].append(dict(d["conversions"][0])),
     ["column 'episode_id' has duplicate value(s)"]),
    (lambda d: [c.pop("status") for c in d["conversions"]], ["column 'status' is missing"]),
    (lambda d: _conversion(d, "ep-good-1").update(num_frames="41"),
     ["column 'num_frames' has dtype String, expected Int64 at row 0 (episode_id 'ep-good-1'): '41'"]),
    (lambda d: _conversion(d, "ep-good-1").update(file="other.h5"),
     ["a converted episode needs file '<episode_id>.h5'", "episode_id 'ep-good-1'"]),
    (lambda d: next(iter(_conversion(d, "ep-good-1")["qa_checks"].values())).pop("passed"),
     ["column 'qa_checks.", ".passed' has dtype String, expected Boolean at row 0 (episode_id 'ep-good-1')",
      "without 'passed'"]),
    (lambda d: _conversion(d, "ep-good-2").update(outcome={"success": True, "min_distance_m": -0.1}),
     ["column 'outcome.min_distance_m' fails greater_than_or_equal_to(0.0)", "episode_id 'ep-good-2'", "-0.1"]),
    (lambda d: _conversion(d, "ep-good-1").update(outcome="yes"),
     ["column 'outcome.success' has dtype String, expected Boolean", "episode_id 'ep-good-1'"]),
])
def test_qa_results_refused_on_read(lake, monkeypatch, change, expected):
    key = _manifest_key(lake)
    with rewritten(lake, key, change):
        with pytest.raises(TableError) as exc:
            convert_partition(lake, DAY, ROBOT, SyncConfig(fps=20))  # cached path: reads the table back
        assert_one_line(exc.value, "QA results", lake.uri(key), "(conversions)", *expected)
        with pytest.raises(TableError) as exc:
            _qa_list(lake, monkeypatch)  # `hvla qa list`
        assert_one_line(exc.value, "QA results", *expected)


def test_qa_results_are_checked_before_they_are_written(lake):
    rows = lake.read_manifest(episodes_prefix(DAY, ROBOT))["conversions"]
    failed = dict(rows[0], status="failed", reason="")  # a failure without a reason
    with pytest.raises(TableError) as exc:
        tables.check_qa_results([failed, rows[1]], where="episodes-hdf5/x")
    assert_one_line(exc.value, "a failed episode needs a reason", f"episode_id {rows[0]['episode_id']!r}")


# ---- Robo-DM cache manifest ---------------------------------------------------------------------
def test_robodm_manifest_accepts_what_the_cache_builder_writes(cache):
    rows = read_training_manifest(cache.out_dir)
    assert [(r["episode_id"], r["split"]) for r in rows] == [("ep-000", "train"), ("ep-001", "heldout")]
    assert rc.read_cache_manifest(cache.out_dir) == sorted(rows, key=lambda r: r["source_episode_index"])
    assert rc.check_cache(cache.out_dir, video_codec=rc.DEFAULT_VIDEO_CODEC, expected_episode_indices=[0, 1]) == []


def _corrupt_manifest(cache, tmp_path, change):
    table = change(pq.read_table(cache.manifest_path))
    pq.write_table(table, tmp_path / "manifest.parquet")
    return tmp_path / "manifest.parquet"


def _set(table, name, values, typ=None):
    i = table.column_names.index(name)
    return table.set_column(i, name, pa.array(values, type=typ))


@pytest.mark.parametrize(("change", "expected"), [
    (lambda t: t.drop_columns(["split"]), ["column 'split' is missing"]),
    (lambda t: _set(t, "split", ["train", "test"]),
     ["column 'split' fails isin(['train', 'heldout'])", "episode_id 'ep-001'", ": test"]),
    (lambda t: _set(t, "bytes", [float(b) for b in t.column("bytes").to_pylist()], pa.float64()),
     ["column 'bytes' has dtype Float64, expected Int64"]),
    (lambda t: _set(t, "episode_id", ["ep-000", "ep-000"]),
     ["column 'episode_id' has duplicate value(s) 'ep-000'"]),
    (lambda t: _set(t, "split", ["train", None]), ["column 'split' is null at row 1", "episode_id 'ep-001'"]),
    (lambda t: _set(t, "qa_status", ["unchecked", "ok"]),
     ["column 'qa_status' fails isin(['passed', 'approved', 'unchecked'])", "episode_id 'ep-001'", ": ok"]),
    (lambda t: _set(t, "quality_score", [0.5, 1.5], pa.float64()),
     ["column 'quality_score' fails in_range(0.0, 1.0)", "episode_id 'ep-001'"]),
    (lambda t: t.drop_columns(["success"]), ["column 'success' is missing"]),
])
def test_robodm_manifest_refused_on_read(cache, tmp_path, change, expected):
    path = _corrupt_manifest(cache, tmp_path, change)
    with pytest.raises(CacheError) as exc:  # training's reader
        read_training_manifest(tmp_path)
    assert_one_line(exc.value, "Robo-DM cache manifest", str(path), *expected)
    assert isinstance(exc.value.__cause__, TableError)
    with pytest.raises(TableError) as exc:  # the cache's own reader
        rc.read_cache_manifest(tmp_path)
    assert_one_line(exc.value, *expected)


def test_robodm_manifest_is_checked_before_it_is_written(cache, tmp_path):
    rows = rc.read_cache_manifest(cache.out_dir)
    rows[1]["split"] = "validation"
    with pytest.raises(TableError) as exc:
        write_cache_manifest(tmp_path, rows)
    assert_one_line(exc.value, "column 'split'", "'ep-001'", "validation")
    assert not (tmp_path / "manifest.parquet").exists()


# ---- lineage index ------------------------------------------------------------------------------
@pytest.fixture()
def lineage_lake(lake, tmp_path) -> LocalLake:
    """A copy of the converted lake with a persisted lineage index."""
    copy = LocalLake(shutil.copytree(lake.root, tmp_path / "lake"))
    lin._MEMO.clear()
    index = lin.load_index(copy)
    assert index.stats["persisted"] and "rejected_index" not in index.stats
    assert {r.type for r in index.records.values()} == {"raw_mcap_episode", "episodes_hdf5"}
    return copy


def test_lineage_index_accepts_what_lineage_writes(lineage_lake):
    keys = set()
    for path in sorted(lin.index_path(lineage_lake).iterdir()):  # one shard per key group
        doc = json.loads(path.read_bytes())["doc"]
        tables.check_lineage_index(doc, where=str(path))
        assert all(len(v) == len(tables.LINEAGE_FIELDS) for v in doc["entries"].values())
        keys |= lin.read_index_file(path).keys()
    assert keys == lin.load_index(lineage_lake).records.keys()


def _entry(doc, type_):
    return next(v for v in doc["doc"]["entries"].values() if v[2] == type_)


def _shard_holding(lake, change):
    """The shard file a change applies to (the one holding an entry of the type it edits)."""
    for path in sorted(lin.index_path(lake).iterdir()):
        try:
            change(json.loads(path.read_bytes()))
        except StopIteration:
            continue
        return path
    raise AssertionError("no shard holds the entry")


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: _entry(d, "episodes_hdf5").__setitem__(3, "xyz"),
     ["column 'manifest_sha256' is not 64 lowercase hex digits", f"'{episodes_prefix(DAY, ROBOT)}': 'xyz'"]),
    (lambda d: _entry(d, "raw_mcap_episode").__setitem__(7, [""]), ["column 'episode_ids'", "raw-mcap/"]),
    (lambda d: _entry(d, "raw_mcap_episode").__setitem__(0, "12"), ["column 'size' is not an int >= 0"]),
    (lambda d: _entry(d, "episodes_hdf5").__setitem__(5, 99), ["column 'config' is not a position"]),
    (lambda d: _entry(d, "episodes_hdf5")[10][0].pop(), ["column 'inputs'", episodes_prefix(DAY, ROBOT)]),
    (lambda d: _entry(d, "episodes_hdf5").pop(), ["do not have the 11 fields"]),
])
def test_lineage_index_refused_on_read(lineage_lake, change, expected):
    path = _shard_holding(lineage_lake, change)
    good = json.loads(path.read_bytes())
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(TableError) as exc:
        lin.read_index_file(path)
    msg = assert_one_line(exc.value, "lineage index", str(path), *expected)
    # a query rebuilds instead of using it, says why, and leaves a valid index behind
    lin._MEMO.clear()
    index = lin.load_index(lineage_lake)
    assert index.stats["rejected_index"] == msg
    assert index.stats["read"] == len(good["doc"]["entries"])  # that shard is rebuilt, the others reused
    assert index.stats["reused"] == index.stats["manifests"] - len(good["doc"]["entries"])
    tables.check_lineage_index(json.loads(path.read_bytes())["doc"], where=str(path))


def test_lineage_index_is_checked_before_it_is_written(lineage_lake):
    key = "norm-stats/odd"  # a manifest another tool wrote, with an empty episode id
    lineage_lake.write_json(lineage_lake.manifest_key(key), {
        "artifact_type": "norm_stats", "artifact_key": key, "inputs": [],
        "episode_ids": [""]})
    lin._MEMO.clear()
    with pytest.raises(TableError) as exc:
        lin.load_index(lineage_lake)
    assert_one_line(exc.value, "lineage index", "column 'episode_ids'", f"'{key}'")
