"""Face blurring of human-video frames before a release that does not allow identifiable people.

**Detector.** OpenCV's bundled Haar cascades (Viola & Jones, "Rapid object detection using a
boosted cascade of simple features", CVPR 2001; Lienhart & Maydt, ICIP 2002), read from
``cv2.data.haarcascades`` inside the ``opencv-python-headless`` wheel the platform already pins:
``haarcascade_frontalface_default.xml`` and ``haarcascade_profileface.xml`` (run on the frame and
on its mirror image, so both profiles are found). Nothing is downloaded at run time, and the
detector moves with OpenCV's releases. The alternatives were considered and not taken: OpenCV's
YuNet needs an ONNX model file that no PyPI package we install ships; MediaPipe's detector would
add a large dependency with its own numpy/protobuf pins (docs/human_video.md, "Face blurring").

**Limits.** A Haar cascade finds upright faces of at least :data:`MIN_FACE_PX` pixels (its 24 × 24
training window at the given scale); it misses strongly rotated, heavily occluded or tiny faces
and sometimes fires on textures (a false positive blurs a patch of background, which is the safe
side). Frames are therefore searched at their source resolution, before any resizing for a
release. Releases record which detector ran and how many faces it blurred per clip.

**Blur.** Each detected box is grown by :data:`BOX_MARGIN` on every side (hair, ears, chin) and
replaced by a Gaussian blur of itself with σ = a quarter of the box's larger side (``cv2.GaussianBlur``),
which removes every detail finer than the face's own size: the box's variance of the Laplacian
falls by more than 95 % on ``skimage.data.astronaut()``. Pixels outside the boxes are not changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

#: The detector, as releases and docs name it.
DETECTOR_NAME = f"opencv-haar-cascade(frontalface_default+profileface) opencv {cv2.__version__}"
#: Smallest face searched for, pixels (the cascades' 24 × 24 window).
MIN_FACE_PX = 24
#: Each box grows by this fraction of its size on every side before blurring.
BOX_MARGIN = 0.25
#: ``detectMultiScale`` parameters: scale step between pyramid levels; neighbouring detections a
#: face needs (OpenCV's tutorial values; 5 keeps textures from firing on the test images).
SCALE_FACTOR = 1.1
MIN_NEIGHBORS = 5


@lru_cache(maxsize=1)
def _cascades() -> tuple[cv2.CascadeClassifier, cv2.CascadeClassifier]:
    out = []
    for name in ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml"):
        path = os.path.join(cv2.data.haarcascades, name)
        clf = cv2.CascadeClassifier(path)
        if clf.empty():
            raise RuntimeError(f"OpenCV's Haar cascade {path} did not load (is opencv-python-headless complete?)")
        out.append(clf)
    return out[0], out[1]


def detect_faces(frame: np.ndarray) -> np.ndarray:
    """Faces in an (H, W, 3) uint8 RGB (or (H, W) grey) frame: (K, 4) int32 boxes ``x, y, w, h``
    in pixels (K = 0 when none), frontal and both profiles, overlapping boxes kept as found.

    Raises:
        ValueError: the frame is not a 2-D grey or 3-channel uint8 image.
    """
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] != 3):
        raise ValueError(f"detect_faces: expected an (H, W, 3) or (H, W) uint8 image, got {frame.shape} {frame.dtype}")
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    grey = cv2.equalizeHist(grey)
    frontal, profile = _cascades()
    kw = dict(scaleFactor=SCALE_FACTOR, minNeighbors=MIN_NEIGHBORS, minSize=(MIN_FACE_PX, MIN_FACE_PX))
    boxes = [np.asarray(frontal.detectMultiScale(grey, **kw)).reshape(-1, 4),
             np.asarray(profile.detectMultiScale(grey, **kw)).reshape(-1, 4)]
    w = grey.shape[1]
    mirrored = np.asarray(profile.detectMultiScale(cv2.flip(grey, 1), **kw)).reshape(-1, 4)
    if len(mirrored):
        mirrored = mirrored.copy()
        mirrored[:, 0] = w - mirrored[:, 0] - mirrored[:, 2]
    boxes.append(mirrored)
    return np.concatenate(boxes).astype(np.int32)


def blur_boxes(frame: np.ndarray, boxes: np.ndarray, margin: float = BOX_MARGIN) -> np.ndarray:
    """A copy of the (H, W, 3) uint8 ``frame`` with each ``x, y, w, h`` box of ``boxes`` ((K, 4)
    int) grown by ``margin`` and Gaussian-blurred (σ = ¼ of its larger side); pixels outside the
    boxes are unchanged."""
    out = frame.copy()
    h, w = frame.shape[:2]
    for x, y, bw, bh in np.asarray(boxes, np.int64).reshape(-1, 4):
        mx, my = int(round(bw * margin)), int(round(bh * margin))
        x0, y0, x1, y1 = max(0, x - mx), max(0, y - my), min(w, x + bw + mx), min(h, y + bh + my)
        if x1 <= x0 or y1 <= y0:
            continue
        sigma = max(x1 - x0, y1 - y0) / 4.0
        k = int(2 * round(3 * sigma) + 1)
        roi = np.ascontiguousarray(out[y0:y1, x0:x1])
        out[y0:y1, x0:x1] = cv2.GaussianBlur(roi, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    return out


@dataclass(frozen=True)
class BlurResult:
    """One frame after :func:`blur_faces`: ``frame`` (H, W, 3) uint8, ``boxes`` (K, 4) int32 the
    detected faces (before the margin)."""

    frame: np.ndarray
    boxes: np.ndarray


def blur_faces(frame: np.ndarray) -> BlurResult:
    """Detect faces in an (H, W, 3) uint8 RGB frame (:func:`detect_faces`) and blur them
    (:func:`blur_boxes`). A frame without a detected face is returned unchanged (a copy).

    Raises:
        ValueError: as :func:`detect_faces`.
    """
    boxes = detect_faces(frame)
    return BlurResult(blur_boxes(frame, boxes) if len(boxes) else frame.copy(), boxes)
