"""Video-only LeRobot releases of human video, one partition per learning bucket (seed 004's
manipulation and locomotion LAMs each read one; docs/human_video.md)."""

import dagster as dg

from hvla_platform.defs.metadata import lineage_metadata, md_mapping, rights_metadata
from hvla_platform.defs.resources import LakeResource
from hvla_platform.defs.stages import RELEASE
from hvla_platform.lib.dataset.video_release import build_video_release, parse_video_release_spec
from hvla_platform.lib.formats.human_video import LEARNING_ROLES

bucket_partitions = dg.StaticPartitionsDefinition(list(LEARNING_ROLES))

RELEASE_CHECKS = [
    ("video_only", "The dataset has no action or state feature: images and the task only."),
    ("faces_blurred", "Every clip whose rights do not allow identifiable people went through face blurring."),
]


class HumanVideoReleaseConfig(dg.Config):
    """The release spec's fields (lib/dataset/video_release.py ``VideoReleaseSpec``); the bucket is
    the partition. ``name`` defaults to ``human-video-<bucket>``, ``repo_id`` to ``hvla/human-video-<bucket>``."""

    name: str = ""
    repo_id: str = ""
    fps: int = 10
    image_size: list[int] | None = None
    min_quality: float = 0.6


@dg.asset(
    name="human_video_release",
    partitions_def=bucket_partitions,
    deps=[dg.AssetDep("raw_human_video", partition_mapping=dg.AllPartitionMapping())],
    group_name="dataset",
    owners=["team:data-platform"],
    kinds={"lerobot", "video"},
    pool=RELEASE,
    description="Video-only LeRobot v3.0 release (images + task, no action) of one learning bucket of the human "
                "video clips, faces blurred where the rights require it.",
    check_specs=[dg.AssetCheckSpec(n, asset="human_video_release", description=d, partitions_def=bucket_partitions)
                 for n, d in RELEASE_CHECKS],
)
def human_video_release(context: dg.AssetExecutionContext, config: HumanVideoReleaseConfig,
                        lake: LakeResource) -> dg.MaterializeResult:
    """Build (or find cached) the bucket's release from every published clip of that bucket."""
    bucket = context.partition_key
    lk = lake.get_lake()
    spec = parse_video_release_spec({
        "name": config.name or f"human-video-{bucket}", "repo_id": config.repo_id or f"hvla/human-video-{bucket}",
        "bucket": bucket, "fps": config.fps, "min_quality": config.min_quality,
        **({"image_size": config.image_size} if config.image_size else {}),
    }, source="human_video_release config")
    pub = build_video_release(lk, spec, say=context.log.info)
    m = pub.manifest
    features = sorted(m.feature_schema["features"])
    required = [c for c in m.episode_ids if c not in m.face_blur.get("kept_clips", [])]
    unblurred = [c for c in required if c not in m.face_blur.get("blurred_clips", {})]
    checks = [
        dg.AssetCheckResult(check_name="video_only", passed=not m.has_action and "action" not in features
                            and "observation.state" not in features, metadata={"hvla/features": ", ".join(features)}),
        dg.AssetCheckResult(check_name="faces_blurred", passed=not unblurred,
                            severity=dg.AssetCheckSeverity.ERROR,
                            metadata={"hvla/detector": m.face_blur.get("detector", ""),
                                      "hvla/not_blurred": ", ".join(unblurred) or "(none)"}),
    ]
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": pub.uri, "status": pub.status, "hvla/bucket": bucket, "hvla/repo_id": spec.repo_id,
            "hvla/num_episodes": m.num_episodes, "dagster/row_count": m.num_frames,
            "hvla/excluded": md_mapping(m.excluded, "clip", "why left out"),
            "hvla/faces_blurred": md_mapping(m.face_blur.get("blurred_clips", {}), "clip", "face boxes blurred"),
            **rights_metadata(m.rights_obj), **lineage_metadata(lk, pub.prefix),
        },
        check_results=checks,
    )
