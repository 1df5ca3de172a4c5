"""Cross-check a manifest-based lineage answer against a Dagster instance's event log.

:mod:`hvla_platform.lib.lineage.graph` answers from the lake's manifests only (so it works on a copied
lake, without Dagster). This module checks that such an answer *agrees with Dagster*: every
artifact in it must have been materialized by the asset that produces that artifact type, with
``dagster/uri`` metadata equal to the artifact's URI.

Raw episodes are the one asymmetry: ``raw_mcap`` materializes per ``capture_day|robot``
partition, so its ``dagster/uri`` is the partition prefix ``raw-mcap/<day>/<robot>``; a raw
episode agrees if a ``raw_mcap`` materialization has the episode's parent prefix as URI and (when
present) lists the episode id in ``hvla/episode_ids``.

A ``dagster/uri`` agrees with an artifact when it is the artifact's URI in the queried lake or
any URI ending in ``/<artifact key>``: manifests record lake keys only (no absolute location), so
an answer computed on a copy of the lake is checked against the original instance by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import dagster as dg

from hvla_platform.lib.lineage.graph import RAW_TYPE, DownstreamHit, LineageNode

#: artifact type (manifest ``artifact_type``) → the asset that materializes it
ASSET_OF_TYPE = {
    RAW_TYPE: "raw_mcap",
    "episodes_hdf5": "episodes_hdf5",
    "lerobot_dataset": "lerobot_dataset",
    "norm_stats": "norm_stats",
    "robodm_cache": "robodm_cache",
    "openpi_export": "openpi_export",
    "checkpoint": "checkpoint",
    "eval_report": "eval_report",
}


@dataclass
class Mismatch:
    """An artifact of the answer without a matching materialization.

    Attributes:
        type, key, uri: the artifact as in the answer.
        asset: the asset expected to have materialized it ("" if the type has none).
        reason: what is wrong, in words.
        event_uris: a few ``dagster/uri`` values that asset did record (for the report).
    """

    type: str
    key: str
    uri: str
    asset: str
    reason: str
    event_uris: list[str] = field(default_factory=list)


@dataclass
class Agreement:
    """Result of :func:`check_event_log_agreement`.

    Attributes:
        checked: number of distinct artifacts checked.
        matched: ``{artifact key: the event's dagster/uri}`` for every artifact that agrees.
        mismatches: the ones that do not.
    """

    checked: int = 0
    matched: dict[str, str] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every artifact of the answer has its materialization."""
        return not self.mismatches

    def summary(self) -> str:
        """One line per mismatch (or a single agreement line)."""
        if self.ok:
            return f"event log agrees: {self.checked} artifact(s) materialized with the same dagster/uri"
        lines = [f"event log disagrees on {len(self.mismatches)} of {self.checked} artifact(s):"]
        lines += [f"  {m.type} {m.key}: {m.reason}" for m in self.mismatches]
        return "\n".join(lines)


def _artifacts(answer: LineageNode | Iterable[DownstreamHit]) -> list[tuple[str, str, set[str], list[str]]]:
    """``(type, key, {candidate uris}, episode ids)`` per distinct artifact of the answer."""
    out: dict[str, tuple[str, str, set[str], list[str]]] = {}
    items: Iterable[Any] = answer.walk() if isinstance(answer, LineageNode) else answer
    for a in items:
        if a.type in ("missing", "external"):
            continue
        uris = {a.uri.rstrip("/")}
        prev = out.get(a.key)
        if prev is None:
            out[a.key] = (a.type, a.key, uris, list(a.episode_ids))
        else:
            prev[2].update(uris)
    return list(out.values())


def _event_index(instance: dg.DagsterInstance, asset: str, page: int) -> dict[str, set[str] | None]:
    """``{dagster/uri: episode ids listed (None if not listed)}`` over all materializations of ``asset``."""
    out: dict[str, set[str] | None] = {}
    cursor = None
    while True:
        res = instance.fetch_materializations(dg.AssetKey(asset), limit=page, cursor=cursor)
        for r in res.records:
            mat = r.asset_materialization
            if mat is None:
                continue
            md = mat.metadata
            uri = md.get("dagster/uri")
            if uri is None:
                continue
            u = str(getattr(uri, "value", uri)).rstrip("/")
            eps = md.get("hvla/episode_ids")
            if eps is None:
                out.setdefault(u, None)
            else:
                ids = {e.strip() for e in str(getattr(eps, "value", eps)).split(",") if e.strip()}
                cur = out.get(u)
                out[u] = ids if cur is None else cur | ids
        if not res.has_more:
            return out
        cursor = res.cursor


def check_event_log_agreement(instance: dg.DagsterInstance, answer: LineageNode | Iterable[DownstreamHit], *,
                              page: int = 1000) -> Agreement:
    """Check that every artifact of a lineage answer was materialized with its URI.

    Args:
        instance: the Dagster instance whose event log to read.
        answer: an :func:`~hvla_platform.lib.lineage.graph.upstream` tree or a
            :func:`~hvla_platform.lib.lineage.graph.downstream` hit list.
        page: materializations fetched per event-log query.

    Returns:
        An :class:`Agreement`; ``agreement.ok`` is False with one :class:`Mismatch` per artifact
        that has no materialization of its type's asset with a matching ``dagster/uri`` (or, for
        a raw episode, whose partition materialization does not list it).
    """
    result = Agreement()
    events: dict[str, dict[str, set[str] | None]] = {}
    for typ, key, uris, episode_ids in _artifacts(answer):
        result.checked += 1
        asset = ASSET_OF_TYPE.get(typ, "")
        if not asset:
            result.mismatches.append(Mismatch(typ, key, sorted(uris)[0], "", f"no asset materializes type {typ!r}"))
            continue
        if asset not in events:
            events[asset] = _event_index(instance, asset, page)
        ev = events[asset]
        if typ == RAW_TYPE:
            wanted = {u.rsplit("/", 1)[0] for u in uris}
            parent = key.rsplit("/", 1)[0]
            hit = next((u for u in sorted(ev) if u in wanted or u.endswith("/" + parent)), None)
            if hit is not None and ev[hit] is not None and not set(episode_ids) <= ev[hit]:  # type: ignore[operator]
                result.mismatches.append(Mismatch(typ, key, sorted(uris)[0], asset,
                                                  f"partition {hit} was materialized but does not list episode(s) "
                                                  f"{sorted(set(episode_ids) - ev[hit])}"))  # type: ignore[operator]
                continue
        else:
            hit = next((u for u in sorted(ev) if u in uris or u.endswith("/" + key)), None)
        if hit is None:
            result.mismatches.append(Mismatch(typ, key, sorted(uris)[0], asset,
                                              f"no {asset} materialization with dagster/uri in {sorted(uris)}",
                                              event_uris=sorted(ev)[:5]))
        else:
            result.matched[key] = hit
    return result
