"""Camera image statistics: per-frame sharpness and perceptual hash, and the per-episode exposure and
blur checks that judge a colour camera against its own norm within the episode.

Per frame (:func:`frame_image_stats`, called by pass 1's
:class:`~hvla_platform.lib.processing.convert.CameraScanner` on every decoded colour frame; no
pixels are kept) on the grey frame (ITU-R BT.601 luma) downscaled with OpenCV's pixel-area
resampling to at most :data:`SCAN_WIDTH` pixels wide:

* **sharpness**: the variance of the Laplacian (``cv2.Laplacian``, 3 × 3 four-neighbour kernel) —
  the focus measure of Pech-Pacheco, Cristóbal, Chamorro-Martínez & Fernández-Valdivia, "Diatom
  autofocusing in brightfield microscopy: a comparative study", ICPR 2000. Motion blur and focus
  loss remove high spatial frequencies and lower it: a Gaussian blur of σ = 2 px on a 640 × 480
  frame keeps about a third of it, σ = 3 px a fifth. The downscale is at most 2× for 480p: at 4×
  (160 px) a sharp edge becomes a one-pixel step whose Laplacian energy depends on where the edge
  falls between pixels (up to 4× for a step), so a scene with few strong edges moving across the
  view swings by more than the blur threshold (the 480p test scene's least sharp frame kept 0.38 of
  its median at 160 px, 0.80 at 320 px).
* **dHash**: a 64-bit difference hash (Krawetz, "Kind of like that", hackerfactor.com 2013; the
  ``imagehash`` library's ``dhash``): the grey frame resized to 9 × 8, bit = left pixel < right
  pixel, row by row, most significant bit first. Similar frames have hashes a few bits apart
  (Hamming distance); :mod:`~hvla_platform.lib.processing.qa.duplicates` compares them.

Per episode, each colour camera is judged against its own episode median, on the frames that are
neither black nor saturated (``camera_black`` / ``camera_saturated`` judge those; they are not
counted twice):

* ``camera_exposure_shift`` (:func:`exposure_shift`): a frame whose mean level departs from the
  median by more than ``max_exposure_shift_levels`` (sRGB-encoded levels are close to perceptually
  uniform; 40 levels is about one exposure stop at mid grey: 118 × 2^(1/2.2) ≈ 162), or a frame in
  a stretch that a **step** (lights switched, an auto-exposure jump: the medians of the
  ``exposure_step_s`` windows before and after a frame differ by more than ``exposure_step_levels``)
  separates from the camera's norm (the longest stretch between steps) by more than
  ``exposure_step_levels``.
* ``camera_blur`` (:func:`blurred_frames`): a frame whose sharpness is below
  ``min_sharpness_ratio`` × the median sharpness.

Both fail when more than ``max_bad_frame_fraction`` of a camera's frames are flagged; they are
score-only (their frames count into ``camera_quality``). Depth cameras are not judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from hvla_platform.lib.processing.qa.thresholds import QAThresholds

#: Frames are downscaled (pixel-area resampling) to at most this width before the statistics.
SCAN_WIDTH = 320


def grey_small(frame: Image.Image | np.ndarray) -> np.ndarray:
    """The grey (H', W') uint8 form of a colour frame (a Pillow ``RGB``/``L`` image, or an (H, W, 3)
    RGB / (H, W) grey uint8 array), downscaled with ``cv2.INTER_AREA`` to at most
    :data:`SCAN_WIDTH` pixels wide (aspect kept; smaller frames are left as they are)."""
    if isinstance(frame, Image.Image):
        grey = np.asarray(frame if frame.mode == "L" else frame.convert("L"))
    else:
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    if w > SCAN_WIDTH:
        grey = cv2.resize(grey, (SCAN_WIDTH, max(1, round(h * SCAN_WIDTH / w))), interpolation=cv2.INTER_AREA)
    return grey


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the Laplacian of a grey uint8 image (levels², Pech-Pacheco et al. 2000); the
    Laplacian of 8-bit levels is exact in 16-bit integers (|value| ≤ 4 × 255)."""
    sd = float(cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_16S))[1][0, 0])
    return sd * sd


def dhash(grey: np.ndarray) -> int:
    """64-bit difference hash of a grey uint8 image (see the module docstring), as an int in
    [0, 2⁶⁴)."""
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA)
    return int(np.packbits(small[:, :-1] < small[:, 1:]).view(">u8")[0])


def frame_image_stats(frame: Image.Image | np.ndarray) -> tuple[float, int]:
    """``(sharpness, dhash)`` of one colour frame (:func:`grey_small`, :func:`laplacian_variance`,
    :func:`dhash`). About 0.55 ms of CPU for a 640 × 480 JPEG frame (a fifth of what converting a
    three-camera 480p episode costs per colour frame; the grey conversion at full size is 0.23 ms of it)."""
    grey = grey_small(frame)
    return laplacian_variance(grey), dhash(grey)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Hamming distance (number of differing bits) between uint64 hashes, elementwise."""
    diff = np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64))
    return np.bitwise_count(diff).astype(np.int64)


@dataclass
class ExposureShift:
    """What :func:`exposure_shift` found on one camera.

    Attributes:
        bad: (N,) bool, the flagged frames (among all N scanned frames).
        median_level: median mean level (0–255) of the judged frames; NaN when none is judged.
        steps: positions (indices into the N frames) where a step starts.
    """

    bad: np.ndarray
    median_level: float
    steps: list[int]


def exposure_shift(levels: np.ndarray, judged: np.ndarray, rate_hz: float, th: QAThresholds) -> ExposureShift:
    """Exposure shifts and steps of one camera (module docstring).

    Args:
        levels: (N,) float64 mean level (0–255) of each frame.
        judged: (N,) bool, the frames to judge (not black, not saturated); the others are never
            flagged and do not take part in the median or the windows.
        rate_hz: the camera's nominal frame rate (the step windows are ``exposure_step_s`` × rate
            frames, at least 2).
        th: ``max_exposure_shift_levels``, ``exposure_step_levels``, ``exposure_step_s``.

    A step is only looked for where a full window of judged frames lies on both sides of it; it is
    placed, within a run of frames whose windows differ by more than ``exposure_step_levels``, at
    the largest change from one judged frame to the next.
    """
    levels = np.asarray(levels, np.float64)
    judged = np.asarray(judged, bool)
    bad = np.zeros(levels.shape, bool)
    pos = np.flatnonzero(judged)
    if pos.size == 0:
        return ExposureShift(bad, float("nan"), [])
    x = levels[pos]
    med = float(np.median(x))
    off = np.abs(x - med) > th.max_exposure_shift_levels
    w = max(2, math.ceil(th.exposure_step_s * rate_hz))
    steps: list[int] = []
    if x.size >= 2 * w:
        win = np.lib.stride_tricks.sliding_window_view(x, w)  # win[i] = x[i:i + w]
        jump = np.median(win[w:], axis=1) - np.median(win[:-w], axis=1)  # jump[k - w]: after k vs before k
        big = np.abs(jump) > th.exposure_step_levels
        edges = np.flatnonzero(np.diff(np.concatenate([[0], big.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):  # runs [a, b) of big jumps: one step each, where
            ks = np.arange(a, b) + w                 # the level changes most from one frame to the next
            steps.append(int(ks[np.argmax(np.abs(x[ks] - x[ks - 1]))]))
    if steps:
        bounds = [0, *steps, x.size]
        segs = [(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        norm = float(np.median(x[slice(*max(segs, key=lambda s: s[1] - s[0]))]))
        for a, b in segs:
            if abs(float(np.median(x[a:b])) - norm) > th.exposure_step_levels:
                off[a:b] = True
    bad[pos[off]] = True
    return ExposureShift(bad, med, [int(pos[k]) for k in steps])


def blurred_frames(sharpness: np.ndarray, judged: np.ndarray, th: QAThresholds) -> tuple[np.ndarray, float]:
    """``(bad, median_sharpness)``: (N,) bool frames among ``judged`` whose ``sharpness`` ((N,)
    float64 variance of the Laplacian) is below ``min_sharpness_ratio`` × the median over the judged
    frames, and that median (NaN when no frame is judged)."""
    sharpness = np.asarray(sharpness, np.float64)
    judged = np.asarray(judged, bool)
    if not judged.any():
        return np.zeros(sharpness.shape, bool), float("nan")
    med = float(np.median(sharpness[judged]))
    return judged & (sharpness < th.min_sharpness_ratio * med), med
