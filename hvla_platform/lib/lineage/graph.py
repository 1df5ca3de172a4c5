"""Lineage queries answered from the artifacts' manifests (no Dagster involved).

Every committed artifact carries a ``_hvla_manifest.json`` naming its inputs (lake ``key``,
``sha256``, ``kind``, ``episode_ids``), its config, code version and rights
(:mod:`hvla_platform.lib.core.manifest`).
This module turns the manifests of a whole lake into a graph and answers two questions:

* :func:`upstream` -- for a checkpoint, eval report, cache, norm stats, release (or any artifact):
  the tree of what it was built from, down to the raw MCAP episodes, with sha256, config, code
  version and rights at each step. Episode ids recorded on each input edge restrict the walk, so a
  checkpoint (whose cache input lists only the train split) reaches exactly its train episodes,
  not the held-out ones the cache also holds.
* :func:`downstream` -- for a raw episode (id, raw prefix or URI), ``consent:<id>`` or
  ``customer:<name>``: every artifact that contains or was derived from the matching episodes.

Only manifests are read. They name artifacts by lake key (relative), so a lake copied elsewhere
(another directory, or a local copy of an S3 lake) answers the same; every URI in an answer is
computed from the lake being queried. Manifests of schema version 1 (which named inputs by URI) are
read through :func:`~hvla_platform.lib.core.manifest.upgrade_v1`: their URIs are mapped to keys by
stripping the root they were written under (``artifact_uri`` minus the key).

Design (10,000 raw episodes + derived artifacts in < 1 s; measured by ``benchmarks/lineage.py``,
numbers in ``docs/lineage.md``):

* **Compact records.** Each manifest is reduced to an :class:`ArtifactRecord`: type, key,
  sha256 of the canonical manifest, config, code version, rights, episode ids, a few
  type-specific fields (robot, day, operator, site, release, step...), the ``{path: sha256}`` of
  its files and its input edges as lake keys. Identical config/rights dicts are stored once.
* **Persisted index, rebuilt incrementally.** On a :class:`LocalLake` the records are kept in
  ``<root>/.hvla-tmp/lineage-index.json`` (the lake's scratch folder, which ``list_keys``
  ignores), each with the manifest's ``(size, mtime_ns)``; it holds no URI or absolute path, so a
  copied lake's index stays valid. A query walks the lake's folders once
  with ``os.scandir`` (not descending into an artifact once its manifest is found -- artifacts do
  not nest, a republish replaces the whole prefix -- nor into ``landing``/``quarantine``), stats
  each manifest and re-reads only manifests that are new or whose size/mtime changed; records of
  vanished manifests are dropped. A copy with fresh mtimes (``cp -r``) just rebuilds; a copy
  preserving them (``cp -a``, ``rsync -a``) carries identical content, so the index stays valid.
  An unreadable/unwritable or corrupt index file is ignored (the answer is the same, only
  slower); one that does not match its schema (:func:`~hvla_platform.lib.core.tables.lineage_index_schema`,
  checked before it is written and when a process loads it from disk, not per query) is rebuilt
  too, with the one-line reason in ``stats["rejected_index"]``. ``verify=True`` re-reads every
  manifest and compares its sha256 with the index.
* **Other backends (S3).** One ``list_keys`` pass + every manifest read; the index is kept in
  memory only (an S3 listing exposes no mtime through the :class:`Lake` API).
* **Queries** are graph walks over the in-memory records: upstream follows the edges of the
  visited nodes; downstream propagates the set of matching episodes through all artifacts once
  (memoised per artifact), intersecting with each edge's episode ids.

Every node also says whether the sha256 its consumer recorded still matches what is at that URI
now (``sha256_matches``): a re-materialized input shows up as ``False``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from urllib.parse import quote
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from hvla_platform.lib.core.lake import MANIFEST_NAME, Lake, LocalLake
from hvla_platform.lib.core.manifest import upgrade_v1
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.core.tables import TableError, check_lineage_index

INDEX_FORMAT = 3  # 3: no URIs (records and edges hold lake keys only)
#: Where the persisted index lives, relative to a local lake's root.
INDEX_RELPATH = ".hvla-tmp/lineage-index.json"
#: Top-level folders that never hold manifests (skipped by the fast local walk).
_NO_MANIFEST_DIRS = frozenset({".hvla-tmp", "landing", "quarantine"})

#: Order in which artifact types appear in results (raw first).
TYPE_ORDER = {
    "raw_mcap_episode": 0,
    "episodes_hdf5": 1,
    "lerobot_dataset": 2,
    "norm_stats": 3,
    "robodm_cache": 4,
    "checkpoint": 5,
    "eval_report": 6,
}
RAW_TYPE = "raw_mcap_episode"
#: Type-specific manifest fields copied into :attr:`ArtifactRecord.info`.
_INFO_FIELDS = ("capture_day", "robot_id", "operator", "site", "customer", "task", "mcap_sha256", "release",
                "repo_id", "experiment", "step", "config_name", "checkpoint", "partitions", "computed_from",
                "heldout_episode_ids", "serving_allowed", "serving_blocked", "mlflow_run_id", "created_at")


class LineageError(LookupError):
    """The artifact or query does not name anything in the lake (message says what was looked for)."""


# ---- records --------------------------------------------------------------------------------
@dataclass
class Edge:
    """One input of an artifact as recorded in its manifest.

    Attributes:
        key: the input's lake key, or ``None`` for an input a version-1 manifest names by a URI
            outside its lake.
        uri: that URI (``""`` whenever ``key`` is set).
        sha256: the sha256 recorded by the consumer (of a file, or of the input's manifest).
        kind: recorded kind (``raw_mcap``, ``episodes_hdf5``, ...).
        episode_ids: the raw episode ids the consumer took from this input (may be empty).
    """

    key: str | None
    uri: str
    sha256: str
    kind: str
    episode_ids: list[str]

    def to_list(self) -> list[Any]:
        """Index form; a URI is kept only when it is outside the lake (``key`` None)."""
        return [self.key, self.uri if self.key is None else "", self.sha256, self.kind, self.episode_ids]


@dataclass
class ArtifactRecord:
    """What lineage needs from one manifest.

    Attributes:
        key: lake prefix of the artifact (``checkpoints/<config>/<exp>/<step>``).
        type: ``artifact_type`` of the manifest.
        manifest_sha256: sha256 of the canonical manifest JSON (what consumers record).
        code_version, config, rights: as in the manifest (rights is ``Rights.to_dict()``).
        episode_ids: the manifest's ``episode_ids``.
        info: type-specific fields (see ``_INFO_FIELDS``) plus ``mcap_key`` for raw episodes.
        files: ``{relative path: sha256}`` of the artifact's files (raw: the MCAP).
        inputs: the input edges (none for raw episodes, which are the leaves).
    """

    key: str
    type: str
    manifest_sha256: str
    code_version: str
    config: dict[str, Any]
    rights: dict[str, Any]
    episode_ids: list[str]
    info: dict[str, Any]
    files: dict[str, str]
    inputs: list[Edge]


def _strip_root(uri: str, roots: Iterable[str]) -> str | None:
    for root in roots:
        if root and uri.startswith(root + "/"):
            return uri[len(root) + 1:]
    return None


def record_from_manifest(key: str, manifest: dict[str, Any], roots: Iterable[str] = ()) -> ArtifactRecord:
    """Reduce a manifest to an :class:`ArtifactRecord`.

    Args:
        key: the artifact's lake prefix (where the manifest was found).
        manifest: the parsed manifest (any schema version; version 1 is read through
            :func:`~hvla_platform.lib.core.manifest.upgrade_v1`).
        roots: root URIs to strip from a version-1 URI outside the manifest's own root (the queried
            lake's root); unused for version 2, whose inputs are keys.
    """
    view = upgrade_v1(manifest, key) if manifest.get("schema_version") == 1 else manifest
    roots = [r.rstrip("/") for r in roots]

    def key_of(ref: Any) -> tuple[str | None, str]:
        ref = str(ref or "")
        if "://" not in ref:
            return (ref or None), ""
        k = _strip_root(ref, roots)
        return (k, "") if k is not None else (None, ref)

    edges = []
    for i in view.get("inputs") or []:
        k, outside = key_of(i.get("key", i.get("uri")))
        edges.append(Edge(key=k, uri=outside, sha256=str(i.get("sha256", "")),
                          kind=str(i.get("kind", "")), episode_ids=list(i.get("episode_ids") or [])))
    if manifest.get("artifact_type") == RAW_TYPE:
        edges = []  # a raw episode is a leaf: its landing input is not followed (it stays in the manifest)
    info = {f: view[f] for f in _INFO_FIELDS if f in view}
    files = {f["path"]: f["sha256"] for f in view.get("files") or [] if "path" in f and "sha256" in f}
    mk = key_of(view.get("mcap_key"))[0]
    if mk is not None:
        info["mcap_key"] = mk
        if mk.startswith(key + "/") and view.get("mcap_sha256"):
            files.setdefault(mk[len(key) + 1:], view["mcap_sha256"])
    return ArtifactRecord(
        key=key, type=str(manifest.get("artifact_type", "unknown")),
        manifest_sha256=hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest(),
        code_version=str(manifest.get("code_version", "")), config=manifest.get("config") or {},
        rights=manifest.get("rights") or {}, episode_ids=list(manifest.get("episode_ids") or []),
        info=info, files=files, inputs=edges)


# ---- index ----------------------------------------------------------------------------------
class LineageIndex:
    """All artifact records of a lake plus the derived look-ups.

    Build with :func:`load_index`; treat as read-only. ``records`` maps lake prefix → record.
    """

    def __init__(self, records: dict[str, ArtifactRecord], stats: dict[str, Any] | None = None):
        self.records = records
        #: how the index was obtained: ``{"manifests", "read", "reused", "dropped", "persisted", "seconds"}``
        #: (+ ``"rejected_index"``: why a persisted index file was not used)
        self.stats = stats or {}
        self._consumers: dict[str, list[tuple[str, Edge]]] | None = None
        self._raw_by_episode: dict[str, str] | None = None
        self._resolved: dict[str, tuple[str, str] | None] = {}

    # which artifact holds a key: walk up the key's segments
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
        """raw episode id → raw artifact prefix."""
        if self._raw_by_episode is None:
            self._raw_by_episode = {e: r.key for r in self.records.values() if r.type == RAW_TYPE for e in r.episode_ids}
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
            k = _strip_root(a, roots)
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


def _walk_manifests(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """``(artifact prefix, stat of its manifest)`` for every manifest under a local lake root.

    Does not descend into an artifact once its manifest is found, nor into ``_NO_MANIFEST_DIRS``.
    """
    stack = [("", str(root))]
    while stack:
        rel, path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        manifest = next((e for e in entries if e.name == MANIFEST_NAME and e.is_file()), None)
        if manifest is not None and rel:
            yield rel, manifest.stat()
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False) and not (not rel and e.name in _NO_MANIFEST_DIRS):
                stack.append((f"{rel}/{e.name}" if rel else e.name, e.path))


def _encode_index(entries: dict[str, tuple[int, int, ArtifactRecord]]) -> dict[str, Any]:
    table: list[Any] = []
    ids: dict[str, int] = {}

    def intern(v: Any) -> int:
        s = json.dumps(v, sort_keys=True, default=str)
        i = ids.get(s)
        if i is None:
            i = ids[s] = len(table)
            table.append(v)
        return i

    out = {}
    for key, (size, mtime, r) in entries.items():
        out[key] = [size, mtime, r.type, r.manifest_sha256, r.code_version, intern(r.config),
                    intern(r.rights), r.episode_ids, r.info, r.files, [e.to_list() for e in r.inputs]]
    return {"format": INDEX_FORMAT, "table": table, "entries": out}  # keys only: no root, no URI


def _decode_index(doc: dict[str, Any]) -> dict[str, tuple[int, int, ArtifactRecord]]:
    if doc.get("format") != INDEX_FORMAT:
        raise ValueError(f"index format {doc.get('format')!r} != {INDEX_FORMAT}")
    table = doc["table"]
    out = {}
    for key, (size, mtime, typ, msha, code, cfg, rights, eps, info, files, inputs) in doc["entries"].items():
        out[key] = (size, mtime, ArtifactRecord(key, typ, msha, code, table[cfg], table[rights], eps, info, files,
                                                [Edge(*e) for e in inputs]))
    return out


def read_index_file(path: Path) -> dict[str, tuple[int, int, ArtifactRecord]]:
    """The entries of a persisted index file, ``{key: (manifest size, mtime_ns, record)}``.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not JSON, or of another :data:`INDEX_FORMAT`.
        TableError: it does not match :func:`~hvla_platform.lib.core.tables.lineage_index_schema`
            (the message names the file, the columns and the artifact keys at fault).
    """
    with gc_paused():
        doc = json.loads(Path(path).read_bytes())
        if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
            raise ValueError(f"{path}: index format {doc.get('format') if isinstance(doc, dict) else None!r} "
                             f"!= {INDEX_FORMAT}")
        check_lineage_index(doc, where=str(path))
        return _decode_index(doc)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: loading the index and building a 10^4-leaf tree create
    ~10^5-10^6 acyclic containers, and the collector's full passes over them would otherwise cost
    as much as the work itself (reference counting still frees everything)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


#: in-process cache: index path → its decoded entries (saves re-parsing the file on each query)
_MEMO: dict[str, tuple[int, dict[str, tuple[int, int, ArtifactRecord]]]] = {}


def index_path(lake: Lake) -> Path | None:
    """Where the persisted index of ``lake`` lives (``None``: not persisted, non-local backend)."""
    return lake.root / INDEX_RELPATH if isinstance(lake, LocalLake) else None


def load_index(lake: Lake, *, persist: bool = True, verify: bool = False) -> LineageIndex:
    """Build the lineage index of ``lake``, reusing the persisted index where it is still valid.

    Args:
        lake: any backend. Local lakes get the incremental, persisted index (module docstring).
        persist: write the updated index back (local lakes; failures to write are ignored).
        verify: re-read every manifest and check its sha256 against the index (slow; for audits).

    Returns:
        A :class:`LineageIndex`; ``index.stats`` says how many manifests were read vs reused.

    Raises:
        TableError: the index built from the manifests does not match its schema (checked before
            it is persisted; names the artifact keys at fault).
    """
    import time

    t0 = time.perf_counter()
    path = index_path(lake)
    if path is None:
        keys = [k[: -len(MANIFEST_NAME) - 1] for k in lake.list_keys("") if k.endswith("/" + MANIFEST_NAME)]
        roots = [lake.root_uri().rstrip("/")]
        records = {k: record_from_manifest(k, lake.read_json(f"{k}/{MANIFEST_NAME}"), roots) for k in keys}
        return LineageIndex(records, {"manifests": len(keys), "read": len(keys), "reused": 0, "dropped": 0,
                                      "persisted": False, "seconds": time.perf_counter() - t0})

    old: dict[str, tuple[int, int, ArtifactRecord]] = {}
    rejected = ""
    try:
        st = path.stat()
        memo = _MEMO.get(str(path))
        if memo is not None and memo[0] == st.st_mtime_ns:
            old = memo[1]
        else:
            old = read_index_file(path)
    except TableError as exc:  # a corrupt index is not used (the answer is the same, rebuilt), but said why
        rejected = str(exc)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        old = {}
    roots = [lake.root_uri().rstrip("/")]
    entries: dict[str, tuple[int, int, ArtifactRecord]] = {}
    read = reused = 0
    for key, st in _walk_manifests(lake.root):
        prev = old.get(key)
        if prev is not None and prev[0] == st.st_size and prev[1] == st.st_mtime_ns and not verify:
            entries[key] = prev
            reused += 1
            continue
        try:
            manifest = json.loads((lake.root / key / MANIFEST_NAME).read_bytes())
        except (OSError, ValueError):
            continue  # vanished or half-written between the walk and the read: not committed
        rec = record_from_manifest(key, manifest, roots)
        if verify and prev is not None and prev[2].manifest_sha256 == rec.manifest_sha256:
            reused += 1
        else:
            read += 1
        entries[key] = (st.st_size, st.st_mtime_ns, rec)
    dropped = len(set(old) - set(entries))
    persisted = False
    if persist and (read or dropped or not path.exists()):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            doc = _encode_index(entries)
            check_lineage_index(doc, where=str(path))
            tmp.write_text(json.dumps(doc, separators=(",", ":")))
            os.replace(tmp, path)
            persisted = True
            _MEMO[str(path)] = (path.stat().st_mtime_ns, entries)
        except OSError:
            pass
    elif not (read or dropped):
        try:
            _MEMO[str(path)] = (path.stat().st_mtime_ns, entries)
        except OSError:
            pass
    records = {k: v[2] for k, v in entries.items()}
    stats = {"manifests": len(entries), "read": read, "reused": reused, "dropped": dropped,
             "persisted": persisted, "seconds": time.perf_counter() - t0}
    if rejected:
        stats["rejected_index"] = rejected
    return LineageIndex(records, stats)


# ---- upstream -------------------------------------------------------------------------------
@dataclass
class LineageNode:
    """One artifact in an upstream tree.

    Attributes:
        type: artifact type (``checkpoint``, ``raw_mcap_episode``...; ``missing`` if the input is
            not in the lake, ``external`` if its URI is outside the lake).
        key: lake prefix ("" for external), as the manifests record it.
        uri: its URI in the queried lake, for display (computed from the lake: a copied lake's
            answer differs from the original's only in these URIs); for ``external``, the URI a
            version-1 manifest recorded.
        sha256: raw episodes: the MCAP file's sha256; others: sha256 of the canonical manifest.
        manifest_sha256: sha256 of the canonical manifest.
        recorded_sha256: what the consumer (parent node) recorded for this input (one per input edge;
            a release records one sha256 per HDF5 file it read from a partition). Empty at the root.
        sha256_matches: every recorded sha256 equals the current manifest's or file's (``None`` at
            the root); ``False`` means the input was re-materialized after it was consumed.
        episode_ids: the raw episodes of this node that reach the root along this path (sorted).
        config, code_version, rights: from the manifest.
        info: type-specific fields (raw: robot_id, capture_day, operator, site, customer, task,
            mcap_key, mcap_uri (display, in the queried lake), mcap_sha256; checkpoints: experiment,
            step...).
        children: inputs (empty for raw episodes and for ``repeated`` nodes).
        repeated: this artifact, with the same episodes, was already expanded earlier in the tree.
    """

    type: str
    key: str
    uri: str
    sha256: str = ""
    manifest_sha256: str = ""
    recorded_sha256: list[str] = field(default_factory=list)
    sha256_matches: bool | None = None
    episode_ids: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    code_version: str = ""
    rights: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    children: list["LineageNode"] = field(default_factory=list)
    repeated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (children recursively)."""
        d = {k: getattr(self, k) for k in ("type", "key", "uri", "sha256", "manifest_sha256",
                                           "recorded_sha256", "sha256_matches", "episode_ids", "config",
                                           "code_version", "rights", "info", "repeated")}
        d["children"] = [c.to_dict() for c in self.children]
        return d

    def walk(self) -> Iterator["LineageNode"]:
        """This node and every descendant, depth first."""
        yield self
        for c in self.children:
            yield from c.walk()

    def raw_episodes(self) -> list["LineageNode"]:
        """The distinct raw-episode leaves of the tree (one node per raw prefix), sorted by episode id."""
        seen: dict[str, LineageNode] = {}
        for n in self.walk():
            if n.type == RAW_TYPE and n.key not in seen:
                seen[n.key] = n
        return sorted(seen.values(), key=lambda n: (n.episode_ids, n.key))


def uri_function(lake: Lake):
    """A fast ``key -> URI`` equal to ``lake.uri`` (``LocalLake.uri`` goes through pathlib, ~20 µs a call)."""
    if isinstance(lake, LocalLake):
        base = lake.root_uri().rstrip("/")
        return lambda key: f"{base}/{quote(key)}"
    return lake.uri


def _node(uri: Any, rec: ArtifactRecord, episodes: set[str] | None) -> LineageNode:
    eps = sorted(episodes) if episodes is not None else sorted(rec.episode_ids)
    info = dict(rec.info)
    sha = rec.manifest_sha256
    if rec.type == RAW_TYPE:
        sha = str(rec.info.get("mcap_sha256", sha))
        mk = info.get("mcap_key")
        if mk:
            info["mcap_uri"] = uri(mk)
    else:
        info.pop("mcap_key", None)
    return LineageNode(type=rec.type, key=rec.key, uri=uri(rec.key), sha256=sha,
                       manifest_sha256=rec.manifest_sha256, episode_ids=eps, config=rec.config,
                       code_version=rec.code_version, rights=rec.rights, info=info)


def _edge_matches(rec: ArtifactRecord, sub: str, e: Edge) -> bool:
    return e.sha256 == rec.manifest_sha256 or (bool(sub) and rec.files.get(sub) == e.sha256)


def upstream(lake: Lake, artifact: str, *, index: LineageIndex | None = None) -> LineageNode:
    """The lineage tree of ``artifact`` down to the raw MCAP episodes.

    Args:
        lake: the lake to read (any backend; a copy works).
        artifact: a lake prefix (``checkpoints/hvla_g1_reach_small/demo-exp/300``), a key inside an
            artifact, or a URI (of this lake, or of another copy of it).
        index: a prebuilt :func:`load_index` (default: load it now).

    Returns:
        The root :class:`LineageNode`. Inputs are grouped per input artifact; the episode ids on each
        input edge restrict the subtree, so leaves are exactly the raw episodes that reached the
        root. An artifact reached again with the same episodes is a ``repeated`` node (no children).
        Inputs that are not committed artifacts of this lake become ``missing`` (a lake key) or
        ``external`` (a URI outside the lake, e.g. a raw episode's landing file is listed only
        in the raw node's manifest, not as a child) nodes.

    Raises:
        LineageError: ``artifact`` names no committed artifact.
    """
    with gc_paused():
        return _upstream(lake, artifact, index or load_index(lake))


def _upstream(lake: Lake, artifact: str, index: LineageIndex) -> LineageNode:
    root_key = index.find(artifact, lake)
    uri = uri_function(lake)
    expanded: set[tuple[str, frozenset[str] | None]] = set()

    def build(key: str, episodes: set[str] | None) -> LineageNode:
        rec = index.records[key]
        node = _node(uri, rec, episodes)
        memo_key = (key, frozenset(episodes) if episodes is not None else None)
        if memo_key in expanded:
            node.repeated = True
            return node
        expanded.add(memo_key)
        if rec.type == RAW_TYPE:
            return node
        groups: dict[str, tuple[set[str] | None, list[tuple[str, Edge]]]] = {}
        missing: list[Edge] = []
        for e in rec.inputs:
            r = index.resolve(e.key)
            if r is None:
                missing.append(e)
                continue
            target, sub = r
            if target == key:
                continue
            if e.episode_ids:
                sel: set[str] | None = set(e.episode_ids) if episodes is None else episodes.intersection(e.episode_ids)
                if not sel:
                    continue  # this input contributed none of the episodes followed here
            else:
                sel = set(episodes) if episodes is not None else None
            prev = groups.get(target)
            if prev is None:
                groups[target] = (sel, [(sub, e)])
            else:
                merged = None if prev[0] is None or sel is None else prev[0] | sel
                prev[1].append((sub, e))
                groups[target] = (merged, prev[1])
        for target in sorted(groups, key=lambda t: (TYPE_ORDER.get(index.records[t].type, 99), t)):
            sel, edges = groups[target]
            child = build(target, sel)
            child.recorded_sha256 = sorted({e.sha256 for _, e in edges})
            child.sha256_matches = all(_edge_matches(index.records[target], sub, e) for sub, e in edges)
            node.children.append(child)
        for e in missing:
            if rec.type == RAW_TYPE:
                continue
            eps = e.episode_ids if episodes is None else sorted(episodes.intersection(e.episode_ids)) if e.episode_ids else sorted(episodes)
            if e.episode_ids and not eps:
                continue
            node.children.append(LineageNode(type="missing" if e.key is not None else "external", key=e.key or "",
                                             uri=uri(e.key) if e.key is not None else e.uri,
                                             recorded_sha256=[e.sha256], sha256_matches=False,
                                             episode_ids=sorted(eps), info={"kind": e.kind}))
        return node

    return build(root_key, None)


# ---- downstream -----------------------------------------------------------------------------
@dataclass
class DownstreamHit:
    """An artifact that contains or was derived from the queried episodes.

    Attributes:
        type, key, uri: the artifact (``uri`` in the queried lake).
        episode_ids: which of the queried raw episodes it contains or derives from (sorted).
        sha256: sha256 of its canonical manifest; code_version, info: as in :class:`LineageNode`.
    """

    type: str
    key: str
    uri: str
    episode_ids: list[str]
    sha256: str
    code_version: str
    info: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "key": self.key, "uri": self.uri, "episode_ids": self.episode_ids,
                "sha256": self.sha256, "code_version": self.code_version, "info": self.info}


def query_episodes(index: LineageIndex, query: str, lake: Lake | None = None) -> set[str]:
    """The raw episode ids a downstream query names.

    ``consent:<id>``: raw episodes whose rights list the consent; ``customer:<name>``: whose
    ``customer`` or rights ``customers`` name it; otherwise a raw episode id, raw prefix, key or URI.

    Raises:
        LineageError: an episode/prefix/URI that names no raw episode, or a consent or customer no
        raw episode in the lake carries; the message names the closest known id ("did you mean").
    """
    q = query.strip()
    raws = [r for r in index.records.values() if r.type == RAW_TYPE]
    if q.startswith("consent:"):
        cid = q[len("consent:"):]
        found = {e for r in raws if cid in (r.rights.get("consent_refs") or []) for e in r.episode_ids}
        if not found:
            known = {c for r in raws for c in (r.rights.get("consent_refs") or [])}
            raise LineageError(f"no episode carries consent {cid!r} in this lake{did_you_mean(cid, known)}")
        return found
    if q.startswith("customer:"):
        name = q[len("customer:"):]
        found = {e for r in raws if r.info.get("customer") == name or name in (r.rights.get("customers") or [])
                 for e in r.episode_ids}
        if not found:
            known = {str(r.info["customer"]) for r in raws if r.info.get("customer")} | \
                {c for r in raws for c in (r.rights.get("customers") or [])}
            raise LineageError(f"no episode belongs to customer {name!r} in this lake{did_you_mean(name, known)}")
        return found
    if q in index.raw_by_episode:
        return {q}
    try:
        key = index.find(q, lake)
    except LineageError:
        raise LineageError(f"{query!r} is neither a raw episode id in this lake nor the prefix/URI of a raw "
                           f"episode{did_you_mean(q, index.raw_by_episode)} (use consent:<id> or customer:<name> "
                           "for those)") from None
    rec = index.records[key]
    if rec.type != RAW_TYPE:
        raise LineageError(f"{query!r} is a {rec.type} ({key}), not a raw episode; downstream takes a raw episode, "
                           "consent:<id> or customer:<name>")
    return set(rec.episode_ids)


def downstream(lake: Lake, query: str, *, index: LineageIndex | None = None,
               include_raw: bool = True) -> list[DownstreamHit]:
    """Every artifact containing or derived from the raw episodes ``query`` names.

    Args:
        lake: the lake to read (any backend; a copy works).
        query: a raw episode id, its raw prefix/URI, ``consent:<id>`` or ``customer:<name>``
            (see :func:`query_episodes`).
        index: a prebuilt :func:`load_index`.
        include_raw: also list the matching raw episodes themselves.

    Returns:
        Hits sorted by layer (raw, episodes_hdf5, release, norm stats, cache, checkpoint, eval
        report) then key. An artifact is a hit if one of the query's episodes is in its own
        ``episode_ids``, or reaches it through an input edge whose episode ids include it (an
        edge without episode ids passes everything): a checkpoint trained on the train split is
        not downstream of a held-out episode, its eval report (which evaluated on it) is.

    Raises:
        LineageError: see :func:`query_episodes`.
    """
    with gc_paused():
        return _downstream(lake, query, index or load_index(lake), include_raw)


def _downstream(lake: Lake, query: str, index: LineageIndex, include_raw: bool) -> list[DownstreamHit]:
    wanted = query_episodes(index, query, lake)
    if not wanted:
        return []
    memo: dict[str, frozenset[str]] = {}
    empty: frozenset[str] = frozenset()

    def derived(key: str, stack: set[str]) -> frozenset[str]:
        hit = memo.get(key)
        if hit is not None:
            return hit
        rec = index.records[key]
        acc = wanted.intersection(rec.episode_ids)
        if rec.type != RAW_TYPE:
            stack.add(key)
            for e in rec.inputs:
                r = index.resolve(e.key)
                if r is None or r[0] in stack:
                    continue
                d = derived(r[0], stack)
                if d:
                    acc |= d.intersection(e.episode_ids) if e.episode_ids else d
            stack.discard(key)
        out = frozenset(acc) if acc else empty
        memo[key] = out
        return out

    hits = []
    uri = uri_function(lake)
    for key, rec in index.records.items():
        if rec.type == RAW_TYPE and not include_raw:
            continue
        d = derived(key, set())
        if d:
            info = {k: v for k, v in rec.info.items() if k != "mcap_key"}
            hits.append(DownstreamHit(type=rec.type, key=key, uri=uri(key), episode_ids=sorted(d),
                                      sha256=rec.manifest_sha256, code_version=rec.code_version, info=info))
    hits.sort(key=lambda h: (TYPE_ORDER.get(h.type, 99), h.key))
    return hits


# ---- output ---------------------------------------------------------------------------------
def to_json(result: LineageNode | list[DownstreamHit] | dict[str, Any], *, indent: int | None = 2) -> str:
    """JSON text of an upstream tree, a downstream hit list, or a dict holding them."""

    def conv(o: Any) -> Any:
        if isinstance(o, (LineageNode, DownstreamHit)):
            return o.to_dict()
        if isinstance(o, dict):
            return {k: conv(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [conv(v) for v in o]
        return o

    return json.dumps(conv(result), indent=indent, sort_keys=False, default=str)


def _short(v: Any, width: int = 60) -> str:
    s = json.dumps(v, sort_keys=True, default=str, separators=(",", ":")) if not isinstance(v, str) else v
    return s if len(s) <= width else s[: width - 1] + "…"


def _node_line(n: LineageNode) -> str:
    label = n.key or n.uri
    if n.type == RAW_TYPE:
        i, r = n.info, n.rights
        parts = [f"raw {', '.join(n.episode_ids)}", f"mcap sha256 {n.sha256}", f"robot {i.get('robot_id', '?')}",
                 f"day {i.get('capture_day', '?')}", f"operator {i.get('operator', '?')}", f"site {i.get('site', '?')}",
                 f"consents {','.join(r.get('consent_refs') or []) or '-'}",
                 f"licenses {','.join(r.get('licenses') or []) or '-'}"]
        line = " | ".join(parts)
    elif n.type in ("missing", "external"):
        line = f"{n.type.upper()} input {n.key or n.uri} (recorded sha256 {', '.join(n.recorded_sha256)[:16]}…)"
    else:
        line = f"{n.type} {label}  sha256 {n.sha256[:16]}…  {len(n.episode_ids)} episode(s)  code {n.code_version}"
    if n.sha256_matches is False and n.type not in ("missing", "external"):
        line += "  [CHANGED since consumed: recorded sha256 differs]"
    if n.repeated:
        line += "  (see above)"
    return line


def render_tree(node: LineageNode, *, max_children: int | None = None, show_config: bool = True) -> str:
    """Human-readable tree of an upstream answer (one artifact per line, box-drawing branches).

    Non-raw nodes get a ``config:`` line (top-level keys, long values cut to 60 characters).
    ``max_children`` cuts each node's children list (``… N more``).
    """
    lines: list[str] = []

    def rec(n: LineageNode, prefix: str, child_prefix: str) -> None:
        lines.append(prefix + _node_line(n))
        if show_config and n.type != RAW_TYPE and n.config and not n.repeated:
            cfg = ", ".join(f"{k}={_short(v)}" for k, v in sorted(n.config.items()))
            lines.append(child_prefix + ("│   " if n.children else "    ") + f"config: {cfg}")
        kids = n.children if max_children is None else n.children[:max_children]
        for i, c in enumerate(kids):
            last = i == len(kids) - 1 and len(kids) == len(n.children)
            rec(c, child_prefix + ("└── " if last else "├── "), child_prefix + ("    " if last else "│   "))
        if len(kids) < len(n.children):
            lines.append(child_prefix + f"└── … {len(n.children) - len(kids)} more")

    rec(node, "", "")
    raws = node.raw_episodes()
    lines.append(f"= {len(raws)} raw episode(s) from {len({r.info.get('robot_id') for r in raws})} robot(s), "
                 f"{len({r.info.get('capture_day') for r in raws})} capture day(s)")
    return "\n".join(lines)


def render_hits(query: str, hits: list[DownstreamHit]) -> str:
    """Human-readable downstream answer grouped by artifact type."""
    if not hits:
        return f"nothing in this lake contains or derives from {query}"
    lines = [f"downstream of {query}: {len(hits)} artifact(s)"]
    cur = None
    for h in hits:
        if h.type != cur:
            cur = h.type
            lines.append(f"{cur}:")
        eps = h.episode_ids if len(h.episode_ids) <= 3 else h.episode_ids[:3] + [f"… {len(h.episode_ids) - 3} more"]
        lines.append(f"  {h.key}  ({len(h.episode_ids)} of the episodes: {', '.join(eps)})")
    return "\n".join(lines)
