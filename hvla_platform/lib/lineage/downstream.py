"""Downstream lineage: every artifact that contains or was derived from given raw episodes.

A query names raw leaves -- robot MCAP and teleop episodes, human video clips
(:data:`~.records.RAW_TYPES`) -- by id, raw prefix or URI, ``consent:<id>``, ``customer:<name>``
(:func:`query_episodes`); the matching set is propagated through all artifacts
once (memoised per artifact), intersecting with each input edge's episode ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.core.withdrawals import withdrawn_episode_records
from hvla_platform.lib.lineage.index import LineageIndex, gc_paused, load_index
from hvla_platform.lib.lineage.records import PRODUCED_BY_KIND, RAW_TYPES, ROLLOUT_TYPE, TYPE_ORDER, LineageError
from hvla_platform.lib.lineage.upstream import uri_function


@dataclass(slots=True)
class DownstreamHit:
    """An artifact that contains or was derived from the queried episodes.

    Attributes:
        type, key, uri: the artifact (``uri`` in the queried lake).
        episode_ids: which of the queried raw episodes it contains or derives from (sorted).
        sha256: sha256 of its canonical manifest; code_version, info: as in :class:`LineageNode`.
        flag: its consent-withdrawal flag or ``None`` (set by
            :func:`hvla_platform.lib.lineage.standing.annotate_hits`).
    """

    type: str
    key: str
    uri: str
    episode_ids: list[str]
    sha256: str
    code_version: str
    info: dict[str, Any]
    flag: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"type": self.type, "key": self.key, "uri": self.uri, "episode_ids": self.episode_ids,
                "sha256": self.sha256, "code_version": self.code_version, "info": self.info, "flag": self.flag}


def query_episodes(index: LineageIndex, query: str, lake: Lake | None = None) -> set[str]:
    """The raw episode (and clip) ids a downstream query names; every raw source counts
    (:data:`~.records.RAW_TYPES`: robot MCAP and teleop episodes, human video clips).

    ``consent:<id>``: raw episodes whose rights list the consent, and (given ``lake``) the episodes
    a revocation of that consent withdrew (``rights-revocations/``); ``customer:<name>``: whose
    ``customer`` or rights ``customers`` name it; ``checkpoint:<key>``: the rollouts the checkpoint
    produced (:func:`rollouts_of`); otherwise a raw episode id, raw prefix, key or URI.

    Raises:
        LineageError: an episode/prefix/URI that names no raw episode, or a consent or customer no
        raw episode in the lake carries; the message names the closest known id ("did you mean").
    """
    q = query.strip()
    if q.startswith("checkpoint:"):
        return rollouts_of(index, q[len("checkpoint:"):], lake)
    raws = [r for r in index.records.values() if r.type in RAW_TYPES]
    if q.startswith("consent:"):
        cid = q[len("consent:"):]
        found = {e for r in raws if cid in (r.rights.get("consent_refs") or []) for e in r.episode_ids}
        if lake is not None:  # episodes withdrawn under it: their raw manifests may be gone, their artifacts not
            found |= {e for e, r in withdrawn_episode_records(lake).items() if r["consent"] == cid}
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
    if rec.type not in RAW_TYPES:
        raise LineageError(f"{query!r} is a {rec.type} ({key}), not a raw episode; downstream takes a raw episode "
                           "(robot or teleop) or human video clip, "
                           "consent:<id> or customer:<name>"
                           + (f" (checkpoint:{key} for the rollouts it produced)" if rec.type == "checkpoint" else ""))
    return set(rec.episode_ids)


def rollouts_of(index: LineageIndex, checkpoint: str, lake: Lake | None = None) -> set[str]:
    """The raw rollout episodes a checkpoint produced: the episodes of every rollout checklist
    (``rollout_checklist``, lib/ingest/rollouts.py) whose ``checkpoint`` input is ``checkpoint``
    (a lake prefix or URI of a checkpoint in this lake, or the key a rollout recorded for a checkpoint
    this lake does not hold).

    Raises:
        LineageError: no rollout in this lake was produced by that checkpoint.
    """
    try:
        key = index.find(checkpoint, lake)
    except LineageError:
        key = checkpoint.strip().rstrip("/")
    found = {ep for r in index.records.values() if r.type == ROLLOUT_TYPE
             for e in r.inputs if e.kind == PRODUCED_BY_KIND and e.key == key for ep in (e.episode_ids or r.episode_ids)}
    if not found:
        raise LineageError(f"no rollout in this lake was produced by checkpoint {key!r} (rollouts are recorded with "
                           "`hvla deploy --record-rollout` and checked once their raw partition is ingested)")
    return found


def downstream(lake: Lake, query: str, *, index: LineageIndex | None = None,
               include_raw: bool = True) -> list[DownstreamHit]:
    """Every artifact containing or derived from the raw episodes ``query`` names.

    Args:
        lake: the lake to read (any backend; a copy works).
        query: a raw episode id, its raw prefix/URI, ``consent:<id>``, ``customer:<name>`` or
            ``checkpoint:<key>`` (the rollouts it produced, :func:`rollouts_of`; see :func:`query_episodes`).
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
    records, resolved, resolve = index.records, index._resolved, index.resolve
    for key, rec in records.items():  # raw episodes and clips are leaves: their answer is direct
        if rec.type in RAW_TYPES:
            eps = rec.episode_ids
            memo[key] = (frozenset(eps) if eps[0] in wanted else empty) if len(eps) == 1 else \
                (frozenset(wanted.intersection(eps)) or empty)

    def derived(key: str, stack: set[str]) -> frozenset[str]:
        hit = memo.get(key)
        if hit is not None:
            return hit
        rec = records[key]
        acc = wanted.intersection(rec.episode_ids)
        stack.add(key)
        for e in rec.inputs:
            r = resolved.get(e.key, False) if e.key is not None else None
            if r is False:
                r = resolve(e.key)
            if r is None or r[0] in stack:
                continue
            d = memo.get(r[0])
            if d is None:
                d = derived(r[0], stack)
            if d:
                ids = e.episode_ids
                if len(ids) == 1:  # a release's per-episode edge: no intermediate set
                    if ids[0] in d:
                        acc.add(ids[0])
                else:
                    acc |= d.intersection(ids) if ids else d
        stack.discard(key)
        out = frozenset(acc) if acc else empty
        memo[key] = out
        return out

    hits = []
    uri = uri_function(lake)
    for key, rec in records.items():
        if rec.type in RAW_TYPES and not include_raw:
            continue
        d = memo.get(key)
        if d is None:
            d = derived(key, set())
        if d:
            info = {k: v for k, v in rec.info.items() if k != "mcap_key"}
            hits.append(DownstreamHit(type=rec.type, key=key, uri=uri(key), episode_ids=sorted(d),
                                      sha256=rec.manifest_sha256, code_version=rec.code_version, info=info))
    hits.sort(key=lambda h: (TYPE_ORDER.get(h.type, 99), h.key))
    return hits
