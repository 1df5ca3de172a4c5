"""The lineage index of a lake: every artifact's record, kept in per-prefix shards in the lake.

:func:`load_index` lists the lake's manifests with their stamps (local: one walk stat-ing each
manifest, :func:`~hvla_platform.lib.lineage.scan.local_stamps`; S3: one listing with ETags,
:func:`~hvla_platform.lib.lineage.scan.object_stamps`), loads the shards (:mod:`.shards`) that hold
them, keeps every record whose manifest's stamp is unchanged, re-reads only new or changed
manifests (:func:`~hvla_platform.lib.lineage.scan.read_records`, in parallel), drops records of
vanished ones and rewrites only the shards that changed. A shard that cannot be read, is not of
this format or fails its table check is rebuilt from its manifests (the answer is the same, only
slower), the table check's one-line reason in ``stats["rejected_index"]``; a shard never answers
for a manifest whose stamp differs from the one it recorded.

Decoded shards are memoised in-process per shard object stamp (:data:`_MEMO`), so a long-lived
process re-validates (lists) on every call but re-parses only shards that changed.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

from hvla_platform.lib.core.lake import MANIFEST_NAME, Lake, LocalLake
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.core.tables import TableError
from hvla_platform.lib.lineage.records import RAW_TYPES, ArtifactRecord, Edge, LineageError, strip_root
from hvla_platform.lib.lineage.scan import IO_THREADS, local_stamps, object_stamps, read_records, read_shard_objects
from hvla_platform.lib.lineage.shards import (INDEX_PREFIX, RACY_NS, Entries, ShardError, Stamp, decode_shard,
                                              encode_shard, shard_from_key, shard_key, shard_of)

#: in-process cache: (lake root URI, shard) -> (stamp of the shard object, (entries, written_ns))
_MEMO: dict[tuple[str, str], tuple[Stamp, tuple[Entries, int]]] = {}


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: loading the index and building a 10^5-leaf tree create
    ~10^6 acyclic containers, and the collector's full passes over them would otherwise cost as
    much as the work itself (reference counting still frees everything)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class LineageIndex:
    """All artifact records of a lake plus the derived look-ups.

    Build with :func:`load_index`; treat as read-only. ``records`` maps lake prefix → record.
    """

    def __init__(self, records: dict[str, ArtifactRecord], stats: dict[str, Any] | None = None):
        self.records = records
        #: how the index was obtained: ``{"manifests", "read", "reused", "dropped", "persisted",
        #: "shards", "shards_written", "index_bytes", "seconds"}`` (+ ``"rejected_index"``: why a
        #: persisted shard was not used)
        self.stats = stats or {}
        self._consumers: dict[str, list[tuple[str, Edge]]] | None = None
        self._raw_by_episode: dict[str, str] | None = None
        self._resolved: dict[str, tuple[str, str] | None] = {}

    def resolve(self, key: str | None) -> tuple[str, str] | None:
        """``(artifact prefix, path inside it)`` holding lake key ``key`` (path ``""`` for the
        artifact itself), or ``None`` if no committed artifact holds it (e.g. a landing file)."""
        if key is None:
            return None
        hit = self._resolved.get(key, False)
        if hit is not False:
            return hit  # type: ignore[return-value]
        k, out = key.rstrip("/"), None
        while k:
            if k in self.records:
                out = (k, key[len(k) + 1:] if len(key) > len(k) else "")
                break
            k = k.rpartition("/")[0]
        self._resolved[key] = out
        return out

    @property
    def consumers(self) -> dict[str, list[tuple[str, Edge]]]:
        """artifact prefix → ``[(consumer prefix, edge)]`` for every edge resolving into it."""
        if self._consumers is None:
            cons: dict[str, list[tuple[str, Edge]]] = {}
            for rec in self.records.values():
                for e in rec.inputs:
                    r = self.resolve(e.key)
                    if r is not None and r[0] != rec.key:
                        cons.setdefault(r[0], []).append((rec.key, e))
            self._consumers = cons
        return self._consumers

    @property
    def raw_by_episode(self) -> dict[str, str]:
        """raw episode id → raw artifact prefix (every raw source: robot MCAP and teleop episodes,
        human video clips; :data:`~.records.RAW_TYPES`)."""
        if self._raw_by_episode is None:
            self._raw_by_episode = {e: r.key for r in self.records.values() if r.type in RAW_TYPES
                                    for e in r.episode_ids}
        return self._raw_by_episode

    def find(self, artifact: str, lake: Lake | None = None) -> str:
        """Resolve a lake prefix, a key inside an artifact, or a URI (of this lake, or of any other
        copy of it: the longest key suffix naming an artifact) to an artifact prefix.

        Raises:
            LineageError: nothing in the lake matches.
        """
        a = artifact.strip().rstrip("/")
        if a.endswith("/" + MANIFEST_NAME):
            a = a[: -len(MANIFEST_NAME) - 1]
        candidates = [a]
        if "://" in a:
            roots = [lake.root_uri().rstrip("/")] if lake is not None else []
            k = strip_root(a, roots)
            candidates = [k] if k is not None else []
            if k is None:  # a URI of another root (the lake before it was moved): the longest key suffix
                path = a.split("://", 1)[1]
                candidates = [path[i + 1:] for i in range(len(path)) if path[i] == "/"]
        for c in candidates:
            r = self.resolve(c)
            if r is not None:
                return r[0]
        raise LineageError(f"no committed artifact (with a {MANIFEST_NAME}) at or above {artifact!r} in this lake "
                           f"({len(self.records)} artifacts indexed){did_you_mean(a, self.records)}")


def index_path(lake: Lake, shard: str | None = None) -> Path | None:
    """Local folder of ``lake``'s index shards (or the file of ``shard``); ``None`` for a lake that
    is not local (its shards are objects under :data:`~.shards.INDEX_PREFIX`)."""
    if not isinstance(lake, LocalLake):
        return None
    return lake.path(shard_key(shard)) if shard is not None else lake.path(INDEX_PREFIX)


def read_index_file(path: str | os.PathLike[str]) -> Entries:
    """The entries of one persisted shard file, ``{key: ((manifest size, tag), record)}``.

    Raises:
        OSError: the file cannot be read.
        ShardError: it is not JSON, or of another format.
        TableError: it does not match :func:`~hvla_platform.lib.core.tables.lineage_index_schema`
            (the message names the file, the columns and the artifact keys at fault).
    """
    with gc_paused():
        return decode_shard(Path(path).read_bytes(), where=str(path))[0]


def _shard_where(lake: Lake, shard: str) -> str:
    return str(lake.path(shard_key(shard))) if isinstance(lake, LocalLake) else lake.uri(shard_key(shard))


def _present_shards(lake: Lake) -> dict[str, Stamp]:
    """Local: ``{shard: (size, mtime_ns)}`` of the shard files (one ``scandir``)."""
    out: dict[str, Stamp] = {}
    try:
        entries = list(os.scandir(lake.path(INDEX_PREFIX)))  # type: ignore[attr-defined]
    except (FileNotFoundError, NotADirectoryError):
        return out
    for e in entries:
        s = shard_from_key(f"{INDEX_PREFIX}/{e.name}")
        if s is not None and e.is_file():
            st = e.stat()
            out[s] = (st.st_size, st.st_mtime_ns)
    return out


def _write_shards(lake: Lake, docs: dict[str, bytes]) -> None:
    """Write shard documents: local files atomically (temporary file + rename, no fsync: the index
    is a cache of the manifests); other backends one PUT each, in parallel."""
    if isinstance(lake, LocalLake):
        folder = lake.path(INDEX_PREFIX)
        folder.mkdir(parents=True, exist_ok=True)
        for shard, data in docs.items():
            dest = lake.path(shard_key(shard))
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        return
    with ThreadPoolExecutor(IO_THREADS) as pool:
        list(pool.map(lambda item: lake.write_bytes(shard_key(item[0]), item[1]), docs.items()))


def load_index(lake: Lake, *, persist: bool = True, verify: bool = False) -> LineageIndex:
    """Build the lineage index of ``lake``, reusing its persisted shards where they are still valid.

    Args:
        lake: any backend implementing :meth:`~hvla_platform.lib.core.lake.Lake.list_objects`
            (local, S3); both get the sharded index persisted in the lake (module docstring).
        persist: write changed shards back (and delete shards of prefixes that no longer hold an
            artifact).
        verify: re-read every manifest and check its sha256 against the index (slow; for audits).

    Returns:
        A :class:`LineageIndex`; ``index.stats`` says how many manifests were read vs reused and
        how many shards were written.

    Raises:
        TableError: a shard built from the manifests does not match its schema (checked before it
            is persisted; names the artifact keys at fault).
        OSError: the lake cannot be listed or a shard cannot be written (local).
    """
    t0 = time.perf_counter()
    with gc_paused():
        return _load_index(lake, persist, verify, t0)


def _load_index(lake: Lake, persist: bool, verify: bool, t0: float) -> LineageIndex:
    local = isinstance(lake, LocalLake)
    listed_ns = time.time_ns()
    if local:
        stamps = local_stamps(lake.root)
        present = _present_shards(lake)
    else:
        stamps, present = object_stamps(lake)
    by_shard: dict[str, dict[str, Stamp]] = {}
    for k, st in stamps.items():
        by_shard.setdefault(shard_of(k), {})[k] = st

    root = lake.root_uri()
    loaded: dict[str, tuple[Entries, int]] = {}
    fetch = []
    for s, st in present.items():
        m = _MEMO.get((root, s))
        if m is not None and m[0] == st:
            loaded[s] = m[1]
        else:
            fetch.append(s)
    rejected = ""
    got = read_shard_objects(lake, [shard_key(s) for s in fetch])
    for s in fetch:
        data = got[shard_key(s)]
        if isinstance(data, Exception):
            continue
        try:
            loaded[s] = decode_shard(data, where=_shard_where(lake, s))
        except TableError as exc:  # a corrupt shard is not used (rebuilt), but said why
            rejected = rejected or str(exc)
            continue
        except ShardError:
            continue
        _MEMO[(root, s)] = (present[s], loaded[s])

    kept: dict[str, Entries] = {}
    to_read: list[str] = []
    dropped = 0
    for s, want in by_shard.items():
        entries, written = loaded.get(s, ({}, 0))
        keep: Entries = {}
        for k, st in want.items():
            prev = entries.get(k)
            racy = isinstance(st[1], int) and st[1] >= written - RACY_NS
            if prev is not None and prev[0] == st and not racy and not verify:
                keep[k] = prev
            else:
                to_read.append(k)
        kept[s] = keep
        dropped += sum(1 for k in entries if k not in want)
    gone = [s for s in present if s not in by_shard]
    dropped += sum(len(loaded[s][0]) for s in gone if s in loaded)

    fresh = read_records(lake, to_read)
    read = reused = 0
    dirty: set[str] = {s for s in by_shard if s not in loaded or len(loaded[s][0]) != len(kept[s])
                       or any(k not in by_shard[s] for k in loaded[s][0])}
    for k, rec in fresh.items():
        s = shard_of(k)
        prev = loaded.get(s, ({}, 0))[0].get(k)
        if verify and prev is not None and prev[1].manifest_sha256 == rec.manifest_sha256 and prev[0] == by_shard[s][k]:
            reused += 1
            kept[s][k] = prev
            continue
        read += 1
        kept[s][k] = (by_shard[s][k], rec)
        dirty.add(s)
    reused += sum(len(v) for v in kept.values()) - read - reused

    persisted = False
    index_bytes = sum(st[0] for s, st in present.items() if s in by_shard)
    if dirty:
        now = listed_ns
        docs = {s: encode_shard(s, kept[s], written_ns=now) for s in sorted(dirty) if kept[s]}  # checked first
        if persist:
            _write_shards(lake, docs)
            persisted = bool(docs)
            for s, data in docs.items():
                index_bytes += len(data) - (present[s][0] if s in present else 0)
                if local:  # a long-lived process then re-parses nothing it just wrote
                    st = lake.path(shard_key(s)).stat()
                    _MEMO[(root, s)] = ((st.st_size, st.st_mtime_ns), (dict(kept[s]), now))
    if persist and gone:
        for s in gone:
            lake.delete(shard_key(s))
            _MEMO.pop((root, s), None)
        persisted = True

    records = {k: v[1] for s in sorted(kept) for k, v in sorted(kept[s].items())}
    stats: dict[str, Any] = {"manifests": len(records), "read": read, "reused": reused, "dropped": dropped,
                             "persisted": persisted, "shards": len(by_shard), "shards_written": len(dirty) if persist else 0,
                             "index_bytes": index_bytes, "seconds": time.perf_counter() - t0}
    if rejected:
        stats["rejected_index"] = rejected
    return LineageIndex(records, stats)
