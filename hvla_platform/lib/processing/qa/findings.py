"""Where in an episode its QA findings are: time spans on the episode timeline, and a reader for them.

**The timeline.** Every span is in seconds from the episode's first synchronised frame: frame *k* is
at ``k / fps`` s, the HDF5 file's ``timestamps`` and LeRobot's ``timestamp`` column (frame 0 at 0.0).
Frame 0 is the raw time ``start_time_ns`` (HDF5 attribute; :func:`~hvla_platform.lib.processing.sync.frame_times_ns`):
the **latest first header stamp** over the streams the synchroniser aligns (the joint states, the
action command streams, the locomotion command when there is one, and each camera's decodable
frames). A raw sample with header stamp ``s`` (ns, the recording's clock, as the QA checks read it)
is at ``(s − start_time_ns) / 1e9`` s, rounded to the millisecond and clipped to the timeline
``[0, (num_frames − 1) / fps]`` (a raw sample before frame 0 or after the last frame is shown at the
timeline's end it lies beyond).

**The span format** (a check record's ``"spans"``, next to ``"passed"`` / ``"detail"`` / ``"frames"``
in the partition manifest's ``conversions[i].qa_checks``): a JSON list of
``[start_s, end_s, subject]`` — ``start_s`` ≤ ``end_s`` floats (seconds on the timeline above; equal
for an instant such as a one-sample spike), ``subject`` the str the detail names: the **camera**
for ``camera_*``, the **joint** for ``state_spikes`` / ``action_spikes`` / ``frozen_joints`` /
``joint_limits`` / ``joint_velocity`` / ``command_chatter`` / ``command_stall`` (the measured joint
that moved while its arm's command was held), the **topic** for ``dropped_messages`` (the gap between
the last message before and the first after) and ``clock_jumps`` (the interval that jumps). Flagged
samples that are consecutive in their stream form one span; spans of one subject less than one
frame period apart are merged; at most :data:`MAX_SPANS` are kept per check, the worst (largest
magnitude — spike size, rad/s, rad past a limit — else longest), listed by start time. Only the
checks in :data:`TIMED_CHECKS` carry ``"spans"``; a passing check's list is empty except for the
report-only ``joint_limit_proximity``, which is not timed. Spans are derived data like ``detail``:
no threshold, verdict or score reads them, and episodes converted before they existed have none
(:func:`episode_findings` returns ``spans=None`` then).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hvla_platform.lib.core.keys import episodes_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.tables import check_qa_results
from hvla_platform.lib.processing.qa.score import GATES, REPORT_ONLY, SCORE_ONLY

#: At most this many spans per check record.
MAX_SPANS = 20

#: The checks whose records carry ``"spans"``.
TIMED_CHECKS = ("dropped_messages", "clock_jumps", "joint_limits", "joint_velocity", "state_spikes",
                "action_spikes", "command_chatter", "command_stall", "frozen_joints",
                "camera_black", "camera_saturated", "camera_frozen", "camera_undecodable",
                "camera_exposure_shift", "camera_blur")

#: One span while it is being collected: (start_ns, end_ns, subject, magnitude); magnitude 0 ranks by length.
RawSpan = tuple[int, int, str, float]


def mask_spans(stamps_ns: np.ndarray, mask: np.ndarray, subject: str,
               magnitude: np.ndarray | None = None) -> list[RawSpan]:
    """Raw spans of the runs of consecutive flagged samples of one stream.

    Args:
        stamps_ns: (N,) int64 header stamps of the stream's samples, ns.
        mask: (N,) bool, the flagged samples.
        subject: the joint / camera / topic the spans are on.
        magnitude: (N,) float64 how bad each sample is (rad, rad/s...), or None to rank by length.
    """
    t = np.asarray(stamps_ns, dtype=np.int64)
    m = np.asarray(mask, dtype=bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], m.astype(np.int8), [0]])))
    out: list[RawSpan] = []
    for a, b in zip(edges[::2], edges[1::2]):
        w = float(np.nanmax(np.abs(magnitude[a:b]))) if magnitude is not None else 0.0
        out.append((int(t[a]), int(t[b - 1]), subject, w if np.isfinite(w) else 0.0))
    return out


def timeline_spans(raw: list[RawSpan], start_time_ns: int, fps: float, num_frames: int) -> list[list[Any]]:
    """The ``"spans"`` of a check record (module docstring) from its raw spans: on the episode
    timeline (seconds from frame 0 at raw time ``start_time_ns``, clipped to the ``num_frames``
    frames at ``fps`` Hz), merged per subject when less than one frame period apart, the
    :data:`MAX_SPANS` worst kept, sorted by start time. Returns ``[[start_s, end_s, subject], ...]``."""
    end = max(num_frames - 1, 0) / fps if fps > 0 else 0.0
    gap_ns = 1e9 / fps if fps > 0 else 0.0
    merged: list[list[Any]] = []
    for s in sorted(raw, key=lambda r: (r[2], min(r[0], r[1]))):
        a, b = min(s[0], s[1]), max(s[0], s[1])
        if merged and merged[-1][2] == s[2] and a - merged[-1][1] < gap_ns:
            merged[-1][1] = max(merged[-1][1], b)
            merged[-1][3] = max(merged[-1][3], s[3])
        else:
            merged.append([a, b, s[2], s[3]])
    worst = sorted(merged, key=lambda m: (-m[3], -(m[1] - m[0]), m[0]))[:MAX_SPANS]

    def sec(t_ns: int) -> float:
        return round(min(max((t_ns - start_time_ns) / 1e9, 0.0), end), 3)

    return [[sec(a), sec(b), subj] for a, b, subj, _ in sorted(worst, key=lambda m: (m[0], m[2]))]


@dataclass(frozen=True)
class Finding:
    """One QA check's outcome for one episode, placed in time.

    Attributes:
        check: the check's name (a key of ``qa_checks``, e.g. ``camera_frozen``).
        severity: ``"gate"``, ``"score"`` or ``"report"`` (:data:`~hvla_platform.lib.processing.qa.score.GATES`,
            ``SCORE_ONLY``, ``REPORT_ONLY``; docs/qa.md "Gate policy").
        passed: the check's verdict.
        detail: its text, as ``hvla qa list`` and the QA report show it.
        spans: ``[(start_s, end_s, subject), ...]``: seconds on the episode timeline (frame 0 at
            0.0; module docstring) and the camera / joint / topic; empty when the check found
            nothing to place (or passed); ``None`` when the check is not timed or the episode was
            converted before spans were recorded.
    """

    check: str
    severity: str
    passed: bool
    detail: str
    spans: list[tuple[float, float, str]] | None


def _severity(check: str) -> str:
    if check in GATES:
        return "gate"
    if check in SCORE_ONLY:
        return "score"
    if check in REPORT_ONLY:
        return "report"
    raise ValueError(f"QA check {check!r} has no policy in qa/score.py (GATES, SCORE_ONLY, REPORT_ONLY)")


def episode_findings(lake: Lake, day: str, robot: str, episode_id: str) -> list[Finding]:
    """Every QA finding of a converted episode, from the latest manifest of its partition
    (``episodes-hdf5/<day>/<robot>/``, ``conversions`` row of ``episode_id``), in the order the
    manifest lists the checks. Times are seconds on the episode timeline (:class:`Finding`).

    Raises:
        KeyError: the partition has no manifest, or its manifest has no conversion of
            ``episode_id`` (one line naming the partition).
        TableError: the manifest's QA results break their schema.
        ValueError: a check without a policy, or a malformed span (the manifest is not ours).
    """
    prefix = episodes_prefix(day, robot)
    manifest = lake.read_manifest(prefix)
    if manifest is None:
        raise KeyError(f"no converted partition {day}|{robot} ({lake.uri(prefix)} has no manifest)")
    rows = check_qa_results(manifest.get("conversions", []),
                            where=f"{lake.uri(lake.manifest_key(prefix))} (conversions)")
    row = next((r for r in rows if r.get("episode_id") == episode_id), None)
    if row is None:
        raise KeyError(f"episode {episode_id!r} has no conversion in partition {day}|{robot}")
    out = []
    for name, c in (row.get("qa_checks") or {}).items():
        spans = None
        if "spans" in c:
            spans = []
            for s in c["spans"]:
                if not (isinstance(s, list) and len(s) == 3 and isinstance(s[2], str)
                        and all(isinstance(x, (int, float)) for x in s[:2]) and s[0] <= s[1]):
                    raise ValueError(f"{episode_id}: {name} has a malformed span {s!r}: "
                                     "[start_s, end_s, subject] with start_s ≤ end_s expected")
                spans.append((float(s[0]), float(s[1]), s[2]))
        out.append(Finding(name, _severity(name), bool(c["passed"]), str(c.get("detail", "")), spans))
    return out
