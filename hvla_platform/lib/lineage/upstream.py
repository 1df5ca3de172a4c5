"""Upstream lineage: the tree of what an artifact was built from, down to the raw leaves (robot MCAP
and teleop episodes, human video clips).

Queries are graph walks over the in-memory records of a :class:`~.index.LineageIndex`: the walk
follows the input edges of the visited nodes, restricted by the episode ids each edge records, so a
checkpoint (whose cache input lists only the train split) reaches exactly its train episodes, not
the held-out ones the cache also holds. Every node also says whether the sha256 its consumer
recorded still matches what is at that key now (``sha256_matches``): a re-materialized input shows
up as ``False``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import quote

from hvla_platform.lib.core.lake import Lake, LocalLake
from hvla_platform.lib.lineage.index import LineageIndex, gc_paused, load_index
from hvla_platform.lib.lineage.records import RAW_CONTENT_SHA, RAW_TYPE, RAW_TYPES, TYPE_ORDER, ArtifactRecord, Edge


@dataclass(slots=True)
class LineageNode:
    """One artifact in an upstream tree.

    Attributes:
        type: artifact type (``checkpoint``, ``raw_mcap_episode``, ``raw_teleop_episode``,
            ``raw_human_video_clip``...; ``missing`` if the input is
            not in the lake, ``external`` if its URI is outside the lake).
        key: lake prefix ("" for external), as the manifests record it.
        uri: its URI in the queried lake, for display (computed from the lake: a copied lake's
            answer differs from the original's only in these URIs); for ``external``, the URI a
            version-1 manifest recorded.
        sha256: raw leaves: the recorded content's sha256 (robot episodes: the MCAP file's; teleop
            episodes: ``episode_sha256``, the digest of their frames and meta; clips: the MP4's);
            others: sha256 of the canonical manifest.
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
        children: inputs (empty for raw leaves and for ``repeated`` nodes).
        repeated: this artifact, with the same episodes, was already expanded earlier in the tree.
        flag: the artifact's consent-withdrawal flag (``do_not_use`` / ``retrain_required`` with
            consent, reason and revocation record), or ``None``; set by
            :func:`hvla_platform.lib.lineage.standing.annotate_tree`, not by :func:`upstream`.
        withdrawn: for a raw or ``missing`` node whose episodes were all withdrawn,
            ``{"episodes": {id: withdrawal record}}``; set by ``annotate_tree`` too.
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
    flag: dict[str, Any] | None = None
    withdrawn: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (children recursively)."""
        d = {k: getattr(self, k) for k in ("type", "key", "uri", "sha256", "manifest_sha256",
                                           "recorded_sha256", "sha256_matches", "episode_ids", "config",
                                           "code_version", "rights", "info", "repeated", "flag", "withdrawn")}
        d["children"] = [c.to_dict() for c in self.children]
        return d

    def walk(self) -> Iterator["LineageNode"]:
        """This node and every descendant, depth first."""
        yield self
        for c in self.children:
            yield from c.walk()

    def raw_episodes(self) -> list["LineageNode"]:
        """The distinct raw leaves of the tree (robot and teleop episodes, human video clips; one node
        per raw prefix), sorted by episode id."""
        seen: dict[str, LineageNode] = {}
        for n in self.walk():
            if n.type in RAW_TYPES and n.key not in seen:
                seen[n.key] = n
        return sorted(seen.values(), key=lambda n: (n.episode_ids, n.key))


#: keys that ``urllib.parse.quote`` leaves unchanged (its always-safe characters and ``/``)
_URI_PLAIN = re.compile(r"[A-Za-z0-9_.~/-]*")


def uri_function(lake: Lake):
    """A fast ``key -> URI`` equal to ``lake.uri`` (``LocalLake.uri`` goes through pathlib, ~20 µs a call)."""
    if isinstance(lake, LocalLake):
        base = lake.root_uri().rstrip("/")
        plain = _URI_PLAIN.fullmatch
        return lambda key: f"{base}/{key}" if plain(key) else f"{base}/{quote(key)}"
    return lake.uri


def _node(uri: Any, rec: ArtifactRecord, episodes: set[str] | None) -> LineageNode:
    eps = sorted(episodes) if episodes is not None else sorted(rec.episode_ids)
    info = dict(rec.info)
    sha = rec.manifest_sha256
    if rec.type in RAW_TYPES:
        sha = str(rec.info.get(RAW_CONTENT_SHA[rec.type]) or sha)
        mk = info.get("mcap_key")
        if mk and rec.type == RAW_TYPE:
            info["mcap_uri"] = uri(mk)
    else:
        info.pop("mcap_key", None)
    return LineageNode(type=rec.type, key=rec.key, uri=uri(rec.key), sha256=sha,
                       manifest_sha256=rec.manifest_sha256, episode_ids=eps, config=rec.config,
                       code_version=rec.code_version, rights=rec.rights, info=info)


def _edge_matches(rec: ArtifactRecord, sub: str, e: Edge) -> bool:
    return e.sha256 == rec.manifest_sha256 or (bool(sub) and rec.files.get(sub) == e.sha256)


def upstream(lake: Lake, artifact: str, *, index: LineageIndex | None = None) -> LineageNode:
    """The lineage tree of ``artifact`` down to its raw leaves (:data:`~.records.RAW_TYPES`).

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
    resolved = index._resolved

    def build(key: str, episodes: set[str] | None) -> LineageNode:
        rec = index.records[key]
        node = _node(uri, rec, episodes)
        memo_key = (key, frozenset(episodes) if episodes is not None else None)
        if memo_key in expanded:
            node.repeated = True
            return node
        expanded.add(memo_key)
        if rec.type in RAW_TYPES:
            return node
        groups: dict[str, tuple[set[str] | None, list[tuple[str, Edge]]]] = {}
        missing: list[Edge] = []
        for e in rec.inputs:
            r = resolved.get(e.key, False) if e.key is not None else None
            if r is False:
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
            elif prev[0] is None or sel is None:
                prev[1].append((sub, e))
                groups[target] = (None, prev[1])
            else:
                prev[0].update(sel)  # sel and prev[0] are sets made for this node: merged in place
                prev[1].append((sub, e))
        for target in sorted(groups, key=lambda t: (TYPE_ORDER.get(index.records[t].type, 99), t)):
            sel, edges = groups[target]
            child = build(target, sel)
            if len(edges) == 1:  # the common case (a raw episode under its partition): no set, no generator
                sub, e = edges[0]
                child.recorded_sha256 = [e.sha256]
                child.sha256_matches = _edge_matches(index.records[target], sub, e)
            else:
                child.recorded_sha256 = sorted({e.sha256 for _, e in edges})
                child.sha256_matches = all(_edge_matches(index.records[target], sub, e) for sub, e in edges)
            node.children.append(child)
        for e in missing:
            if rec.type in RAW_TYPES:
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
