"""Camera frames for the recorder: rendered, or synthesised cheaply but realistically for QA.

Two frame sources, chosen per recording (``hvla sim record --frames``):

* ``rendered``: every frame is rendered by MuJoCo at the camera's resolution (colour from the
  RGB buffer, depth from the depth buffer), then sensor noise is added.
* ``synthetic``: each camera's view is rendered at a low resolution (at most 120 × 160) only every
  ``1 / refresh_hz`` seconds (default 5 Hz), upscaled (bilinear for colour, nearest for depth) and
  given fresh sensor noise every frame. Frames follow the scene (the arm moves in them, at the
  refresh rate), are never constant and never bit-identical (what the frozen-camera check
  looks for), and cost a fraction of a render: a 30-second three-camera 480 × 640 × 30 Hz episode
  records in about half a minute on 2 cores instead of several minutes.

Sensor noise comes from a precomputed bank (:class:`NoiseBank`): a few Gaussian noise images
slightly larger than the frame, of which each frame takes a random window, so noise costs one
addition instead of drawing ~10⁶ normal numbers per 480p frame. Colour noise is σ = 2 levels of 8
bits (read + shot noise of a small CMOS camera), truncated at ±3σ and added in 8-bit modular
arithmetic to an image whose levels are first limited to [6, 249] (a sensor's black level and
headroom), so the sum never wraps and needs no clipping; depth noise is σ(z) = 1 mm + 2 mm × z² (z in
metres, a structured-light/stereo sensor), with no return (0 in ``16UC1``, NaN in ``32FC1``,
REP 118) closer than 0.1 m or beyond 10 m.
"""

from __future__ import annotations

import io
import math
from typing import Literal

import numpy as np
from PIL import Image

from hvla_platform.lib.formats.recording.profile import Camera
from hvla_platform.lib.sim.core import RobotSim

FrameMode = Literal["rendered", "synthetic"]
FRAME_MODES: tuple[str, ...] = ("rendered", "synthetic")

JPEG_QUALITY = 85
#: Colour sensor noise, σ in 8-bit levels.
CAMERA_NOISE_SIGMA = 2.0
#: Depth noise σ(z) = DEPTH_NOISE_M + DEPTH_NOISE_QUAD × z², metres; valid range, metres.
DEPTH_NOISE_M, DEPTH_NOISE_QUAD = 0.001, 0.002
DEPTH_MIN_M, DEPTH_MAX_M = 0.1, 10.0
#: Synthetic frames: longest side of the low-resolution render, pixels; default refresh rate, Hz.
SYNTHETIC_MAX_SIDE = 160
SYNTHETIC_REFRESH_HZ = 5.0


class NoiseBank:
    """Precomputed zero-mean Gaussian noise for frames of ``shape`` ((H, W) or (H, W, C)).

    Args:
        shape: frame shape.
        sigma: standard deviation (in the frame's units).
        rng: generator the bank and the windows are drawn from.
        count: number of noise images in the bank.
        margin: the images are ``margin`` pixels larger in H and W; a frame takes a random window.
        dtype: ``uint8`` (rounded, truncated at ±3σ and stored modulo 256, to be added to 8-bit
            images with :func:`add_noise_u8`) or ``float32``.
    """

    def __init__(self, shape: tuple[int, ...], sigma: float, rng: np.random.Generator, *, count: int = 4,
                 margin: int = 16, dtype: str = "uint8"):
        big = (count, shape[0] + margin, shape[1] + margin, *shape[2:])
        noise = rng.normal(0.0, sigma, big)
        if dtype == "uint8":
            self.bound = int(math.ceil(3 * sigma))
            self.bank = (np.rint(np.clip(noise, -3 * sigma, 3 * sigma)).astype(np.int16) % 256).astype(np.uint8)
        else:
            self.bound = 0
            self.bank = noise.astype(np.float32)
        self.shape = tuple(shape)
        self.margin = margin
        self._rng = rng

    def sample(self) -> np.ndarray:
        """A noise window of the frame's shape (a view into the bank; do not modify it)."""
        k = int(self._rng.integers(len(self.bank)))
        dy, dx = (int(v) for v in self._rng.integers(0, self.margin + 1, 2))
        return self.bank[k, dy:dy + self.shape[0], dx:dx + self.shape[1]]


def headroom(img: np.ndarray, bound: int) -> np.ndarray:
    """``img`` (uint8) with its levels limited to [bound, 255 − bound], ready for :func:`add_noise_u8`."""
    return np.clip(img, bound, 255 - bound).astype(np.uint8, copy=False)


def add_noise_u8(img: np.ndarray, bank: NoiseBank) -> np.ndarray:
    """``img`` (uint8, levels within [bank.bound, 255 − bank.bound], see :func:`headroom`) plus a
    noise window of ``bank`` (a ``uint8`` bank): exact in modular arithmetic, one pass, no clipping."""
    return np.add(img, bank.sample(), dtype=np.uint8)


def encode_compressed(rgb: np.ndarray, fmt: str) -> bytes:
    """(H, W, 3) uint8 RGB → JPEG (quality :data:`JPEG_QUALITY`) or PNG bytes.

    Raises:
        ValueError: ``fmt`` is not ``jpeg``/``png``.
    """
    if fmt not in ("jpeg", "png"):
        raise ValueError(f"unknown compressed image format {fmt!r}")
    buf = io.BytesIO()
    if fmt == "jpeg":
        Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _low_res(height: int, width: int) -> tuple[int, int]:
    f = max(1, math.ceil(max(height, width) / SYNTHETIC_MAX_SIDE))
    return max(1, height // f), max(1, width // f)


class CameraFrames:
    """Produces the frames of a profile's cameras from a simulator, rendered or synthesised.

    Args:
        sim: the simulator (created with ``render=True``); the profile camera names must be in its
            scene's ``cameras``.
        cameras: the profile's cameras (name → :class:`~hvla_platform.lib.formats.recording.profile.Camera`).
        rng: generator for the sensor noise.
        mode: ``rendered`` or ``synthetic``.
        refresh_hz: synthetic mode: how often each view is re-rendered, Hz.

    Raises:
        ValueError: unknown ``mode`` or a non-positive ``refresh_hz``.
    """

    def __init__(self, sim: RobotSim, cameras: dict[str, Camera], rng: np.random.Generator, *,
                 mode: FrameMode = "rendered", refresh_hz: float = SYNTHETIC_REFRESH_HZ):
        if mode not in FRAME_MODES:
            raise ValueError(f"unknown frame mode {mode!r}; known: {list(FRAME_MODES)}")
        if refresh_hz <= 0:
            raise ValueError(f"refresh_hz must be > 0, got {refresh_hz}")
        self.sim, self.cameras, self.rng, self.mode = sim, cameras, rng, mode
        self.refresh_s = 1.0 / refresh_hz
        self._banks: dict[str, NoiseBank] = {}
        self._cache: dict[str, tuple[float, np.ndarray]] = {}  # camera -> (render time, upscaled base)
        # Synthetic mode: low-resolution views, one render pass per (MuJoCo camera, size) and refresh,
        # giving colour and depth at once to the cameras sharing a mount (an RGB-D head camera).
        self._views: dict[tuple[str, int, int], tuple[float, np.ndarray | None, np.ndarray | None]] = {}
        self._needs: dict[tuple[str, int, int], set[str]] = {}
        for name, cam in cameras.items():
            key = (sim.scene.cameras.get(name, name), *_low_res(cam.height, cam.width))
            self._needs.setdefault(key, set()).add("depth" if cam.is_depth else "rgb")
        for name, cam in cameras.items():
            if cam.is_depth:
                self._banks[name] = NoiseBank((cam.height, cam.width), 1.0, rng, dtype="float32")
            else:
                shape = (cam.height, cam.width) if cam.encoding == "mono8" else (cam.height, cam.width, 3)
                self._banks[name] = NoiseBank(shape, CAMERA_NOISE_SIGMA, rng, dtype="uint8")

    # ---- base images (noise-free) --------------------------------------------------------------
    def _rendered(self, name: str, cam: Camera) -> np.ndarray:
        if cam.is_depth:
            return self.sim.render_depth(name, cam.height, cam.width)
        return self.sim.render(name, cam.height, cam.width)

    def _synthetic(self, name: str, cam: Camera, t: float) -> np.ndarray:
        hit = self._cache.get(name)
        if hit is not None and t - hit[0] < self.refresh_s - 1e-9:
            return hit[1]  # the upscaled view is still current
        h, w = _low_res(cam.height, cam.width)
        key = (self.sim.scene.cameras[name], h, w)
        view = self._views.get(key)
        if view is None or t - view[0] >= self.refresh_s - 1e-9:
            needs = self._needs[key]
            if needs == {"rgb"}:
                view = (t, self.sim.render(name, h, w), None)
            elif needs == {"depth"}:
                view = (t, None, self.sim.render_depth(name, h, w))
            else:
                view = (t, *self.sim.render_rgbd(name, h, w))
            self._views[key] = view
        if cam.is_depth:
            base = np.asarray(Image.fromarray(view[2]).resize((cam.width, cam.height), Image.NEAREST))
        else:
            small = view[1]
            base = small if (h, w) == (cam.height, cam.width) else np.asarray(
                Image.fromarray(small).resize((cam.width, cam.height), Image.BILINEAR))
            base = self._prepare(name, cam, base)
        self._cache[name] = (view[0], base)
        return base

    def _prepare(self, name: str, cam: Camera, rgb: np.ndarray) -> np.ndarray:
        """A colour base image ready for noise: grey for ``mono8``, levels within the bank's headroom."""
        if cam.encoding == "mono8":
            rgb = np.rint(rgb @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
        return headroom(rgb, self._banks[name].bound)

    # ---- frames --------------------------------------------------------------------------------
    def frame(self, name: str, t: float) -> np.ndarray:
        """The frame of camera ``name`` at simulation time ``t`` seconds, as its encoding stores it:
        (H, W, 3) uint8 RGB (``jpeg``/``png``/``rgb8``) or BGR (``bgr8``); (H, W) uint8 (``mono8``);
        (H, W) uint16 depth in mm (``16UC1``, 0 = no return); (H, W) float32 depth in m
        (``32FC1``, NaN = no return).

        Raises:
            KeyError: unknown camera.
        """
        cam = self.cameras[name]
        if self.mode == "rendered":
            base = self._rendered(name, cam)
            if not cam.is_depth:
                base = self._prepare(name, cam, base)
        else:
            base = self._synthetic(name, cam, t)
        if cam.is_depth:
            z = base.astype(np.float32)
            valid = (z >= DEPTH_MIN_M) & (z <= DEPTH_MAX_M)
            noisy = z + (DEPTH_NOISE_M + DEPTH_NOISE_QUAD * z * z) * self._banks[name].sample()
            if cam.encoding == "16UC1":
                mm = np.clip(np.rint(noisy * 1000.0), 1, 65535).astype(np.uint16)
                return np.where(valid, mm, np.uint16(0))
            return np.where(valid, noisy, np.float32(np.nan)).astype(np.float32)
        img = add_noise_u8(base, self._banks[name])
        return img[..., ::-1].copy() if cam.encoding == "bgr8" else img

    def payload(self, name: str, t: float) -> bytes | np.ndarray:
        """What the camera's message carries at ``t``: encoded bytes for a ``CompressedImage``, the
        pixel array (see :meth:`frame`) for a raw ``Image``."""
        cam = self.cameras[name]
        img = self.frame(name, t)
        if cam.type == "sensor_msgs/msg/CompressedImage":
            return encode_compressed(img, cam.encoding)
        return img
