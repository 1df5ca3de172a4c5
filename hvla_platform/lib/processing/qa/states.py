"""Where every episode the lake has seen stands, and why: what ``hvla qa list`` and the summary of
``hvla ingest`` show.

One :class:`EpisodeState` per episode (and per refused upload), from the evidence the stages keep:

=============  ===============================================================================
status         evidence
=============  ===============================================================================
``rejected``   refused at landing (bad or missing ``metadata.yaml``, unsafe ids, not exactly one
               ``.mcap``, a symbolic link): ``quarantine/_rejected/<digest>/reason.json``
``conflict``   a changed re-upload of a landed episode, refused (landing is write-once):
               ``quarantine/_conflicts/<day>/<robot>/<episode>/<digest>/reason.json``; the landed
               version keeps its own row
``landed``     in ``landing/`` and not ingested yet (no entry in the raw partition index)
``quarantined`` failed a raw check (``raw-mcap/<day>/<robot>/_partition.json``) or its conversion
               failed (``episodes-hdf5`` manifest): ``quarantine/<day>/<robot>/<episode>/``
``withdrawn``  its consent was withdrawn (``hvla rights revoke``)
``raw``        in the raw layer, not converted yet
``converted``  in ``episodes-hdf5/<day>/<robot>/`` with its QA checks and quality score
=============  ===============================================================================

The latest supervisor decision (``approve``/``reject``) is attached to the episode's row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hvla_platform.lib.core.keys import (
    EPISODES,
    episodes_prefix,
    landing_prefix,
    quarantine_prefix,
    raw_prefix,
)
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.tables import check_qa_results
from hvla_platform.lib.core.withdrawals import revoked_episodes
from hvla_platform.lib.ingest.landing import landed_episodes, list_landing_partitions
from hvla_platform.lib.ingest.raw import read_partition_index
from hvla_platform.lib.ingest.refusals import list_refusals
from hvla_platform.lib.processing.qa.decisions import latest_decisions

#: Statuses meaning "this input did not make it" (``hvla ingest`` exits 5 when one of its inputs has one).
REFUSED_STATUSES = ("rejected", "conflict", "quarantined", "withdrawn")


@dataclass
class EpisodeState:
    """One row of ``hvla qa list``.

    ``episode_id`` is ``""`` for a landing rejection that named no usable id, not even by its MCAP's
    name (``source`` and ``where`` identify it then); ``partition`` is ``<day>|<robot>`` when known; ``where`` is the
    URI of the evidence (the artifact, the quarantine record); ``why`` the reason (empty when
    nothing is wrong); ``failed_checks`` the QA checks the episode failed; ``decision`` the latest
    supervisor decision (``{"decision", "by", "reason", "at"}``) or ``None``.
    """

    episode_id: str
    partition: str
    status: str
    where: str
    why: str = ""
    source: str = ""
    quality_score: float | None = None
    failed_checks: list[str] = field(default_factory=list)
    decision: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``hvla qa list --json``)."""
        return asdict(self)


def _refusal_rows(lake: Lake) -> list[EpisodeState]:
    return [EpisodeState(episode_id=r.episode_id, partition=r.partition, status=r.status, where=lake.uri(r.evidence),
                         why=r.reason, source=r.source) for r in list_refusals(lake)]


def _partition_rows(lake: Lake, day: str, robot: str, landed: list[str],
                    revoked: dict[str, str]) -> list[EpisodeState]:
    part = f"{day}|{robot}"
    try:
        raw = {e["episode_id"]: e for e in read_partition_index(lake, day, robot)["episodes"]}
    except FileNotFoundError:
        raw = {}
    manifest = lake.read_manifest(episodes_prefix(day, robot)) or {}
    conversions = {c["episode_id"]: c for c in check_qa_results(
        manifest.get("conversions", []), where=f"{lake.uri(lake.manifest_key(episodes_prefix(day, robot)))} (conversions)")}
    rows = []
    for ep in sorted(set(landed) | set(raw)):
        r, c = raw.get(ep), conversions.get(ep)
        if ep in revoked:
            row = EpisodeState(ep, part, "withdrawn", lake.uri(raw_prefix(day, robot, ep)), why=revoked[ep])
        elif c is not None and c.get("status") == "converted":
            row = EpisodeState(ep, part, "converted", lake.uri(f"{episodes_prefix(day, robot)}/{c.get('file', ep + '.h5')}"),
                               quality_score=c.get("quality_score"),
                               failed_checks=[k for k, v in c.get("qa_checks", {}).items() if not v["passed"]])
        elif c is not None:
            row = EpisodeState(ep, part, "quarantined", lake.uri(quarantine_prefix(day, robot, ep)),
                               why=f"conversion {c.get('status')}: {c.get('reason', '')}")
        elif r is not None and not r.get("convertible", False):
            why = "; ".join(r.get("reasons") or []) or f"raw status {r.get('status')}"
            row = EpisodeState(ep, part, "quarantined", lake.uri(quarantine_prefix(day, robot, ep)), why=why)
        elif r is not None:
            row = EpisodeState(ep, part, "raw", lake.uri(raw_prefix(day, robot, ep)), why="not converted yet")
        else:
            row = EpisodeState(ep, part, "landed", lake.uri(landing_prefix(day, robot, ep)), why="not ingested yet")
        rows.append(row)
    return rows


def episode_states(lake: Lake) -> list[EpisodeState]:
    """Every episode's state (module docstring), sorted by partition and episode (an upload refused
    after the episode landed follows the episode's row; rejections naming no partition come first).

    Raises:
        TableError: a stage's table (partition index, QA results) breaks its schema.
        DecisionError: a stored decision breaks its contract.
    """
    by_partition: dict[tuple[str, str], list[str]] = {}
    for ep, (day, robot) in landed_episodes(lake).items():
        by_partition.setdefault((day, robot), []).append(ep)
    parts = set(by_partition) | set(list_landing_partitions(lake))
    for key in lake.list_keys(EPISODES):  # partitions converted whose landing copy was moved
        segs = key.split("/")
        if len(segs) == 4:
            parts.add((segs[1], segs[2]))
    revoked = revoked_episodes(lake)
    rows = []
    for day, robot in sorted(parts):
        rows += _partition_rows(lake, day, robot, by_partition.get((day, robot), []), revoked)
    rows += _refusal_rows(lake)
    decisions = latest_decisions(lake)
    for row in rows:
        d = decisions.get(row.episode_id) if row.status not in ("rejected", "conflict") else None
        if d:
            row.decision = {k: d[k] for k in ("decision", "by", "reason", "at")}
    rows.sort(key=lambda s: (s.partition, s.episode_id, s.status in ("conflict", "rejected")))
    return rows
