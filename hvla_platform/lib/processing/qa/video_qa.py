"""QA of action-free video clips (seed 004: "action-free does not mean quality-free").

A latent-action model learns from the change between consecutive frames, so what it must not see
is change that is not the demonstrator's action: blur, camera shake, cuts, frozen stretches, time
gaps, clips too short to hold an action, and clips in the wrong bucket. :func:`clip_qa` decodes a
clip once (PyAV, :func:`~hvla_platform.lib.formats.human_video.read_frames`) and measures, per
frame, on the grey frame downscaled with OpenCV's pixel-area resampling
(:func:`~hvla_platform.lib.processing.qa.image_stats.grey_small`; at most 320 px wide):

* **sharpness**: variance of the Laplacian (Pech-Pacheco et al. 2000;
  :func:`~hvla_platform.lib.processing.qa.image_stats.laplacian_variance`);
* **camera motion**: sparse optical flow between consecutive frames: Shi–Tomasi corners
  (``cv2.goodFeaturesToTrack``; Shi & Tomasi, "Good features to track", CVPR 1994) tracked by
  pyramidal Lucas–Kanade (``cv2.calcOpticalFlowPyrLK``; Bouguet 2000) forwards and backwards,
  keeping the tracks that return within 1 px (the forward–backward error of Kalal, Mikolajczyk &
  Matas, ICPR 2010). The **median** track is the camera's motion: a moving arm in a still view
  moves a minority of the tracks and reads as ~0, a turning or walking camera moves them all.
  Per pair: the frame centre's displacement (dx, dy) under a similarity transform fitted to the
  tracks with RANSAC (``cv2.estimateAffinePartial2D``; Fischler & Bolles 1981) and the tracks'
  median length, in fractions of the frame width. (Phase correlation, tried first, locked onto the wrong period of the simulated
  scene's checkered floor: jitter 0.15 widths on a smooth turn; the tracks' largest was 0.014.)
* **scene change**: the Bhattacharyya distance (``cv2.compareHist``) between consecutive frames'
  hue-saturation histograms (``cv2.calcHist``, 16 × 8 bins, of the frame smoothed first:
  :func:`colour_histogram`) — the histogram-difference shot-boundary
  method (Zhang, Kankanhalli & Smoliar, "Automatic partitioning of full-motion video", 1993);
* **frame difference**: mean absolute difference of consecutive grey frames (levels), for frozen
  spans;
* **presentation times** of the frames (the MP4's pts).

Checks (names as in ``_hvla_manifest.json`` and the Dagster checks; thresholds are fields of
:class:`VideoQAThresholds`, sources in docs/human_video.md):

==========================  ======  ==================================================================
check                       policy  fails when
==========================  ======  ==================================================================
``clip_length``             gate    duration < ``min_duration_s`` or > ``max_duration_s``, or fewer
                                    than ``min_frames`` frames
``temporal_continuity``     gate    a pts step ≤ 0 (repeated/backwards time), a gap > ``clock_jump_s``,
                                    or more than ``max_dropped_fraction`` of the intervals longer than
                                    ``gap_factor`` × the median interval
``video_cuts``              gate    a frame pair's histogram distance > ``cut_distance`` and
                                    > ``cut_ratio`` × the clip's median distance (a shot boundary)
``video_frozen``            gate    consecutive frames differing by < ``frozen_frame_mad`` levels for
                                    ≥ ``frozen_s`` seconds (a stalled stream repeats frames)
``bucket_motion``           gate    ``manipulation``: the camera's median motion > ``max_manipulation_motion``
                                    widths/s (large whole-scene motion); ``locomotion``: its 90th
                                    percentile < ``min_locomotion_motion`` widths/s (no camera motion)
``video_blur``              score   more than ``max_bad_frame_fraction`` of frames have sharpness below
                                    ``min_sharpness_ratio`` × the clip's median
``video_shake``             score   more than ``max_bad_frame_fraction`` of frame pairs have a camera
                                    jitter (motion minus its running median over ``shake_window``
                                    pairs) > ``max_jitter`` widths
==========================  ======  ==================================================================

A gate makes the clip's quality score 0 (left out of releases); blur and shake lower it:
``score = (1 − blurred fraction) × (1 − shaken fraction)``. Each failing check's record carries
``spans``: ``[[start_s, end_s, subject], ...]`` on the clip's timeline (seconds from its first
frame; docs/qa.md "Finding times"), built with the episode QA's
:func:`~hvla_platform.lib.processing.qa.findings.mask_spans` / ``timeline_spans``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from hvla_platform.lib.formats.human_video import read_frames
from hvla_platform.lib.processing.qa.findings import mask_spans, timeline_spans
from hvla_platform.lib.processing.qa.image_stats import SCAN_WIDTH, blurred_frames, grey_small, laplacian_variance
from hvla_platform.lib.processing.qa.thresholds import QAThresholds

_EPISODE = QAThresholds()

#: Checks whose failure makes a clip unusable (score 0; left out of releases).
VIDEO_GATES = ("clip_length", "temporal_continuity", "video_cuts", "video_frozen", "bucket_motion")
#: Checks that lower the score only.
VIDEO_SCORE_ONLY = ("video_blur", "video_shake")
VIDEO_CHECKS = VIDEO_GATES + VIDEO_SCORE_ONLY
#: Subject of the spans (the clip has one camera).
SUBJECT = "video"


@dataclass(frozen=True)
class VideoQAThresholds:
    """Thresholds of the video checks (module docstring; sources in docs/human_video.md).

    Attributes:
        min_duration_s, max_duration_s: clip length bounds, seconds.
        min_frames: fewest frames a clip may have.
        gap_factor, max_dropped_fraction, clock_jump_s: temporal continuity (the episode QA's
            ``dropped_messages`` / ``clock_jumps`` values).
        min_sharpness_ratio, max_bad_frame_fraction: blur (the episode QA's ``camera_blur``).
        frozen_frame_mad, frozen_s: frozen spans (the episode QA's ``camera_frozen``), levels / s.
        cut_distance: Bhattacharyya distance of hue-saturation histograms above which a frame pair
            may be a cut (0 = same colours, 1 = disjoint).
        cut_ratio: ... and it must exceed this multiple of the clip's median pair distance.
        max_jitter: camera jitter above which a frame pair is shaken, fractions of the frame width.
        shake_window: pairs in the running median that separates deliberate motion from jitter.
        max_manipulation_motion: median camera motion above which a ``manipulation`` clip is in the
            wrong bucket, frame widths per second.
        min_locomotion_motion: 90th-percentile camera motion below which a ``locomotion`` clip shows
            no camera motion, frame widths per second.
    """

    min_duration_s: float = 2.0
    max_duration_s: float = _EPISODE.max_duration_s
    min_frames: int = 10
    gap_factor: float = _EPISODE.gap_factor
    max_dropped_fraction: float = _EPISODE.max_dropped_fraction
    clock_jump_s: float = _EPISODE.clock_jump_s
    min_sharpness_ratio: float = _EPISODE.min_sharpness_ratio
    max_bad_frame_fraction: float = _EPISODE.max_bad_frame_fraction
    frozen_frame_mad: float = _EPISODE.frozen_frame_mad
    frozen_s: float = _EPISODE.frozen_s
    cut_distance: float = 0.2
    cut_ratio: float = 5.0
    max_jitter: float = 0.03
    shake_window: int = 5
    max_manipulation_motion: float = 0.1
    min_locomotion_motion: float = 0.05

    @classmethod
    def with_overrides(cls, overrides: dict[str, Any] | None) -> VideoQAThresholds:
        """Defaults with ``overrides`` applied.

        Raises:
            ValueError: an override names no threshold (the message lists the valid names).
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides or {}) - names)
        if unknown:
            raise ValueError(f"unknown video QA threshold(s) {unknown}; valid: {sorted(names)}")
        return cls(**(overrides or {}))


@dataclass
class ClipSignals:
    """Per-frame measurements of one clip (N frames, N − 1 consecutive pairs).

    Attributes:
        pts_s: (N,) float64 presentation times from the first frame, s.
        sharpness: (N,) float64 variance of the Laplacian, levels².
        motion: (N − 1, 3) float64 per pair: median track displacement dx, dy and median track
            length, frame widths (a pair without enough tracks takes its predecessor's values).
        hist_distance: (N − 1,) float64 Bhattacharyya distance of consecutive HS histograms.
        frame_mad: (N − 1,) float64 mean absolute grey difference of consecutive frames, levels.
        width, height: the decoded frame size, pixels.
    """

    pts_s: np.ndarray
    sharpness: np.ndarray
    motion: np.ndarray
    hist_distance: np.ndarray
    frame_mad: np.ndarray
    width: int
    height: int


#: Optical-flow parameters: at most this many corners, their quality level and spacing (px), the
#: LK window (px) and pyramid levels, the forward–backward error bound (px) and the fewest tracks.
MAX_CORNERS, CORNER_QUALITY, CORNER_SPACING = 200, 0.01, 5
LK_WINDOW, LK_LEVELS, FB_MAX_PX, MIN_TRACKS = 15, 3, 1.0, 5
#: RANSAC inlier bound of the similarity fit, pixels.
RANSAC_PX = 1.0


def camera_motion(prev: np.ndarray, cur: np.ndarray) -> tuple[float, float, float]:
    """The camera's image motion between two grey uint8 frames of one size: ``(dx, dy, length)``,
    pixels: the displacement of the frame centre under the similarity transform (rotation, scale,
    translation) fitted with RANSAC (``cv2.estimateAffinePartial2D``) to the forward–backward-
    consistent Lucas–Kanade tracks, and the tracks' median length (module docstring); NaNs when
    fewer than :data:`MIN_TRACKS` tracks hold or no transform fits."""
    nan = (float("nan"),) * 3
    p0 = cv2.goodFeaturesToTrack(prev, MAX_CORNERS, CORNER_QUALITY, CORNER_SPACING)
    if p0 is None:
        return nan
    lk = dict(winSize=(LK_WINDOW, LK_WINDOW), maxLevel=LK_LEVELS)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **lk)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **lk)
    ok = (st1[:, 0] == 1) & (st2[:, 0] == 1) & (np.linalg.norm((back - p0)[:, 0], axis=1) < FB_MAX_PX)
    if ok.sum() < MIN_TRACKS:
        return nan
    a, b = p0[ok, 0], p1[ok, 0]
    length = float(np.median(np.linalg.norm(b - a, axis=1)))
    m, _ = cv2.estimateAffinePartial2D(a, b, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX)
    if m is None:
        return nan
    c = np.array([prev.shape[1] / 2.0, prev.shape[0] / 2.0, 1.0])
    dx, dy = m @ c - c[:2]
    return float(dx), float(dy), length


def _fill_nan(motion: np.ndarray) -> np.ndarray:
    """Rows with NaN take the previous row's values (0 before the first valid row)."""
    out = motion.copy()
    last = np.zeros(out.shape[1])
    for i in range(len(out)):
        if np.isnan(out[i]).any():
            out[i] = last
        else:
            last = out[i]
    return out


#: Colour histograms: hue × saturation bins, and the Gaussian σ (px, on the frame downscaled to at
#: most SCAN_WIDTH wide) the frame is smoothed with first.
HIST_BINS = (16, 8)
HIST_SMOOTH_PX = 2.5


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """(16, 8) float32 hue-saturation histogram (sums to 1) of an (H, W, 3) uint8 RGB frame,
    downscaled to at most :data:`SCAN_WIDTH` px wide (``cv2.INTER_AREA``) and smoothed with a
    Gaussian of σ = :data:`HIST_SMOOTH_PX` px first: the histogram of sensor noise depends on the
    frame's sharpness (a σ = 2 px blur of one frame moved it by 0.29, as far as a cut to another
    view), the smoothed one describes the scene's colours (the same blur: 0.06; the cut: 0.29)."""
    h, w = rgb.shape[:2]
    if w > SCAN_WIDTH:
        rgb = cv2.resize(rgb, (SCAN_WIDTH, max(1, round(h * SCAN_WIDTH / w))), interpolation=cv2.INTER_AREA)
    smooth = cv2.GaussianBlur(rgb, (0, 0), HIST_SMOOTH_PX)
    hist = cv2.calcHist([cv2.cvtColor(smooth, cv2.COLOR_RGB2HSV)], [0, 1], None, list(HIST_BINS), [0, 180, 0, 256])
    cv2.normalize(hist, hist, 1.0, 0.0, cv2.NORM_L1)
    return hist


def measure_frames(frames: Iterable[tuple[float, np.ndarray]]) -> ClipSignals:
    """Measure ``(t_s, (H, W, 3) uint8 RGB frame)`` pairs (:func:`read_frames`' output) one at a
    time (no frame is kept beyond the previous one).

    Raises:
        ValueError: no frames.
    """
    pts, sharp, motion, dist, mad = [], [], [], [], []
    prev_f = prev_hist = None
    size = (0, 0)
    for t, rgb in frames:
        grey = grey_small(rgb)
        hist = colour_histogram(rgb)
        if prev_f is None:
            size = (rgb.shape[1], rgb.shape[0])
        else:
            dx, dy, length = camera_motion(prev_f, grey)
            motion.append((dx / grey.shape[1], dy / grey.shape[1], length / grey.shape[1]))
            dist.append(cv2.compareHist(prev_hist, hist, cv2.HISTCMP_BHATTACHARYYA))
            mad.append(float(cv2.mean(cv2.absdiff(prev_f, grey))[0]))
        pts.append(t)
        sharp.append(laplacian_variance(grey))
        prev_f, prev_hist = grey, hist
    if not pts:
        raise ValueError("no frames to measure")
    return ClipSignals(pts_s=np.asarray(pts, np.float64), sharpness=np.asarray(sharp, np.float64),
                       motion=_fill_nan(np.asarray(motion, np.float64).reshape(-1, 3)), hist_distance=np.asarray(dist, np.float64),
                       frame_mad=np.asarray(mad, np.float64), width=size[0], height=size[1])


@dataclass
class ClipQA:
    """The video QA of one clip.

    Attributes:
        checks: check name → ``{"passed", "detail", "spans"}`` (every name of :data:`VIDEO_CHECKS`).
        metrics: the numbers the checks judged (duration, fps, fractions, motion...).
        quality_score: 0 when a gate failed, else (1 − blurred fraction) × (1 − shaken fraction).
        thresholds: the thresholds used.
    """

    checks: dict[str, dict[str, Any]]
    metrics: dict[str, Any]
    quality_score: float
    thresholds: dict[str, Any] = field(default_factory=dict)

    @property
    def gated(self) -> list[str]:
        """The failed gates (empty: usable)."""
        return [c for c in VIDEO_GATES if not self.checks[c]["passed"]]

    @property
    def failed(self) -> list[str]:
        """Every failed check."""
        return [c for c in VIDEO_CHECKS if not self.checks[c]["passed"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self) | {"gated": self.gated, "failed": self.failed}


def _pair_mask_to_frames(mask: np.ndarray) -> np.ndarray:
    """(N − 1,) pair flags → (N,) frame flags (a pair flags its later frame)."""
    return np.concatenate([[False], np.asarray(mask, bool)])


def _spans(sig: ClipSignals, frame_mask: np.ndarray, fps: float, magnitude: np.ndarray | None = None) -> list[list[Any]]:
    t_ns = np.rint(sig.pts_s * 1e9).astype(np.int64)
    return timeline_spans(mask_spans(t_ns, frame_mask, SUBJECT, magnitude), 0, fps, len(t_ns))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def judge(sig: ClipSignals, learning_role: str, th: VideoQAThresholds | None = None) -> ClipQA:
    """Judge measured signals (:func:`measure_frames`) of a clip labelled ``learning_role``
    (``manipulation`` / ``locomotion``) against ``th`` (module docstring).

    Raises:
        ValueError: unknown ``learning_role``.
    """
    if learning_role not in ("manipulation", "locomotion"):
        raise ValueError(f"learning_role must be 'manipulation' or 'locomotion', got {learning_role!r}")
    th = th or VideoQAThresholds()
    n = len(sig.pts_s)
    steps = np.diff(sig.pts_s)
    positive = steps[steps > 0]
    period = float(np.median(positive)) if len(positive) else float("nan")
    fps = 1.0 / period if np.isfinite(period) and period > 0 else 1.0
    duration = float(sig.pts_s[-1] - sig.pts_s[0] + (period if np.isfinite(period) else 0.0)) if n else 0.0
    checks: dict[str, dict[str, Any]] = {}

    # clip length
    ok = th.min_duration_s <= duration <= th.max_duration_s and n >= th.min_frames
    checks["clip_length"] = {"passed": ok, "spans": [], "detail": (
        f"{duration:.2f} s, {n} frames (bounds {th.min_duration_s:g}–{th.max_duration_s:g} s, ≥ {th.min_frames} frames)")}

    # temporal continuity
    back = steps <= 0
    gaps = steps > th.gap_factor * period if np.isfinite(period) else np.zeros_like(back)
    jumps = steps > th.clock_jump_s
    dropped = float(gaps.mean()) if len(steps) else 0.0
    ok = not back.any() and not jumps.any() and dropped <= th.max_dropped_fraction
    bad = _pair_mask_to_frames(back | gaps | jumps)
    problems = []
    if back.any():
        problems.append(f"{int(back.sum())} non-increasing timestamp step(s)")
    if gaps.any():
        problems.append(f"{int(gaps.sum())} gap(s) > {th.gap_factor:g} × the {period * 1e3:.1f} ms median interval "
                        f"({dropped:.1%} of intervals, largest {float(steps.max()):.3f} s)")
    checks["temporal_continuity"] = {"passed": ok, "spans": [] if ok else _spans(sig, bad, fps), "detail": (
        "; ".join(problems) if problems else f"{n - 1} intervals, median {period * 1e3:.1f} ms, none > "
                                             f"{th.gap_factor:g} × median")}

    # cuts
    med_d = float(np.median(sig.hist_distance)) if len(sig.hist_distance) else 0.0
    cut = (sig.hist_distance > th.cut_distance) & (sig.hist_distance > th.cut_ratio * max(med_d, 1e-6))
    ok = not cut.any()
    checks["video_cuts"] = {"passed": ok, "spans": [] if ok else _spans(sig, _pair_mask_to_frames(cut), fps),
                            "detail": (f"{int(cut.sum())} cut(s) at {[round(float(sig.pts_s[i + 1]), 3) for i in np.flatnonzero(cut)][:10]} s "
                                       f"(histogram distance up to {float(sig.hist_distance.max()):.2f}, clip median {med_d:.3f})"
                                       if not ok else f"largest histogram distance {float(sig.hist_distance.max(initial=0)):.2f} "
                                                      f"(cut > {th.cut_distance:g} and > {th.cut_ratio:g} × median {med_d:.3f})")}

    # frozen spans
    still = sig.frame_mad < th.frozen_frame_mad
    frozen_pairs = np.zeros_like(still)
    longest = 0.0
    for a, b in _runs(still):
        span_s = float(sig.pts_s[b] - sig.pts_s[a])  # pair a..b-1 covers frames a..b
        longest = max(longest, span_s)
        if span_s >= th.frozen_s - 1e-9:
            frozen_pairs[a:b] = True
    ok = not frozen_pairs.any()
    checks["video_frozen"] = {"passed": ok, "spans": [] if ok else _spans(sig, _pair_mask_to_frames(frozen_pairs), fps),
                              "detail": f"longest run of frames differing < {th.frozen_frame_mad:g} levels: {longest:.2f} s "
                                        f"(bound {th.frozen_s:g} s)"}

    # bucket motion: camera speed in frame widths per second
    speed = sig.motion[:, 2] * fps if len(sig.motion) else np.zeros(0)
    med_speed = float(np.median(speed)) if len(speed) else 0.0
    p90_speed = float(np.percentile(speed, 90)) if len(speed) else 0.0
    if learning_role == "manipulation":
        ok = med_speed <= th.max_manipulation_motion
        detail = (f"manipulation clip: median camera motion {med_speed:.3f} widths/s "
                  f"({'≤' if ok else '>'} {th.max_manipulation_motion:g}: "
                  f"{'a still view' if ok else 'large whole-scene motion, a locomotion clip?'})")
        moving = speed > th.max_manipulation_motion
    else:
        ok = p90_speed >= th.min_locomotion_motion
        detail = (f"locomotion clip: 90th-percentile camera motion {p90_speed:.3f} widths/s "
                  f"({'≥' if ok else '<'} {th.min_locomotion_motion:g}{'' if ok else ': the camera hardly moves, a manipulation clip?'})")
        moving = speed < th.min_locomotion_motion
    checks["bucket_motion"] = {"passed": ok, "detail": detail,
                               "spans": [] if ok else _spans(sig, _pair_mask_to_frames(moving), fps)}

    # blur (score)
    blurred, med_sharp = blurred_frames(sig.sharpness, np.ones(n, bool),
                                        QAThresholds(min_sharpness_ratio=th.min_sharpness_ratio))
    blur_frac = float(blurred.mean()) if n else 0.0
    ok = blur_frac <= th.max_bad_frame_fraction
    checks["video_blur"] = {"passed": ok, "spans": [] if ok else _spans(sig, blurred, fps),
                            "detail": f"{int(blurred.sum())}/{n} frames ({blur_frac:.1%}) below {th.min_sharpness_ratio:g} × "
                                      f"the median sharpness {med_sharp:.1f}"}

    # shake (score): jitter = motion minus its running median
    jitter = np.zeros(len(sig.motion))
    if len(sig.motion):
        w = max(1, th.shake_window)
        pad = np.pad(sig.motion[:, :2], ((w // 2, w // 2), (0, 0)), mode="edge")
        smooth = np.stack([np.median(pad[i:i + w], axis=0) for i in range(len(sig.motion))])
        jitter = np.hypot(*(sig.motion[:, :2] - smooth).T)
    shaken = jitter > th.max_jitter
    shake_frac = float(shaken.mean()) if len(shaken) else 0.0
    ok = shake_frac <= th.max_bad_frame_fraction
    checks["video_shake"] = {"passed": ok, "spans": [] if ok else _spans(sig, _pair_mask_to_frames(shaken), fps,
                                                                          np.concatenate([[0.0], jitter])),
                             "detail": f"{int(shaken.sum())}/{len(shaken)} frame pairs ({shake_frac:.1%}) with camera jitter > "
                                       f"{th.max_jitter:g} widths (largest {float(jitter.max(initial=0)):.3f})"}

    gated = any(not checks[c]["passed"] for c in VIDEO_GATES)
    score = 0.0 if gated else round((1.0 - blur_frac) * (1.0 - shake_frac), 6)
    metrics = {"duration_s": round(duration, 6), "num_frames": n, "fps": round(fps, 6), "width": sig.width,
               "height": sig.height, "median_sharpness": round(med_sharp, 3), "blurred_fraction": round(blur_frac, 6),
               "shaken_fraction": round(shake_frac, 6), "max_jitter": round(float(jitter.max(initial=0)), 6),
               "median_camera_motion": round(med_speed, 6), "p90_camera_motion": round(p90_speed, 6),
               "max_hist_distance": round(float(sig.hist_distance.max(initial=0)), 6),
               "dropped_fraction": round(dropped, 6), "cuts": int(cut.sum())}
    return ClipQA(checks=checks, metrics=metrics, quality_score=score, thresholds=asdict(th))


def clip_qa(video: str | Path, learning_role: str, th: VideoQAThresholds | None = None) -> ClipQA:
    """Decode the MP4 at ``video`` and judge it (:func:`measure_frames`, :func:`judge`).

    Raises:
        HumanVideoError: the video does not decode (see
            :func:`~hvla_platform.lib.formats.human_video.read_frames`).
        ValueError: unknown ``learning_role`` or no frames.
    """
    return judge(measure_frames(read_frames(video)), learning_role, th)
