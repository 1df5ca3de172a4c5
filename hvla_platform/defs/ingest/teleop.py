"""Ingest stage, seed-003 teleop episodes: landed episode folders → the write-once raw-teleop layer,
per capture day × robot (lib/ingest/teleop.py, docs/teleop.md).

``raw_teleop`` has its own dynamic partitions, ``teleop_capture_day_robot``, keyed ``day|robot``
like ``raw_mcap``'s (same key helpers): sharing ``capture_day_robot`` would show every robot-log
partition as a missing teleop partition and the other way round — the phantom partitions
defs/partitions.py dropped the cross product for. :func:`register_teleop_partitions` adds the
partitions the teleop landing area has.
"""

from typing import Iterable

import dagster as dg

from hvla_platform.defs.metadata import (INGEST_RUN_TAG, check_specs, episode_check, md_mapping, rights_metadata,
                                         tag_run)
from hvla_platform.defs.partitions import add_dynamic_partitions, day_robot, raw_partition_key
from hvla_platform.defs.resources import LakeResource
from hvla_platform.defs.stages import INGEST
from hvla_platform.lib.core.keys import raw_teleop_prefix, teleop_quarantine_prefix
from hvla_platform.lib.core.rights import Rights, combine_rights
from hvla_platform.lib.ingest.teleop import (FRAME_RATE_TOLERANCE, IMAGE_SHAPE, MAX_CAMERA_SKEW_S, TELEOP_CHECKS,
                                             ingest_teleop_partition)

TELEOP_PARTITIONS_NAME = "teleop_capture_day_robot"
teleop_partitions = dg.DynamicPartitionsDefinition(name=TELEOP_PARTITIONS_NAME)

#: (check name, description, blocking) of the raw teleop checks (lib/ingest/teleop.py).
RAW_TELEOP_CHECKS = [
    ("readable", "Every frame_NNNN.pkl loads with the restricted unpickler (numpy arrays and plain values only; "
                 "any other pickle global is refused and named) with exactly seed 003's keys, types and shapes; "
                 "episode_meta.json keeps its contract.", True),
    ("frames_complete", "Frames 0..N-1 without gaps or duplicates; episode_meta.json's num_frames, phase_counts "
                        "and phase_segments agree with them.", False),
    ("phases", "Phase labels are teleop/skill/correction/skill_resume, start with teleop and never go back in "
               "that order; a phase only after its predecessor.", False),
    ("monotonic", "Frame stamps and each camera's stamps strictly increase.", False),
    ("frame_rate", f"The median frame interval is within {FRAME_RATE_TOLERANCE:.0%} of 1/fps of episode_meta.json.",
     False),
    ("camera_skew", f"Every image stamp is within {MAX_CAMERA_SKEW_S * 1e3:.0f} ms of its frame's stamp.", False),
    ("image_shapes", f"Both cameras' images are {IMAGE_SHAPE} uint8 (seed 003's frame format).", False),
    ("gripper_range", "Every gripper_pos is a Robotiq position within 0..255.", False),
    ("rights", "metadata.yaml keeps its contract, declares format: seed003_pkl, has a valid rights block and "
               "names the ids the episode landed under.", True),
]
assert [c[0] for c in RAW_TELEOP_CHECKS] == list(TELEOP_CHECKS)


def register_teleop_partitions(instance: dg.DagsterInstance, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Add the ``day|robot`` teleop partitions of ``pairs`` the instance does not know yet
    (idempotent, e.g. from :func:`~hvla_platform.lib.ingest.teleop.list_teleop_landing_partitions`);
    returns the keys added, sorted."""
    return add_dynamic_partitions(instance, TELEOP_PARTITIONS_NAME, (raw_partition_key(d, r) for d, r in pairs))


@dg.asset(
    partitions_def=teleop_partitions,
    group_name="ingest",
    owners=["team:data-collection"],
    kinds={"pickle", "numpy"},
    pool=INGEST,
    description="Raw seed-003 teleop episodes (phase-labelled frame pickles) of one capture day × robot, "
                "checked and published write-once.",
    check_specs=check_specs("raw_teleop", RAW_TELEOP_CHECKS, teleop_partitions),
    metadata={"hvla/layer": "raw", "hvla/canonical": "source of truth", "hvla/format": "seed003_pkl"},
)
def raw_teleop(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Check and publish every teleop episode landed for the partition; quarantine what fails (with
    the reason). The run is tagged ``hvla/ingest=refused N`` or ``hvla/ingest=passed``."""
    day, robot = day_robot(context)
    lk = lake.get_lake()
    result = ingest_teleop_partition(lk, day, robot)
    usable = [e for e in result.episodes if e.usable]
    for e in result.episodes:
        if not e.usable:
            where = lk.uri(teleop_quarantine_prefix(day, robot, e.episode_id))
            context.log.warning(f"{e.episode_id} quarantined ({where}): " + "; ".join(e.reasons))
    rights = combine_rights(Rights.from_dict(e.rights) for e in usable if e.rights) if usable else None
    statuses = {s: sum(1 for e in result.episodes if e.status == s)
                for s in ("published", "cached", "quarantined", "conflict")}
    checks = [episode_check("raw_teleop", name, {e.episode_id: e.checks[name] for e in result.episodes},
                            usable=len(usable), description=desc)
              for name, desc, _ in RAW_TELEOP_CHECKS]
    refused = len(result.episodes) - len(usable)
    tag_run(context, {INGEST_RUN_TAG: f"refused {refused}" if refused else "passed"})
    phases: dict[str, int] = {}
    for e in usable:
        for p, n in e.info.get("phase_counts", {}).items():
            phases[p] = phases.get(p, 0) + n
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": lk.uri(raw_teleop_prefix(day, robot)),
            "dagster/row_count": len(result.episodes),
            "hvla/num_episodes": len(usable),
            "hvla/num_quarantined": refused,
            "hvla/quarantined": md_mapping({e.episode_id: "; ".join(e.reasons) for e in result.episodes
                                            if not e.usable}, "episode", "why quarantined"),
            "hvla/episode_ids": ", ".join(e.episode_id for e in usable),
            "hvla/num_frames": sum(e.info.get("num_frames", 0) for e in usable),
            "hvla/phase_frames": md_mapping(phases, "phase", "frames"),
            "hvla/operators": ", ".join(sorted({str(e.metadata.get("operator")) for e in usable})),
            "status": "cached" if statuses["cached"] == len(result.episodes) else "materialized",
            **{f"hvla/episodes_{k}": v for k, v in statuses.items()},
            **rights_metadata(rights),
        },
        check_results=checks,
    )
