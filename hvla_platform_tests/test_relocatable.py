"""Artifacts are relocatable (issue 11, section 3): they refer to each other by lake key, never by the
absolute location of the machine that built them, so a copied ``HVLA_HOME`` keeps every cache.

* the same recordings ingested and converted under two lake paths give equal fingerprints and
  equal bytes (bar the build time), and neither lake holds its own root;
* the README's main command, ``hvla demo``, run in an ``HVLA_HOME`` that is then copied elsewhere
  and rerun there: every asset ``cached``, the lineage answers identical, nothing written to the
  old home, and the old home's path nowhere in the new one except Dagster's run history.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvla_platform.lib.core.keys import episodes_prefix, raw_prefix
from hvla_platform.lib.core.lake import MANIFEST_NAME, LocalLake
from hvla_platform.lib.ingest.landing import land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.lineage import graph as lin
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform_tests.fixtures.recordings import write_recording

DAY, ROBOT = "2026-11-10", "g1-001"
#: Files of a copied home that may name the old home: Dagster's record of the runs executed there
#: (the event log keeps each materialization's ``dagster/uri`` and the runs' log lines; compute
#: logs are the runs' stderr). History of what happened where, never read to decide anything.
ALLOWED_OLD_PATH = ("dagster/history/", "dagster/storage/")
#: The demo, small: the README's main command with its documented ``--steps``/``--trials`` options.
DEMO_ARGS = ["demo", "--steps", "40", "--trials", "1"]


def _files_naming(root: Path, needle: str) -> list[str]:
    """Every file under ``root`` whose bytes contain ``needle`` (relative POSIX paths, sorted)."""
    raw = needle.encode()
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not p.is_symlink() and raw in p.read_bytes())


def _without_created_at(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "created_at"}


# ---- the same inputs under two lake paths ---------------------------------------------------------
def test_the_same_recordings_under_two_lake_paths_give_equal_fingerprints_and_bytes(tmp_path):
    src = tmp_path / "recordings"
    for i, seed in ((1, 11), (2, 12)):
        write_recording(src, episode_id=f"ep-{i}", robot_id=ROBOT, capture_day=DAY, seed=seed, duration_s=2.0)
    lakes = [LocalLake(tmp_path / "machine-a" / "lake"), LocalLake(tmp_path / "machine-b" / "data" / "lake")]
    conversions = []
    for lake in lakes:
        for folder in sorted(p.parent for p in src.rglob("metadata.yaml")):
            assert land_recording(lake, folder).status == "landed"
        assert [e.status for e in ingest_partition(lake, DAY, ROBOT).episodes] == ["published", "published"]
        conversions.append(convert_partition(lake, DAY, ROBOT, SyncConfig(fps=20)))
    a, b = lakes

    # fingerprints are functions of keys, content, config and code version: equal
    assert conversions[0].manifest.fingerprint == conversions[1].manifest.fingerprint
    assert [i.key for i in conversions[0].manifest.inputs] == [f"{raw_prefix(DAY, ROBOT, e)}/{e}_0.mcap"
                                                                for e in ("ep-1", "ep-2")]
    # the raw layer and the episodes' manifest: byte-equal, or equal but for the build time
    for ep in ("ep-1", "ep-2"):
        key = raw_prefix(DAY, ROBOT, ep)
        assert a.read_bytes(f"{key}/index.json") == b.read_bytes(f"{key}/index.json")
        assert a.read_json(f"{key}/index.json")["path"] == f"{key}/{ep}_0.mcap"  # not the temporary copy
        assert _without_created_at(a.read_manifest(key)) == _without_created_at(b.read_manifest(key))
    part = f"{raw_prefix(DAY, ROBOT)}/_partition.json"
    assert a.read_bytes(part) == b.read_bytes(part)
    assert _without_created_at(a.read_manifest(episodes_prefix(DAY, ROBOT))) == \
        _without_created_at(b.read_manifest(episodes_prefix(DAY, ROBOT)))
    # and no file of either lake names where that lake is (a URI or a path of its root)
    for lake in lakes:
        assert _files_naming(lake.root, str(tmp_path)) == []
    # the other lake's artifacts are current under either path: converting again builds nothing
    assert convert_partition(b, DAY, ROBOT, SyncConfig(fps=20)).status == "cached"


# ---- the demo, copied elsewhere and rerun --------------------------------------------------------
def _demo(home: Path, log: Path) -> str:
    """Run ``hvla demo`` (small) with ``HVLA_HOME=home`` in a fresh process; its output."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DAGSTER_HOME", "HVLA_LAKE_ROOT", "HVLA_LAKE_BACKEND", "MLFLOW_TRACKING_URI",
                        "HVLA_MLFLOW_ARTIFACT_ROOT")}
    env["HVLA_HOME"] = str(home)
    hvla = Path(sys.executable).with_name("hvla")
    # the working directory is the home's parent: MLflow puts its Default experiment under the cwd
    proc = subprocess.run([str(hvla), *DEMO_ARGS], cwd=home.parent, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=1800)
    log.write_text(proc.stdout)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc.stdout


def _statuses(output: str) -> list[tuple[str, str]]:
    """``(asset, status)`` per materialization the demo printed (``✓ asset: status → uri``)."""
    return re.findall(r"✓ (\w+): (\w+) →", output)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file and directory under ``root``."""
    out = {}
    for p in [root, *root.rglob("*")]:
        st = p.lstat()
        out[p.relative_to(root).as_posix()] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


def _lineage(lake: LocalLake) -> dict:
    """What lineage answers on ``lake``, with the display URIs (computed from the lake) taken out."""
    lin._MEMO.clear()
    index = lin.load_index(lake, persist=False)
    evals = lake.list_artifacts("eval-reports")
    raws = sorted(r.episode_ids[0] for r in index.records.values() if r.type == lin.RAW_TYPE)
    root = lake.root_uri()

    def strip(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k in ("uri", "mcap_uri"):
                    assert v.startswith(root + "/"), (k, v)  # display URIs: in the lake queried
            return {k: strip(v) for k, v in o.items() if k not in ("uri", "mcap_uri")}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o

    return {
        "records": {k: (r.type, r.manifest_sha256, r.episode_ids, [e.to_list() for e in r.inputs])
                    for k, r in sorted(index.records.items())},
        "upstream": [strip(json.loads(lin.to_json(lin.upstream(lake, k, index=index)))) for k in evals],
        "downstream": {q: strip(json.loads(lin.to_json(lin.downstream(lake, q, index=index))))
                       for q in raws[:2] + ["customer:internal"]},
    }


@pytest.mark.e2e
def test_a_copied_home_reruns_the_demo_all_cached_with_the_same_lineage_and_leaves_the_original_alone(tmp_path):
    old = tmp_path / "site-a" / "hvla-home"
    old.mkdir(parents=True)
    first = _demo(old, tmp_path / "demo-1.log")
    built = _statuses(first)
    assert {a for a, _ in built} == {"raw_mcap", "episodes_hdf5", "lerobot_dataset", "norm_stats", "robodm_cache", "openpi_export",
                                     "checkpoint", "eval_report"}
    assert all(s == "materialized" for _, s in built), built
    old_lake = LocalLake(old / "lake")
    lineage_before = _lineage(old_lake)
    # the artifacts name no location: only Dagster's history of the runs and the MLflow store (MLflow
    # records absolute artifact locations; they are re-pointed when the store is used after a move)
    named = _files_naming(old, str(old))
    assert all(f.startswith(ALLOWED_OLD_PATH) or f == "mlflow.db" for f in named), named

    new = tmp_path / "site-b" / "elsewhere" / "copied-home"
    shutil.copytree(old, new, symlinks=True)  # copy2: contents and mtimes, like cp -a / rsync -a
    before = _snapshot(old)

    second = _demo(new, tmp_path / "demo-2.log")
    rerun = _statuses(second)
    assert sorted(rerun) == sorted((a, "cached") for a, _ in built), rerun  # every asset, every partition
    assert f"lake {LocalLake(new / 'lake').root_uri()}" in second and str(old) not in second

    assert _snapshot(old) == before  # nothing written to the old home (files, sizes, mtimes)
    new_lake = LocalLake(new / "lake")
    assert _lineage(new_lake) == lineage_before  # the same graph, the same answers
    named = _files_naming(new, str(old))
    assert all(f.startswith(ALLOWED_OLD_PATH) for f in named), named
    # the MLflow store follows the copy: its runs' artifacts are the copied ones, new ones land here
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(f"sqlite:///{new / 'mlflow.db'}")
    exps = client.search_experiments(view_type=ViewType.ALL)
    assert exps and all(e.artifact_location.startswith((new / "mlruns").as_uri()) for e in exps)
    runs = client.search_runs([e.experiment_id for e in exps], max_results=1000)
    assert runs and all(r.info.artifact_uri.startswith((new / "mlruns").as_uri()) for r in runs)
