"""The episode quality score in [0, 1].

``score = completeness × camera_quality × signal_quality × tracking_quality`` where

* ``completeness = min over streams (1 − dropped fraction) × min(1, min over cameras of received /
  expected frames)`` — how much of what should have been recorded was;
* ``camera_quality = 1 − max over cameras of the fraction of black, saturated, frozen,
  undecodable, exposure-shifted or blurred frames``;
* ``signal_quality = 1 − fraction of frames touched by a non-finite value, a joint-limit
  violation, a joint faster than its velocity limit, a state or action spike, chatter, a stalled
  command or a frozen joint``;
* ``tracking_quality = clip(1 − median |target − position| / (2 × max_tracking_error_rad), 0, 1)``
  — 1 for perfect tracking, 0.5 at the divergence check's threshold;

and the score is 0 when a **gate** fails (:data:`GATES`). The components are the checklist items
of seed 002 ("Checklist before training": cameras have enough frames, timestamps monotonic, stable
dtypes, non-empty tasks) and seed 001's quality metrics (completeness, sensor validity,
demonstration quality), combined multiplicatively so that any one bad aspect pulls the score down.

Gate policy (docs/qa.md, "Gate policy"): a check is a **gate** when its failure means some of the
episode's data is *false* — an observation that is not what the robot saw or did (a frozen or
spiking sensor, a black/frozen/undecodable/mis-stamped camera, missing stretches of a stream, a clock
that jumps), a label that is not what was commanded (command spikes, chatter, a stalled command
stream, commands the robot did not follow), or an episode that should not be there at all (a
duplicate, a cut or too-short recording, no task, values outside the robot's model). A gated
episode scores 0 and a release leaves it out unless a supervisor approves it
(``select_episodes``). A check is **score-only** when it grades a usable episode (frame counts
within the gates; exposure shifts and blur, whose frames still show what the robot saw, worse) and **report-only** when it is information for the supervisor
(joint-limit proximity). Smoothness (RMS jerk, LDLJ) is reported, not scored.
"""

from __future__ import annotations

from typing import Any

from hvla_platform.lib.processing.qa.thresholds import QAThresholds

#: Checks whose failure sets the score to 0 and keeps the episode out of releases unless a
#: supervisor approves it.
GATES = ("nan_inf", "joint_limits", "joint_velocity", "clock_jumps", "duration", "task_non_empty",
         "dropped_messages", "camera_offset", "state_spikes", "action_spikes", "command_chatter",
         "command_stall", "frozen_joints", "action_state_divergence",
         "camera_black", "camera_saturated", "camera_frozen", "camera_undecodable",
         "recording_complete", "duplicate")

#: Checks whose failure only lowers the score (through its components).
SCORE_ONLY = ("camera_frame_count", "camera_exposure_shift", "camera_blur")

#: Checks that are reported for the supervisor and neither gate nor score.
REPORT_ONLY = ("smoothness", "joint_limit_proximity")


def quality_score(checks: dict[str, dict[str, Any]], metrics: dict[str, Any], th: QAThresholds) -> tuple[float, dict[str, float]]:
    """``(score, components)`` for one episode (see the module docstring for the formula)."""
    timing = metrics.get("timing", {})
    dropped = max((v["dropped_fraction"] for v in timing.values()), default=0.0)
    ratios = metrics.get("camera_frame_ratio", {})
    completeness = (1.0 - min(dropped, 1.0)) * min(1.0, min(ratios.values(), default=1.0))
    camera = 1.0 - min(1.0, max(metrics.get("camera_bad_fraction", {}).values(), default=0.0))
    signal = 1.0 - min(1.0, metrics.get("signal_bad_fraction", 0.0))
    med = metrics.get("tracking_error_median_rad", 0.0)
    tracking = min(1.0, max(0.0, 1.0 - med / (2 * th.max_tracking_error_rad)))
    comps = {"completeness": completeness, "camera_quality": camera, "signal_quality": signal,
             "tracking_quality": tracking}
    failed_gates = [g for g in GATES if g in checks and not checks[g]["passed"]]
    score = 0.0 if failed_gates else completeness * camera * signal * tracking
    comps["gates_failed"] = float(len(failed_gates))
    return round(float(score), 4), {k: round(float(v), 4) for k, v in comps.items()}
