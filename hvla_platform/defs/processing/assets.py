"""Processing stage: raw recording (any bag layout, any robot profile) → synchronised HDF5 episodes at a fixed fps, with episode QA, per capture day × robot."""

import shutil
from pathlib import Path

import dagster as dg

from hvla_platform.defs.metadata import check_specs, episode_check, rights_metadata
from hvla_platform.defs.partitions import day_robot, raw_partitions
from hvla_platform.defs.resources import LakeResource, MlflowResource
from hvla_platform.lib.formats.recording.profile import load_profile
from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform.lib.processing.build import PROCESSING_CHECKS, convert_partition
from hvla_platform.lib.processing.qa.metrics import ALL_QA_CHECKS
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform.lib.core.scratch import scratch_dir
from hvla_platform.lib.core.tracking import find_finished_run
from hvla_platform.lib.processing.qa.tracking import FINGERPRINT_TAG, log_partition_qa
from hvla_platform.lib.processing.qa.thresholds import DEFAULT_MIN_QUALITY

PROCESSING_CHECK_SPECS = [
    ("camera_coverage", "Per camera, at least `min_camera_coverage` of the frames have an image within "
                        "`max_camera_skew_s` of the frame time.", False),
    ("alignment_skew", "The largest |image stamp − frame time| over covered frames is within "
                       "`max_camera_skew_s`.", False),
    ("no_nan", "State, velocity, action and locomotion command contain no NaN/Inf.", True),
]
assert tuple(n for n, _, _ in PROCESSING_CHECK_SPECS) == PROCESSING_CHECKS

QA_CHECK_DESCRIPTIONS = {
    "dropped_messages": "No stream loses more than `max_dropped_fraction` of its messages (gaps > `gap_factor` × nominal period).",
    "clock_jumps": "No inter-message interval is negative or longer than `clock_jump_s`.",
    "duration": "Episode duration within [`min_duration_s`, `max_duration_s`].",
    "camera_frame_count": "Each camera delivered at least `min_camera_frame_ratio` of duration × nominal rate frames.",
    "camera_offset": "Per camera, raw stamp offset vs the joint states (median log − stamp delays) within ±`max_camera_offset_s`.",
    "nan_inf": "No NaN/Inf in raw joint states, commands or the synchronised streams.",
    "joint_limits": "Measured joint positions stay within the limits of the robot's own model (the description file its robot profile names).",
    "joint_limit_proximity": "Report only: joints within `max_joint_limit_fraction` of their range of a model limit.",
    "joint_velocity": "No measured joint faster than its velocity limit (the description file's URDF `<limit velocity>`, "
                      "else `max_joint_speed_rad_s`; positions differentiated over their stamps and the velocity field).",
    "state_spikes": "No measured joint sample further than `spike_k`·σ and `spike_min_rad` from its running median (Hampel).",
    "action_spikes": "No commanded step larger than `spike_k`·σ (robust) and `spike_min_rad`.",
    "command_chatter": "No `chatter_reversals` consecutive back-and-forth command steps ≥ `chatter_step_rad`, and no "
                       "`toggle_count` swings of ≥ `toggle_swing_fraction` of a joint's range within `toggle_window_s` "
                       "(an open/close gripper command bouncing).",
    "command_stall": "No arm command held ≥ `frozen_s` while that arm's measured joints move > `stall_motion_rad`.",
    "frozen_joints": "No joint (nor the whole state) reports bit-identical values for `frozen_s` or longer.",
    "smoothness": "RMS jerk of the commanded arm path ≤ `max_rms_jerk` (LDLJ reported).",
    "action_state_divergence": "Per action joint, p95 |commanded target − measured position| ≤ `max_tracking_error_rad`.",
    "camera_black": "At most `max_bad_frame_fraction` black frames per camera.",
    "camera_saturated": "At most `max_bad_frame_fraction` saturated frames per camera.",
    "camera_frozen": "At most `max_bad_frame_fraction` frozen (identical consecutive) frames per camera.",
    "camera_undecodable": "Every camera frame decodes.",
    "camera_exposure_shift": "Score only: at most `max_bad_frame_fraction` frames per colour camera whose mean level departs from the camera's episode median by > `max_exposure_shift_levels`, or lies past a step > `exposure_step_levels` (black/saturated frames excluded).",
    "camera_blur": "Score only: at most `max_bad_frame_fraction` frames per colour camera whose sharpness (variance of the Laplacian) is below `min_sharpness_ratio` × the camera's episode median.",
    "task_non_empty": "The task instruction is a real one: not empty, not a placeholder (TODO, TBD, n/a, test, "
                      "<task>, ...) and with at least one letter.",
    "recording_complete": "The MCAP covers at least `min_recorded_fraction` of the duration its metadata.yaml states.",
    "duplicate": "No other episode in the lake has the same raw sha256 or signal fingerprint (fails on the later copy).",
}
QA_CHECK_SPECS = [(n, QA_CHECK_DESCRIPTIONS[n], False) for n in ALL_QA_CHECKS] + [
    ("quality_score", f"Every episode's quality score is ≥ the default release threshold {DEFAULT_MIN_QUALITY} "
                      "(lower-scoring episodes are left out of releases unless approved).", False)]


class EpisodesConfig(dg.Config):
    """Synchronisation settings (``hvla_platform.lib.processing.sync``) and QA thresholds
    (``hvla_platform.lib.processing.qa.thresholds.QAThresholds``; defaults in docs/qa.md)."""

    fps: float | None = None  # None: each episode's robot profile's fps (the G1's 20, the H1's 30)
    max_camera_skew_s: float = 0.05
    min_camera_coverage: float = 0.95
    qa_overrides: dict[str, float] = {}
    log_to_mlflow: bool = True


def _fps_metadata(cfg: SyncConfig, converted: list) -> float | str:
    """The frame rate the partition's episodes were converted at: the configured fps, or (None) each
    robot profile's, e.g. ``"unitree_h1_3cam@1: 30"``."""
    if cfg.fps is not None:
        return float(cfg.fps)
    profiles = sorted({e.profile for e in converted if e.profile})
    return ", ".join(f"{p}: {cfg.fps_for(load_profile(p)):g}" for p in profiles) or "(no episode converted)"


@dg.asset(
    partitions_def=raw_partitions,
    deps=["raw_mcap"],
    group_name="processing",
    owners=["team:data-platform"],
    kinds={"hdf5"},
    description="Per-episode HDF5: state, action, locomotion command (robots that walk), extras and camera frames (kept compressed) synchronised at the robot profile's fps, with episode QA.",
    check_specs=check_specs("episodes_hdf5", PROCESSING_CHECK_SPECS + QA_CHECK_SPECS, raw_partitions),
    metadata={"hvla/layer": "processed", "hvla/canonical": "derived, rebuildable"},
)
def episodes_hdf5(context: dg.AssetExecutionContext, config: EpisodesConfig, lake: LakeResource,
                  mlflow: MlflowResource) -> dg.MaterializeResult:
    """Convert the partition's convertible raw episodes, QA every episode (report in the artifact,
    metrics in MLflow); conversion failures are quarantined with the reason."""
    day, robot = day_robot(context)
    lk = lake.get_lake()
    cfg = SyncConfig(fps=config.fps, max_camera_skew_s=config.max_camera_skew_s,
                     min_camera_coverage=config.min_camera_coverage)
    qa = QAThresholds(**config.qa_overrides)
    res = convert_partition(lk, day, robot, cfg, qa=qa, progress=context.log.info)
    converted = res.converted
    for e in res.episodes:
        if e.status != "converted":
            context.log.warning(f"{e.episode_id} not converted: {e.reason}")
    checks = [
        episode_check("episodes_hdf5", name, {e.episode_id: e.checks[name] for e in res.episodes},
                      usable=len(converted), description=desc)
        for name, desc, _ in PROCESSING_CHECK_SPECS
    ]
    qa_eps = [e for e in res.episodes if e.qa_checks]
    for name, desc, _ in QA_CHECK_SPECS[:-1]:
        checks.append(episode_check("episodes_hdf5", name, {e.episode_id: e.qa_checks[name] for e in qa_eps if name in e.qa_checks},
                                    usable=len(converted), description=desc))
    checks.append(episode_check(
        "episodes_hdf5", "quality_score",
        {e.episode_id: {"passed": (e.quality_score or 0.0) >= DEFAULT_MIN_QUALITY,
                        "detail": f"score {e.quality_score} ({e.quality_components})"} for e in res.episodes},
        usable=len(converted), description=QA_CHECK_SPECS[-1][1]))
    run_id = "(not logged)"
    if config.log_to_mlflow:
        # from the published artifact's manifest, cached or not: a run that died between publishing
        # and logging left no QA record, and the next one (which finds the artifact cached) logs it;
        # the fingerprint tag makes it idempotent
        run_id = find_finished_run(mlflow.uri(), "hvla-qa", {FINGERPRINT_TAG: res.manifest.fingerprint,
                                                              "hvla.partition": f"{day}|{robot}"}) or ""
        if not run_id:
            with lk.local_artifact(res.manifest_prefix) as d, scratch_dir("hvla-qa", lk.scratch_root()) as tmp:
                for name in ("qa_report.html", "qa_metrics.json"):
                    shutil.copy(Path(d) / name, tmp / name)
                if (Path(d) / "qa").is_dir():
                    shutil.copytree(Path(d) / "qa", tmp / "qa")
                run_id = log_partition_qa(mlflow.uri(), partition=f"{day}|{robot}",
                                          conversions=res.manifest.conversions, thresholds=qa.to_dict(),
                                          report_dir=tmp, artifact_dir=mlflow.artifacts(),
                                          fingerprint=res.manifest.fingerprint)
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": res.uri,
            "dagster/row_count": sum(e.num_frames for e in converted),
            "hvla/num_episodes": len(converted),
            "hvla/num_frames": sum(e.num_frames for e in converted),
            "hvla/fps": _fps_metadata(cfg, converted),
            "hvla/episode_ids": ", ".join(e.episode_id for e in converted),
            "hvla/quality_scores": dg.MetadataValue.json({e.episode_id: e.quality_score for e in res.episodes}),
            "hvla/qa_report": dg.MetadataValue.url(res.uri.rstrip("/") + "/qa_report.html"),
            "hvla/qa_mlflow_run_id": run_id,
            "hvla/not_converted": dg.MetadataValue.json(
                {e.episode_id: e.reason for e in res.episodes if e.status != "converted"}
                | {s["episode_id"]: s["reasons"] for s in res.skipped}) if (len(converted) < len(res.episodes) or res.skipped) else "(none)",
            "hvla/fingerprint": res.manifest.fingerprint,
            "hvla/episodes_converted_now": len(res.attempted),  # the others were carried over (incremental)
            "hvla/episodes_reused": len(res.reused),
            "status": res.status,
            **rights_metadata(res.rights),
        },
        check_results=checks,
    )
