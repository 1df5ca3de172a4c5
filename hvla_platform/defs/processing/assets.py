"""Processing stage: raw recording (any bag layout, any robot profile) → synchronised HDF5 episodes at a fixed fps, with episode QA, per capture day × robot."""

import shutil
from pathlib import Path

import dagster as dg

from hvla_platform.defs.metadata import (QA_RUN_TAG, ReviewUrl, check_specs, episode_check, failed_with_error,
                                         first_finding_s, fmt_value, md_mapping, md_table, review_link,
                                         rights_metadata, tag_run)
from hvla_platform.defs.partitions import day_robot, raw_partitions
from hvla_platform.defs.resources import LakeResource, MlflowResource
from hvla_platform.defs.stages import INGEST
from hvla_platform.lib.formats.recording.profile import load_profile
from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform.lib.processing.build import PROCESSING_CHECKS, convert_partition
from hvla_platform.lib.processing.qa.metrics import ALL_QA_CHECKS
from hvla_platform.lib.processing.qa.thresholds import QAThresholds
from hvla_platform.lib.core.scratch import scratch_dir
from hvla_platform.lib.core.tracking import find_finished_run
from hvla_platform.lib.processing.qa.tracking import FINGERPRINT_TAG, log_partition_qa
from hvla_platform.lib.processing.qa.thresholds import DEFAULT_MIN_QUALITY
from hvla_platform.lib.processing.qa.decisions import DecisionError, decision_history
from hvla_platform.lib.processing.qa.score import GATES
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.web.links import episode_review_url, lake_file_url, mlflow_run_url

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


#: Checks whose failure makes an episode unusable as recorded: the QA gates (score 0, left out of
#: releases unless a supervisor approves; lib/processing/qa/score.py ``GATES``) and the conversion
#: checks (the episode is not converted). Failed, they are ERROR checks unless blocking
#: (:func:`~hvla_platform.defs.metadata.episode_check`); the other QA checks are WARN.
GATING_CHECKS = frozenset(PROCESSING_CHECKS) | frozenset(GATES)
#: Longest detail of one failed check in the QA summary, characters.
_DETAIL_CHARS = 60


def _latest_decisions(lake: Lake, episode_ids: list[str]) -> tuple[dict[str, dict], str]:
    """The latest supervisor decision of each of ``episode_ids`` that has one (its own decision
    history only: not the whole lake's), and ``""``; or ``{}`` and the one-line error when a stored
    decision is unreadable."""
    out = {}
    try:
        for ep in episode_ids:
            hist = decision_history(lake, ep)
            if hist:
                out[ep] = max(hist, key=lambda r: r["at"])
    except DecisionError as exc:
        return {}, str(exc).splitlines()[0]
    return out, ""


def _failed_checks_text(checks: dict[str, dict]) -> str:
    """``**gate**: detail; score_only: detail`` for the failed checks, gates first (bold)."""
    failed = sorted((n for n, c in checks.items() if not c.get("passed", False)),
                    key=lambda n: (n not in GATING_CHECKS, n))
    parts = []
    for n in failed:
        detail = " ".join(str(checks[n].get("detail", "")).split())
        detail = detail if len(detail) <= _DETAIL_CHARS else detail[:_DETAIL_CHARS - 1] + "…"
        parts.append(f"**{n}**: {detail}" if n in GATING_CHECKS else f"{n}: {detail}")
    return "; ".join(parts)


def qa_summary(episodes: list, skipped: list[dict], decisions: dict[str, dict],
               decisions_error: str = "", review_url: ReviewUrl | None = None) -> tuple[str, list[str]]:
    """The partition's QA at a glance: ``(markdown, ids of the episodes this asset judged that failed
    gates or were not converted)``.

    ``episodes``: the partition's ``EpisodeConversion`` list (lib/processing/build.py);
    ``skipped``: ``{"episode_id", "reasons"}`` of episodes quarantined at ingest or withdrawn;
    ``decisions``: episode → latest supervisor decision record. One table row per episode: episode
    id, quality score (2 decimals; ``–`` when not scored), decision — ``not converted``,
    ``failed gates``, ``passed gates`` (``, score < 0.6`` when below the default release threshold
    :data:`DEFAULT_MIN_QUALITY`), with the supervisor's latest ``approved``/``rejected`` (and who)
    in front when there is one — and the failed checks with a short detail, gates in bold; with
    ``review_url``, a last column links each converted episode's review page at its earliest
    finding. Rows that failed come first; a headline above the table counts each decision.
    """
    rows, bad = [], []
    for e in episodes:
        if e.status != "converted":
            outcome, failed = "not converted", e.reason
        else:
            checks = {**e.checks, **e.qa_checks}
            gated = any(not c.get("passed", False) for n, c in checks.items() if n in GATING_CHECKS)
            outcome = "failed gates" if gated else "passed gates"
            if not gated and (e.quality_score or 0.0) < DEFAULT_MIN_QUALITY:
                outcome += f", score < {DEFAULT_MIN_QUALITY:g}"
            failed = _failed_checks_text(checks)
        if outcome in ("not converted", "failed gates"):
            bad.append(e.episode_id)
        link = ("–" if e.status != "converted" or review_url is None
                else review_link(review_url, e.episode_id, first_finding_s({**e.checks, **e.qa_checks}.values())))
        rows.append([e.episode_id, e.quality_score, outcome, failed, link])
    for s in skipped:
        rows.append([s["episode_id"], None, "not converted", "; ".join(s.get("reasons") or []), "–"])
    rank = {"not converted": 0, "failed gates": 1}
    rows.sort(key=lambda r: (rank.get(r[2], 2), r[0]))
    counts: dict[str, int] = {}
    verbs = {"approve": "approved", "reject": "rejected"}
    supervisor = {v: 0 for v in verbs.values()}
    for r in rows:
        counts[r[2]] = counts.get(r[2], 0) + 1
        d = decisions.get(r[0])
        if d:
            supervisor[verbs[d["decision"]]] += 1
            r[2] = f"**{verbs[d['decision']]}** by {d['by']} ({r[2]})"
        r[1] = "–" if r[1] is None else f"{r[1]:.2f}"
    head = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    if any(supervisor.values()):
        head += "; supervisor: " + ", ".join(f"{n} {v}" for v, n in supervisor.items())
    lines = [f"**{len(rows)} episode(s): {head or 'none'}**", ""]
    if decisions_error:
        lines += [f"Supervisor decisions could not be read: {decisions_error}", ""]
    header = ["episode", "score", "decision", "failed checks (gates in bold)", "review"]
    if review_url is None:
        header, rows = header[:-1], [r[:-1] for r in rows]
    lines.append(md_table(header, rows, max_chars=1000))
    return "\n".join(lines), bad


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
    pool=INGEST,
    description="Per-episode HDF5: state, action, locomotion command (robots that walk), extras and camera frames (kept compressed) synchronised at the robot profile's fps, with episode QA.",
    check_specs=check_specs("episodes_hdf5", PROCESSING_CHECK_SPECS + QA_CHECK_SPECS, raw_partitions),
    metadata={"hvla/layer": "processed", "hvla/canonical": "derived, rebuildable"},
)
def episodes_hdf5(context: dg.AssetExecutionContext, config: EpisodesConfig, lake: LakeResource,
                  mlflow: MlflowResource) -> dg.MaterializeResult:
    """Convert the partition's convertible raw episodes, QA every episode (report in the artifact,
    metrics in MLflow); conversion failures are quarantined with the reason.

    What the UI shows: ``hvla/qa_summary`` (:func:`qa_summary`: one row per episode with score,
    decision and failed checks); a failed gate or conversion check is an ERROR check result (the
    partition is not green), a failed score-only or report-only check a WARN; the run is tagged
    ``hvla/qa=failed`` when a check failed with ERROR, else ``hvla/qa=passed``."""
    day, robot = day_robot(context)

    def review(episode_id: str, t_s: float | None) -> str:
        return episode_review_url(day, robot, episode_id, t_s)
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
                      usable=len(converted), description=desc, gate=name in GATING_CHECKS and not blocking,
                      review_url=review)
        for name, desc, blocking in PROCESSING_CHECK_SPECS
    ]
    qa_eps = [e for e in res.episodes if e.qa_checks]
    for name, desc, blocking in QA_CHECK_SPECS[:-1]:
        checks.append(episode_check("episodes_hdf5", name, {e.episode_id: e.qa_checks[name] for e in qa_eps if name in e.qa_checks},
                                    usable=len(converted), description=desc,
                                    gate=name in GATING_CHECKS and not blocking, review_url=review))
    checks.append(episode_check(
        "episodes_hdf5", "quality_score",
        {e.episode_id: {"passed": (e.quality_score or 0.0) >= DEFAULT_MIN_QUALITY,
                        "detail": f"score {fmt_value(e.quality_score, 2)} ({fmt_value(e.quality_components, 2)})"}
         for e in res.episodes},
        usable=len(converted), description=QA_CHECK_SPECS[-1][1]))
    decisions, decisions_error = _latest_decisions(lk, [e.episode_id for e in res.episodes])
    if decisions_error:
        context.log.warning(f"QA summary without supervisor decisions: {decisions_error}")
    summary, bad = qa_summary(res.episodes, res.skipped, decisions, decisions_error, review_url=review)
    qa_failed = failed_with_error(checks)
    tag_run(context, {QA_RUN_TAG: "failed" if qa_failed else "passed"})
    if qa_failed:
        context.log.warning(f"QA failed for {len(bad)} episode(s) of {day}|{robot}: {', '.join(bad)} "
                            f"(run tagged {QA_RUN_TAG}=failed)")
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
            "hvla/qa_summary": dg.MetadataValue.md(summary),
            "hvla/quality_scores": md_mapping({e.episode_id: "–" if e.quality_score is None else f"{e.quality_score:.2f}"
                                               for e in res.episodes}, "episode", "quality score"),
            "hvla/qa_report": dg.MetadataValue.url(lake_file_url(f"{res.manifest_prefix}/qa_report.html")),
            "hvla/qa_mlflow_run_id": run_id,
            **({"hvla/qa_mlflow_run": dg.MetadataValue.url(mlflow_run_url(run_id))} if run_id not in ("", "(not logged)") else {}),
            "hvla/not_converted": md_mapping(
                {e.episode_id: e.reason for e in res.episodes if e.status != "converted"}
                | {s["episode_id"]: "; ".join(s["reasons"]) for s in res.skipped}, "episode", "why not converted"),
            "hvla/fingerprint": res.manifest.fingerprint,
            "hvla/episodes_converted_now": len(res.attempted),  # the others were carried over (incremental)
            "hvla/episodes_reused": len(res.reused),
            "status": res.status,
            **rights_metadata(res.rights),
        },
        check_results=checks,
    )
