"""Finding a lake's manifests with their stamps, and reading many manifests fast.

* :func:`local_stamps`: a local lake's manifests and their ``(size, mtime_ns)`` from one walk that
  lists only the folders *between* artifacts (``os.scandir``) and ``stat`` s each child's manifest
  directly -- it never lists an artifact's own folder (artifacts do not nest: a republish replaces
  the whole prefix) and skips :data:`NO_MANIFEST_DIRS`. ~2 µs per artifact.
* :func:`object_stamps`: the same from one :meth:`~hvla_platform.lib.core.lake.Lake.list_objects`
  listing (S3: ``(size, ETag)``; 1,000 keys per request), plus the index shards present.
* :func:`read_records`: manifests → :class:`~hvla_platform.lib.lineage.records.ArtifactRecord`,
  in parallel: local lakes in a pool of forked processes (parsing and hashing are CPU-bound:
  orjson parse + the canonical sha256, ~60 µs for a raw episode's manifest) when there are at least
  :data:`PARALLEL_MIN` and forking is safe (one Python thread, no JAX/torch/gRPC loaded: forking a
  threaded process, e.g. a Dagster run worker, can deadlock, so it reads serially there); other
  backends in a thread pool (the reads are network-bound).
"""

from __future__ import annotations

import multiprocessing
import os
import stat
import sys
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

import orjson

from hvla_platform.lib.core.lake import MANIFEST_NAME, Lake, LocalLake
from hvla_platform.lib.lineage.records import ArtifactRecord, Edge, record_from_manifest
from hvla_platform.lib.lineage.shards import INDEX_PREFIX, Stamp, shard_from_key

#: Top-level folders that never hold artifacts (skipped by the walk and the listing).
NO_MANIFEST_DIRS = frozenset({".hvla-tmp", "landing", "quarantine", INDEX_PREFIX.split("/")[0]})
#: Fewer manifests than this to read are read in the calling process (a pool costs ~50 ms to start).
PARALLEL_MIN = 2000
#: Threads reading manifests from a non-local lake.
IO_THREADS = 16


def local_stamps(root: Path) -> dict[str, Stamp]:
    """``{artifact prefix: (manifest size, mtime_ns)}`` for every manifest under a local lake root."""
    out: dict[str, Stamp] = {}
    stack = [("", str(root))]
    suffix = "/" + MANIFEST_NAME
    while stack:
        rel, path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        for e in entries:
            if not e.is_dir(follow_symlinks=False) or (not rel and e.name in NO_MANIFEST_DIRS):
                continue
            key = f"{rel}/{e.name}" if rel else e.name
            try:
                st = os.stat(e.path + suffix)
            except (FileNotFoundError, NotADirectoryError):
                stack.append((key, e.path))
                continue
            if stat.S_ISREG(st.st_mode):
                out[key] = (st.st_size, st.st_mtime_ns)
            else:
                stack.append((key, e.path))
    return out


def object_stamps(lake: Lake) -> tuple[dict[str, Stamp], dict[str, Stamp]]:
    """``({artifact prefix: (size, tag)}, {shard: (size, tag) of its index object})`` from one listing."""
    manifests: dict[str, Stamp] = {}
    shards: dict[str, Stamp] = {}
    suffix = "/" + MANIFEST_NAME
    for key, size, tag in lake.list_objects(""):
        top = key.split("/", 1)[0]
        if top in NO_MANIFEST_DIRS:
            shard = shard_from_key(key)
            if shard is not None:
                shards[shard] = (size, tag)
            continue
        if key.endswith(suffix):
            manifests[key[: -len(suffix)]] = (size, tag)
    return manifests, shards


def _read_local(root: str, roots: list[str], keys: list[str]) -> list[tuple[str, list[Any] | None]]:
    """Worker: ``(key, record as a row)`` for ``keys`` under a local root (None: vanished or not
    JSON, i.e. not committed). Rows (plain lists, :func:`record_row`) cross the process boundary
    ~3x faster than pickled records."""
    out: list[tuple[str, list[Any] | None]] = []
    for key in keys:
        try:
            with open(f"{root}/{key}/{MANIFEST_NAME}", "rb") as f:
                manifest = orjson.loads(f.read())
        except (OSError, orjson.JSONDecodeError):
            out.append((key, None))
            continue
        out.append((key, record_row(record_from_manifest(key, manifest, roots)) if isinstance(manifest, dict)
                    else None))
    return out


def record_row(r: ArtifactRecord) -> list[Any]:
    """A record as a plain list (``key`` left out); :func:`row_record` is the inverse."""
    return [r.type, r.manifest_sha256, r.code_version, r.config, r.rights, r.episode_ids, r.info, r.files,
            [e.to_list() for e in r.inputs]]


def row_record(key: str, row: list[Any]) -> ArtifactRecord:
    """Inverse of :func:`record_row`."""
    typ, sha, code, config, rights, eps, info, files, inputs = row
    return ArtifactRecord(key, typ, sha, code, config, rights, eps, info, files, [Edge(*e) for e in inputs])


def _read_object(lake: Lake, roots: list[str], key: str) -> tuple[str, ArtifactRecord | None]:
    try:
        manifest = orjson.loads(lake.read_bytes(f"{key}/{MANIFEST_NAME}"))
    except (FileNotFoundError, orjson.JSONDecodeError):
        return key, None
    return key, record_from_manifest(key, manifest, roots) if isinstance(manifest, dict) else None


def _chunks(items: list[str], n: int) -> list[list[str]]:
    size = max(1, -(-len(items) // n))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _fork_safe() -> bool:
    """Whether forking this process is safe: no other Python thread, and none of the libraries
    known to run native threads (:data:`_NATIVE_THREADED`) loaded."""
    return threading.active_count() == 1 and not any(m in sys.modules for m in _NATIVE_THREADED)


#: Modules whose import starts native thread pools (forking after it can deadlock the child).
_NATIVE_THREADED = ("jax", "torch", "grpc")


def read_records(lake: Lake, keys: Iterable[str]) -> dict[str, ArtifactRecord]:
    """Records of the manifests under ``keys`` (artifact prefixes); a manifest that vanished or is
    not JSON (half-written between the listing and the read) is left out: it is not committed.

    Local lakes: forked worker processes (one per CPU, at most 8) when reading at least
    :data:`PARALLEL_MIN` manifests from a single-threaded process; each takes a contiguous run of
    keys (one shard's manifests are neighbours on disk). Other backends: :data:`IO_THREADS` threads.
    """
    keys = sorted(keys)
    roots = [lake.root_uri().rstrip("/")]
    if not isinstance(lake, LocalLake):
        with ThreadPoolExecutor(IO_THREADS) as pool:
            return {k: r for k, r in pool.map(lambda k: _read_object(lake, roots, k), keys) if r is not None}
    root = str(lake.root)
    workers = min(8, os.cpu_count() or 1)
    if len(keys) >= PARALLEL_MIN and workers > 1 and _fork_safe():
        out: dict[str, ArtifactRecord] = {}
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            chunks = _chunks(keys, workers * 4)
            for part in pool.map(_read_local, [root] * len(chunks), [roots] * len(chunks), chunks):
                out.update((k, row_record(k, row)) for k, row in part if row is not None)
        return out
    return {k: row_record(k, row) for k, row in _read_local(root, roots, keys) if row is not None}


def read_shard_objects(lake: Lake, keys: list[str]) -> dict[str, bytes | Exception]:
    """The bytes of index shard objects (``{key: bytes, or the error reading it}``), in parallel on
    non-local lakes."""

    def one(key: str) -> tuple[str, Any]:
        try:
            return key, lake.read_bytes(key)
        except (OSError, ValueError) as exc:  # noqa: PERF203  (an unreadable shard is rebuilt)
            return key, exc

    if isinstance(lake, LocalLake) or len(keys) < 2:
        return dict(map(one, keys))
    with ThreadPoolExecutor(IO_THREADS) as pool:
        return dict(pool.map(one, keys))
