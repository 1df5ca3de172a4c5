"""Consent-withdrawal flags on the Dagster asset partitions (docs/rights.md, issue 13 §3).

A withdrawal (``hvla rights revoke``) flags lake artifacts ``do_not_use`` / ``retrain_required``
(``flags/<artifact>.json``). So that a flagged release, norm stats, cache, export, checkpoint or eval
report does not stay a plain green "Materialized" in the UI, two of Dagster's own features carry the
flag onto the asset partition (:mod:`hvla_platform.lib.ops.flag_targets` maps artifacts to
partitions):

* an ``AssetObservation`` on the partition, with the flag, reason, consent, withdrawn episodes and
  revocation record as metadata (reported runless, ``DagsterInstance.report_runless_asset_event``);
* the asset check ``rights_standing`` (:func:`rights_check_specs`, added to each flaggable asset):
  FAILS with severity ERROR while the partition's artifact is flagged, passes otherwise. It is
  evaluated when the revocation happens (a runless ``AssetCheckEvaluation`` per flagged partition,
  :func:`report_revocation`) and on every materialization (:func:`rights_check_result`, returned by
  the asset with its other check results).

Raw partitions that lost episodes get an observation too (``hvla/episode_ids`` = the episodes left,
``hvla/withdrawn_episode_ids`` = the withdrawn ones), since their last materialization still lists
them; so does the HDF5 partition of the same ``<day>|<robot>``.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.withdrawals import artifact_flags, flag_summary
from hvla_platform.lib.ops.flag_targets import FlagTarget, flag_targets, withdrawn_partitions
from hvla_platform.lib.web.links import lake_file_url

RIGHTS_CHECK = "rights_standing"
RIGHTS_CHECK_DESCRIPTION = ("Fails (ERROR) while a consent withdrawal flags this partition's artifact do_not_use or "
                            "retrain_required (hvla rights revoke); the metadata names the consent, reason and "
                            "revocation record. Passes when no flag exists.")


def rights_check_specs(asset: str, partitions_def: dg.PartitionsDefinition | None) -> list[dg.AssetCheckSpec]:
    """The ``rights_standing`` check of ``asset`` (non-blocking: a flag is news about data already
    built, it must not stop the run that materializes the next version)."""
    return [dg.AssetCheckSpec(RIGHTS_CHECK, asset=asset, description=RIGHTS_CHECK_DESCRIPTION, blocking=False,
                              partitions_def=partitions_def)]


def flag_metadata(artifact: str, flag: dict[str, Any], lake: Lake | None = None) -> dict[str, Any]:
    """``hvla/`` metadata of a flag: status, consent, reason, by, at, revocation record (key and,
    with ``lake``, its http link on the lake web service: ``hvla/revocation_record``), withdrawn
    episode ids, the flagged artifact."""
    md: dict[str, Any] = {
        "hvla/rights_flag": str(flag.get("status")), "hvla/consent": str(flag.get("consent")),
        "hvla/reason": str(flag.get("reason")), "hvla/flagged_by": str(flag.get("by")),
        "hvla/flagged_at": str(flag.get("at")), "hvla/revocation": str(flag.get("revocation")),
        "hvla/withdrawn_episode_ids": ", ".join(flag.get("episode_ids") or []) or "(none listed)",
        "hvla/flagged_artifact": artifact,
    }
    if lake is not None and flag.get("revocation"):
        md["hvla/revocation_record"] = dg.MetadataValue.url(lake_file_url(str(flag["revocation"])))
    return md


def rights_check_result(lake: Lake, asset: str, artifact: str) -> dg.AssetCheckResult:
    """The ``rights_standing`` result for the artifact an asset just materialized (lake prefix):
    failed (ERROR) with :func:`flag_metadata` when it is flagged, passed otherwise."""
    flag = artifact_flags(lake, artifact)
    if flag is None:
        return dg.AssetCheckResult(check_name=RIGHTS_CHECK, asset_key=asset, passed=True,
                                   metadata={"hvla/flagged_artifact": artifact, "hvla/rights_flag": "(none)"})
    return dg.AssetCheckResult(check_name=RIGHTS_CHECK, asset_key=asset, passed=False,
                               severity=dg.AssetCheckSeverity.ERROR, description=f"{artifact}: {flag_summary(flag)}",
                               metadata=flag_metadata(artifact, flag, lake))


def _flag_events(lake: Lake, t: FlagTarget) -> list[dg.AssetObservation | dg.AssetCheckEvaluation]:
    md = flag_metadata(t.artifact, t.flag, lake)
    text = f"{t.artifact}: {flag_summary(t.flag)}"
    return [dg.AssetObservation(asset_key=t.asset, partition=t.partition, description=text, metadata=md),
            dg.AssetCheckEvaluation(asset_key=dg.AssetKey(t.asset), check_name=RIGHTS_CHECK, passed=False,
                                    severity=dg.AssetCheckSeverity.ERROR, partition=t.partition, description=text,
                                    metadata=md)]


def revocation_events(lake: Lake, artifacts: list[str] | None = None,
                      episodes: list[str] | None = None) -> list[dg.AssetObservation | dg.AssetCheckEvaluation]:
    """The events :func:`report_revocation` reports, without reporting them.

    Args:
        lake: the lake holding the flags and revocation records.
        artifacts: the flagged artifacts to report (``RevocationResult.flagged``); ``None``: every flag.
        episodes: withdrawn episodes whose raw / HDF5 partitions get an observation; ``None``: all.
    """
    events: list[dg.AssetObservation | dg.AssetCheckEvaluation] = []
    for t in flag_targets(lake, artifacts):
        events += _flag_events(lake, t)
    for p in withdrawn_partitions(lake, episodes):
        recs = list(p.withdrawn.values())
        why = "; ".join(sorted({f"consent {r['consent']}: {r['reason']} (record {r['revocation']})" for r in recs}))
        md = {"hvla/episode_ids": ", ".join(p.remaining) or "(none left)",
              "hvla/withdrawn_episode_ids": ", ".join(sorted(p.withdrawn)),
              "hvla/revocation": ", ".join(sorted({str(r["revocation"]) for r in recs})), "hvla/reason": why}
        events.append(dg.AssetObservation(
            asset_key="raw_mcap", partition=p.partition, metadata=md,
            description=f"{len(p.withdrawn)} episode(s) withdrawn ({why}); left: {md['hvla/episode_ids']}"))
        events.append(dg.AssetObservation(
            asset_key="episodes_hdf5", partition=p.partition, metadata={**md, "hvla/hdf5": (
                "rebuilt without the withdrawn episodes" if p.hdf5_present and p.remaining
                else "removed: every episode withdrawn" if not p.hdf5_present else "present")},
            description=f"{len(p.withdrawn)} episode(s) withdrawn ({why})"))
    return events


def report_revocation(instance: dg.DagsterInstance, lake: Lake, artifacts: list[str] | None = None,
                      episodes: list[str] | None = None) -> list[dg.AssetObservation | dg.AssetCheckEvaluation]:
    """Record a withdrawal's flags on the asset partitions in ``instance``'s event log (runless
    events: the UI shows them on the partitions, the failed ``rights_standing`` check turns them red).

    Args and return: as :func:`revocation_events` (the events reported).
    """
    events = revocation_events(lake, artifacts, episodes)
    for ev in events:
        instance.report_runless_asset_event(ev)
    return events
