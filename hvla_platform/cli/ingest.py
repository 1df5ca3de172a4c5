"""``hvla ingest DIR [--materialize]``: land recordings (write-once), register their partitions,
optionally run ``ingest_job`` for them, and say where every recording went.

Nothing is refused where nobody looks: a rejected recording keeps its files and ``reason.json``
under ``quarantine/_rejected/``, a changed re-upload under ``quarantine/_conflicts/`` (as the drop
area does), each refusal is recorded on the ``raw_mcap`` partition it names in Dagster (an asset
observation; one naming no partition is recorded on the asset), and the command ends with one table
(episode, partition, where it went, why). Exit code 0 only when every recording landed (and, with
``--materialize``, was ingested and converted); 5 when some were rejected, in conflict, withdrawn or
quarantined; 1 when a run failed (README, "Exit codes").
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvla_platform.cli.common import EXIT_OK, EXIT_PARTIAL, echo, open_env_lake
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.ingest.drop_watch import record_conflict
from hvla_platform.lib.ingest.landing import LandingResult, find_recordings, land_recording
from hvla_platform.lib.processing.qa.states import REFUSED_STATUSES, episode_states

#: Landing statuses that put (or kept) the episode in the landing area.
IN_LANDING = ("landed", "already_landed")


@dataclass
class Landed:
    """One recording of the folder: its landing result and, for a refusal, the evidence's key."""

    folder: str
    result: LandingResult
    evidence: str = ""


def land_recordings(lake: Lake, folder: Path) -> list[Landed]:
    """Land every recording under ``folder`` (write-once); keep a conflicting re-upload's files as
    evidence under ``quarantine/_conflicts/`` (:func:`~hvla_platform.lib.ingest.drop_watch.record_conflict`).

    Raises:
        FileNotFoundError: ``folder`` holds no recording (no folder with an ``.mcap``).
    """
    recs = find_recordings(folder)
    if not recs:
        raise FileNotFoundError(2, "no recordings (folders with metadata.yaml and an .mcap) under it", str(folder))
    out = []
    for rec in recs:
        r = land_recording(lake, rec)
        shown = str(rec.relative_to(folder)) if rec != folder else rec.name
        item = Landed(shown, r, evidence=r.evidence)
        if r.status == "conflict":
            item.evidence = record_conflict(lake, r, rec).rsplit("/", 1)[0]
        out.append(item)
        echo(f"  {r.status:>14}  {shown}" + (f"  ({' '.join(r.reason.split())})" if r.reason else ""))
    return out


def _partitions(items: list[Landed], *statuses: str) -> list[tuple[str, str]]:
    return sorted({(i.result.capture_day, i.result.robot_id) for i in items
                   if i.result.status in statuses and i.result.capture_day and i.result.robot_id})


def land_folder(folder: Path) -> list[tuple[str, str]]:
    """Land every recording under ``folder``; register their partitions; return those now in the
    landing area (a conflict's partition included: its first version landed)."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import instance  # noqa: PLC0415
    from hvla_platform.defs.partitions import register_raw_partitions  # noqa: PLC0415

    try:
        items = land_recordings(open_env_lake(), folder)
    except FileNotFoundError as exc:
        raise SystemExit(f"{exc.strerror} {folder}") from None
    parts = _partitions(items, *IN_LANDING, "conflict")
    register_raw_partitions(instance(), parts)
    return parts


def record_refusals(inst: Any, lake: Lake, items: list[Landed]) -> int:
    """Record every refused recording on ``raw_mcap`` in Dagster: an asset observation on the
    partition the recording named (registered if new), or on the asset when it named none.
    Returns how many were recorded."""
    # deferred: dagster (seconds) is only needed when there is something to record
    import dagster as dg  # noqa: PLC0415

    from hvla_platform.defs.partitions import register_raw_partitions  # noqa: PLC0415

    refused = [i for i in items if i.result.status not in IN_LANDING]
    named = _partitions(refused, "rejected", "conflict", "withdrawn")
    register_raw_partitions(inst, named)
    for i in refused:
        r = i.result
        part = f"{r.capture_day}|{r.robot_id}" if r.capture_day and r.robot_id else None
        inst.report_runless_asset_event(dg.AssetObservation(
            asset_key="raw_mcap", partition=part,
            description=f"hvla ingest: upload of {r.episode_id or i.folder} {r.status} at landing: {r.reason}",
            metadata={"hvla/landing_refusal": r.status, "hvla/episode_id": r.episode_id or "(none named)",
                      "hvla/reason": r.reason, "hvla/source": r.source,
                      "hvla/evidence": lake.uri(i.evidence) if i.evidence else "(nothing copied)"}))
    return len(refused)


def summary_rows(lake: Lake, items: list[Landed]) -> list[dict[str, str]]:
    """One row per recording: ``episode``, ``partition``, ``status`` (``landed`` … ``converted``,
    ``rejected``, ``conflict``, ``withdrawn``, ``quarantined``), ``where`` (URI) and ``why``."""
    states = {(s.partition, s.episode_id): s for s in episode_states(lake) if s.status not in ("rejected", "conflict")}
    rows = []
    for i in items:
        r = i.result
        part = f"{r.capture_day}|{r.robot_id}" if r.capture_day and r.robot_id else ""
        row = {"episode": r.episode_id or f"({i.folder})", "partition": part or "-", "status": r.status,
               "where": lake.uri(i.evidence) if i.evidence else "(not copied)", "why": r.reason}
        if r.status in IN_LANDING:
            s = states.get((part, r.episode_id or ""))
            if s is not None:
                why = s.why or (f"failed QA: {', '.join(s.failed_checks)}" if s.failed_checks else "")
                row.update(status=s.status, where=s.where, why=why)
        rows.append(row)
    return rows


def print_summary(rows: list[dict[str, str]]) -> None:
    """The summary table (episode, partition, status, where it went, why)."""
    w = max([len("episode")] + [len(r["episode"]) for r in rows])
    echo(f"{'episode':<{w}}  {'partition':<20} {'status':<11} where it went  (why)")
    for r in rows:
        why = " ".join(r["why"].split())
        echo(f"{r['episode']:<{w}}  {r['partition']:<20} {r['status']:<11} {r['where']}" + (f"  ({why})" if why else ""))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    echo(f"= {len(rows)} recording(s): " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def cmd_ingest(args: argparse.Namespace) -> int:
    """`hvla ingest DIR [--materialize]`: land recordings, register partitions, record refusals in
    Dagster, optionally run ingest_job, print the summary; exit 0 / 5 (some refused) / 1 (a run failed)."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import instance, load_defs  # noqa: PLC0415
    from hvla_platform.defs.partitions import raw_partition_key, register_raw_partitions  # noqa: PLC0415
    from hvla_platform.cli.outcome import run_and_report  # noqa: PLC0415

    lake = open_env_lake()
    folder = Path(args.folder)
    if not folder.is_dir():
        raise FileNotFoundError(2, "no such folder", str(folder))
    echo(f"landing recordings from {folder} into {lake.uri('landing')}")
    items = land_recordings(lake, folder)
    inst = instance()
    parts = _partitions(items, *IN_LANDING, "conflict")
    register_raw_partitions(inst, parts)
    if record_refusals(inst, lake, items):
        echo("refused recordings are recorded on raw_mcap in Dagster (asset observations) with their evidence")
    run_codes = []
    if args.materialize:
        defs = load_defs()
        for day, robot in _partitions(items, *IN_LANDING):
            echo(f"materializing raw_mcap + episodes_hdf5 for {day}|{robot}")
            o, code = run_and_report("ingest", defs, inst, "ingest_job",
                                     raw_partition_key(day, robot))
            run_codes.append(code)
    rows = summary_rows(lake, items)
    print_summary(rows)
    failed = [c for c in run_codes if c != EXIT_OK]
    if failed:
        return failed[0]
    refused = [r for r in rows if r["status"] in REFUSED_STATUSES]
    if refused:
        print(f"hvla ingest: {len(refused)} of {len(rows)} recording(s) did not make it "
              f"({', '.join(sorted({r['status'] for r in refused}))}); see the table above", file=sys.stderr, flush=True)
        return EXIT_PARTIAL
    return EXIT_OK


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``ingest`` to the ``hvla`` command."""
    i = sub.add_parser("ingest", help="land a folder of recordings into the landing area")
    i.add_argument("folder")
    i.add_argument("--materialize", action="store_true", help="also run raw_mcap + episodes_hdf5 for their partitions")
    i.set_defaults(func=cmd_ingest)
