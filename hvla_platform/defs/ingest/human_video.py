"""Ingest of action-free human video: landed clips → the write-once raw layer, per capture day ×
device, with the raw checks and the video QA (seed 004) as asset checks (docs/human_video.md)."""

import hashlib

import dagster as dg

from hvla_platform.defs.metadata import check_specs, episode_check, md_mapping, rights_metadata
from hvla_platform.defs.partitions import split_raw_partition_key
from hvla_platform.defs.resources import LakeResource
from hvla_platform.defs.stages import INGEST, STAGE_TAG
from hvla_platform.lib.core.keys import HUMAN_VIDEO_LANDING, human_video_quarantine_prefix, human_video_raw_prefix
from hvla_platform.lib.core.rights import Rights, combine_rights
from hvla_platform.lib.core.scratch import scratch_dir
from hvla_platform.lib.ingest.human_video import ingest_clip_partition, list_clip_partitions
from hvla_platform.lib.processing.qa.video_qa import VIDEO_GATES, clip_qa

#: capture day × device id, keyed ``day|device`` like raw_mcap's ``day|robot``.
HUMAN_VIDEO_PARTITIONS_NAME = "capture_day_device"
human_video_partitions = dg.DynamicPartitionsDefinition(name=HUMAN_VIDEO_PARTITIONS_NAME)

RAW_CLIP_CHECKS = [
    ("clip_rights", "metadata.yaml keeps the clip contract (strict keys), contains_human_video is true, the "
                    "demonstrator's consent is among the consent refs, the rights block is valid and the ids match "
                    "where the clip landed.", True),
    ("clip_readable", "Every frame of the MP4 decodes (PyAV) with a presentation timestamp.", True),
]
VIDEO_QA_CHECKS = [
    ("clip_length", "Clip duration within bounds (video QA gate).", False),
    ("temporal_continuity", "Frame timestamps increase without gaps > 1.8 × the median interval or > 0.5 s (gate).", False),
    ("video_cuts", "No shot boundary: consecutive hue-saturation histograms stay close (gate).", False),
    ("video_frozen", "No run of repeated frames ≥ 0.5 s (gate).", False),
    ("bucket_motion", "The learning role fits the camera motion: a manipulation clip has a still view, a locomotion "
                      "clip a moving one (gate).", False),
    ("video_blur", "At most 2 % of frames blurred (variance of the Laplacian < 0.35 × the clip median; score).", False),
    ("video_shake", "At most 2 % of frame pairs with camera jitter > 3 % of the width (score).", False),
]


@dg.asset(
    name="raw_human_video",
    partitions_def=human_video_partitions,
    group_name="ingest",
    owners=["team:data-collection"],
    kinds={"mp4", "video"},
    pool=INGEST,
    description="Action-free egocentric human video clips (MP4 + metadata.yaml) of one capture day × device, "
                "published write-once, with the video QA of seed 004.",
    check_specs=check_specs("raw_human_video", RAW_CLIP_CHECKS + VIDEO_QA_CHECKS, human_video_partitions),
    metadata={"hvla/layer": "raw", "hvla/canonical": "source of truth"},
)
def raw_human_video(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Publish every clip landed for the partition (quarantining what fails, with the reason) and
    run the video QA on the published ones; the QA results are written next to the partition index
    (``raw-human-video/<day>/<device>/_video_qa.json``)."""
    day, device = split_raw_partition_key(context.partition_key)
    lk = lake.get_lake()
    result = ingest_clip_partition(lk, day, device)
    usable = [c for c in result.clips if c.usable]
    for c in result.clips:
        if not c.usable:
            context.log.warning(f"{c.clip_id} quarantined ({lk.uri(human_video_quarantine_prefix(day, device, c.clip_id))}): "
                                + "; ".join(c.reasons))
    qa = {}
    with scratch_dir("hvla-video-qa", lk.scratch_root()) as tmp:
        for c in usable:
            local = lk.get_file(c.video_key, tmp / c.clip_id / "clip.mp4")
            qa[c.clip_id] = clip_qa(local, str(c.learning_role)).to_dict()
    lk.write_json(f"{human_video_raw_prefix(day, device)}/_video_qa.json", qa)
    checks = [episode_check("raw_human_video", name, {c.clip_id: c.checks[name.removeprefix("clip_")]
                                                     for c in result.clips},
                            usable=len(usable), description=desc) for name, desc, _ in RAW_CLIP_CHECKS]
    checks += [episode_check("raw_human_video", name, {cid: q["checks"][name] for cid, q in qa.items()},
                             usable=len(usable), description=desc, gate=name in VIDEO_GATES)
               for name, desc, _ in VIDEO_QA_CHECKS]
    rights = combine_rights(Rights.from_dict(c.rights) for c in usable if c.rights) if usable else None
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": lk.uri(human_video_raw_prefix(day, device)),
            "dagster/row_count": len(result.clips),
            "hvla/num_clips": len(usable),
            "hvla/num_quarantined": len(result.clips) - len(usable),
            "hvla/quarantined": md_mapping({c.clip_id: "; ".join(c.reasons) for c in result.clips if not c.usable},
                                           "clip", "why quarantined"),
            "hvla/learning_roles": md_mapping({c.clip_id: str(c.learning_role) for c in usable}, "clip", "bucket"),
            "hvla/quality_scores": md_mapping({cid: q["quality_score"] for cid, q in qa.items()}, "clip", "video QA score"),
            "hvla/total_duration_s": round(sum((c.probe or {}).get("duration_s", 0.0) for c in usable), 3),
            **rights_metadata(rights),
        },
        check_results=checks,
    )


human_video_ingest_job = dg.define_asset_job(
    "human_video_ingest_job",
    selection=dg.AssetSelection.assets("raw_human_video"),
    description="Publish one capture day × device of landed human video clips, with the video QA checks.",
    run_tags={STAGE_TAG: INGEST},
)


@dg.sensor(
    name="human_video_landing_sensor",
    job=human_video_ingest_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers the capture-day × device partitions of landed human video clips and requests "
                "human_video_ingest_job once per landed content of a partition.",
)
def human_video_landing_sensor(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
    """One tick: every partition with completely landed clips; a run per partition whose landed keys
    changed (the run key is their digest, so the same content is requested once)."""
    lk = lake.get_lake()
    keys = [f"{d}|{r}" for d, r in list_clip_partitions(lk)]
    new = sorted(set(keys) - set(context.instance.get_dynamic_partitions(HUMAN_VIDEO_PARTITIONS_NAME)))
    requests = []
    for key in keys:
        day, device = split_raw_partition_key(key)
        landed = sorted(lk.list_keys(f"{HUMAN_VIDEO_LANDING}/{day}/{device}"))
        digest = hashlib.sha256("\n".join(landed).encode()).hexdigest()[:16]
        requests.append(dg.RunRequest(run_key=f"human-video:{key}:{digest}", partition_key=key,
                                      tags={"hvla/trigger": "human_video_landing_sensor"}))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(HUMAN_VIDEO_PARTITIONS_NAME, new)] if new else [],
        skip_reason=None if requests else "no landed human video clips",
    )
