"""Face blurring on a real photograph with a face (scikit-image's astronaut) and on real frames
without one."""

import cv2
import numpy as np
import pytest
import skimage.data

from hvla_platform.lib.processing.face_blur import BOX_MARGIN, blur_faces, detect_faces


def _lap_var(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def test_astronaut_face_is_found_and_blurred_and_nothing_else_changes():
    img = skimage.data.astronaut()  # (512, 512, 3) uint8, Eileen Collins' portrait
    boxes = detect_faces(img)
    assert len(boxes) >= 1
    # the face is at about x 180-270, y 70-160 in the photograph: the box found must hold it
    x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
    assert x <= 200 and y <= 90 and x + w >= 250 and y + h >= 140

    out = blur_faces(img)
    assert out.frame.shape == img.shape and out.frame.dtype == np.uint8
    face = (slice(y, y + h), slice(x, x + w))
    # strongly blurred: fine detail (variance of the Laplacian) almost gone, pixels moved a lot
    assert _lap_var(out.frame[face]) < 0.05 * _lap_var(img[face])
    assert np.abs(out.frame[face].astype(int) - img[face].astype(int)).mean() > 8
    # everything outside the grown boxes is bit-identical
    changed = np.zeros(img.shape[:2], bool)
    for bx, by, bw, bh in out.boxes:
        mx, my = round(bw * BOX_MARGIN), round(bh * BOX_MARGIN)
        changed[max(0, by - my):by + bh + my, max(0, bx - mx):bx + bw + mx] = True
    assert np.array_equal(out.frame[~changed], img[~changed])
    assert changed.mean() < 0.2  # only the face area, not the whole picture


def test_frames_without_a_face_are_unchanged():
    for img in (skimage.data.coffee(), skimage.data.rocket(), skimage.data.chelsea()):
        out = blur_faces(img)
        assert len(out.boxes) == 0
        assert np.array_equal(out.frame, img)


def test_detect_faces_refuses_a_float_image():
    with pytest.raises(ValueError, match="uint8"):
        detect_faces(np.zeros((32, 32, 3), np.float32))
