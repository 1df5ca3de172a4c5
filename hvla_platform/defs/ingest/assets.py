"""Ingest stage: landed recordings → the write-once raw MCAP layer, per capture day × robot."""


import dagster as dg

from hvla_platform.defs.metadata import INGEST_RUN_TAG, check_specs, episode_check, md_mapping, md_table, rights_metadata, tag_run
from hvla_platform.defs.partitions import day_robot, raw_partitions
from hvla_platform.defs.resources import LakeResource
from hvla_platform.defs.stages import INGEST
from hvla_platform.lib.core.keys import quarantine_prefix, raw_prefix
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.ingest.refusals import list_refusals
from hvla_platform.lib.core.rights import Rights, combine_rights

RAW_CHECKS = [
    ("readable", "Every landed bag opens and all records read: MCAP strictly (CRC, compression, truncation; "
                 "files without a summary are read by scanning), rosbag2 sqlite3 and ROS 1 bags in full.", True),
    ("required_topics", "Every topic the recording's robot profile requires (joint states, commands, cameras, "
                        "task, locomotion when the robot has it) is present with its message type and is not empty.", True),
    ("monotonic", "Log times and header stamps never go backwards within a topic.", True),
    ("rights", "metadata.yaml carries a valid rights block (owner, license, consents, allowed uses, "
               "retention) and ids that match where the episode landed.", True),
]


@dg.asset(
    partitions_def=raw_partitions,
    group_name="ingest",
    owners=["team:data-collection"],
    kinds={"mcap", "ros2"},
    pool=INGEST,
    description="Raw robot logs (MCAP, ROS 2) of one capture day × robot, indexed and published write-once.",
    check_specs=check_specs("raw_mcap", RAW_CHECKS, raw_partitions),
    metadata={"hvla/layer": "raw", "hvla/canonical": "source of truth"},
)
def raw_mcap(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Index and publish every episode landed for the partition; quarantine what fails (with the reason).
    The run is tagged ``hvla/ingest=refused N`` (episodes quarantined plus uploads refused at landing
    for the partition) or ``hvla/ingest=passed``."""
    day, robot = day_robot(context)
    lk = lake.get_lake()
    result = ingest_partition(lk, day, robot)
    usable = [e for e in result.episodes if e.convertible]
    for e in result.episodes:
        if not e.convertible:
            context.log.warning(f"{e.episode_id} quarantined ({lk.uri(quarantine_prefix(day, robot, e.episode_id))}): "
                                + "; ".join(e.reasons))
    # uploads refused at landing that named this partition (rejected, changed re-uploads): one
    # observation each on the partition, naming the episode, the reason and the kept evidence
    refusals = list_refusals(lk, context.partition_key)
    for r in refusals:
        context.log.warning(f"upload of {r.episode_id or '?'} {r.status} at landing ({lk.uri(r.evidence)}): {r.reason}")
        context.log_event(dg.AssetObservation(
            asset_key="raw_mcap", partition=context.partition_key,
            description=f"Upload of {r.episode_id or '(no episode id)'} {r.status} at landing: {r.reason}",
            metadata={"hvla/landing_refusal": r.status, "hvla/episode_id": r.episode_id or "(none named)",
                      "hvla/reason": r.reason, "hvla/source": r.source, "hvla/evidence": lk.uri(r.evidence),
                      "hvla/refused_at": r.at}))
    rights = combine_rights(Rights.from_dict(e.rights) for e in usable) if usable else None
    statuses = {s: sum(1 for e in result.episodes if e.status == s) for s in ("published", "cached", "quarantined", "conflict")}
    checks = [
        episode_check("raw_mcap", name, {e.episode_id: e.checks[name] for e in result.episodes},
                      usable=len(usable), description=desc)
        for name, desc, _ in RAW_CHECKS
    ]
    refused = len(result.episodes) - len(usable) + len(refusals)
    tag_run(context, {INGEST_RUN_TAG: f"refused {refused}" if refused else "passed"})
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": lk.uri(raw_prefix(day, robot)),
            "dagster/row_count": len(result.episodes),
            "hvla/num_episodes": len(usable),
            "hvla/num_quarantined": len(result.episodes) - len(usable),
            "hvla/quarantined": md_mapping({e.episode_id: "; ".join(e.reasons) for e in result.episodes
                                            if not e.convertible}, "episode", "why quarantined"),
            "hvla/episode_ids": ", ".join(e.episode_id for e in usable),
            "hvla/total_bytes": sum((e.index or {}).get("size_bytes", 0) for e in usable),
            "hvla/total_duration_s": round(sum((e.index or {}).get("duration_s", 0.0) for e in usable), 3),
            "hvla/operators": ", ".join(sorted({str(e.metadata.get("operator")) for e in usable})),
            "status": "cached" if statuses["cached"] == len(result.episodes) else "materialized",
            **{f"hvla/episodes_{k}": v for k, v in statuses.items()},
            "hvla/landing_refusals": dg.MetadataValue.md(md_table(
                ["episode", "status", "reason", "evidence"],
                [[r.episode_id or "(none named)", r.status, r.reason, lk.uri(r.evidence)] for r in refusals]))
            if refusals else "(none)",
            **rights_metadata(rights),
        },
        check_results=checks,
    )
