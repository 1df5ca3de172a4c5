"""Action-free human video: the clip's ``metadata.yaml`` contract and MP4 probing/decoding (PyAV).

A clip is a folder with exactly one ``.mp4`` (an egocentric recording: a head-mounted camera, a
GoPro, a robot head camera driven by a person) and a ``metadata.yaml`` the operator writes
(docs/human_video.md)::

    clip_id: hv-20261110-headcam01-001
    device: {id: headcam-01, model: gopro-hero12}        # camera / device id: the partition's second key
    capture_date: '2026-11-10'
    site: lab-a
    customer: internal
    task: pick up the cup and put it in the bowl
    learning_role: manipulation                          # or locomotion (seed 004's LAM buckets)
    demonstrator: {id: demo-07, consent_ref: consent-hv-0042}
    recorder: {name: hvla-sim-human-video, version: 0.1.0, simulator: mujoco 3.8.1, seed: 0}   # optional
    rights: {data_owner: hvla-lab, license: proprietary, consent_refs: [consent-hv-0042],
             allowed_uses: [internal_training], retention_until: '2031-11-10',
             contains_human_video: true}

:func:`parse_clip_metadata` validates it strictly (a :class:`~hvla_platform.lib.core.contracts.StrictModel`:
an unknown or misspelled key is an error naming the key and the closest valid one) and then the
human-video rules: ``rights.contains_human_video`` must be ``true``, the demonstrator's
``consent_ref`` must be one of ``rights.consent_refs``, and the rights block must be valid
(:meth:`~hvla_platform.lib.core.rights.Rights.from_episode_metadata`). Whether identifiable people
may be used for training is the allowed use ``identifiable_people_training``
(:data:`~hvla_platform.lib.core.rights.IDENTIFIABLE_PEOPLE_USE`); without it faces are blurred
before any release.

:func:`probe_mp4` decodes every frame of the MP4 with PyAV (FFmpeg) and reports the stream's codec,
size, nominal rate and each frame's presentation time, so a clip that does not decode is caught at
ingest; :func:`read_frames` yields the decoded frames as RGB arrays.
"""

from __future__ import annotations

import math
from fractions import Fraction
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

import av
import numpy as np
from pydantic import BeforeValidator, Field, model_validator

from hvla_platform.lib.core.contracts import StrictModel, iso_date_to_str, validate_document
from hvla_platform.lib.core.keys import UnsafeIdError, check_day, check_id
from hvla_platform.lib.core.rights import Rights, RightsBlock, RightsError

_Day = Annotated[str, BeforeValidator(iso_date_to_str)]

#: The learning roles of seed 004: which latent-action model a clip feeds.
LEARNING_ROLES = ("manipulation", "locomotion")
CLIP_METADATA = "metadata.yaml"
VIDEO_SUFFIX = ".mp4"


class HumanVideoError(RightsError):
    """A clip's metadata or video breaks its contract (one line naming the file).

    A :class:`~hvla_platform.lib.core.rights.RightsError`, so code that refuses data without valid
    rights refuses a clip with broken metadata too."""


class DeviceInfo(StrictModel):
    """``device``: the camera that recorded the clip."""

    id: str = Field(description="device id (a lake key segment: the partition's second key)")
    model: str | None = Field(default=None, description="camera model, e.g. gopro-hero12")


class DemonstratorInfo(StrictModel):
    """``demonstrator``: the person in / wearing the camera, and their consent record."""

    id: str | None = Field(default=None, description="pseudonymous demonstrator id")
    consent_ref: str = Field(min_length=1, description="consent record id; must be in rights.consent_refs")


class ClipRecorderInfo(StrictModel):
    """``recorder``: the tool that wrote the clip (optional)."""

    name: str
    version: str | None = None
    simulator: str | None = None
    seed: Annotated[int, Field(strict=True)] | None = None


class ClipMetadata(StrictModel):
    """The contract of a human-video clip's ``metadata.yaml`` (module docstring)."""

    clip_id: str
    device: DeviceInfo
    capture_date: _Day = Field(description="capture day, YYYY-MM-DD")
    site: str
    customer: str | None = None
    task: str = Field(min_length=1, description="what the demonstrator does (the LeRobot task string)")
    learning_role: Literal["manipulation", "locomotion"]
    demonstrator: DemonstratorInfo
    recorder: ClipRecorderInfo | None = None
    notes: str | None = None
    rights: RightsBlock

    @model_validator(mode="after")
    def _human_video_rules(self) -> ClipMetadata:
        if self.rights.contains_human_video is not True:
            raise ValueError("rights.contains_human_video must be true for human video "
                             f"(got {self.rights.contains_human_video!r})")
        refs = self.rights.consent_refs
        refs = [refs] if isinstance(refs, str) else list(refs or [])
        if self.demonstrator.consent_ref not in refs:
            raise ValueError(f"demonstrator.consent_ref {self.demonstrator.consent_ref!r} is not among "
                             f"rights.consent_refs {refs}: human video needs the demonstrator's consent")
        return self


def parse_clip_metadata(data: Any, *, source: str = CLIP_METADATA) -> tuple[ClipMetadata, Rights]:
    """Validate a parsed clip ``metadata.yaml`` (``yaml.safe_load``) and parse its rights.

    Returns:
        ``(metadata, rights)``.

    Raises:
        HumanVideoError: one line naming ``source``: an unknown key (with the closest valid key), a
            missing field, a wrong value, ``contains_human_video`` not true, a demonstrator consent
            not among the rights' consent refs, or an invalid rights block.
    """
    meta = validate_document(ClipMetadata, data, source=source, error_cls=HumanVideoError)
    try:
        rights = Rights.from_episode_metadata(data)
    except RightsError as exc:
        raise HumanVideoError(f"{source}: rights: {exc}") from None
    return meta, rights


def read_clip_identity(metadata: Any) -> tuple[str, str, str]:
    """``(capture_day, device_id, clip_id)`` of a parsed clip ``metadata.yaml``, validated as lake
    key segments (read leniently, before the full contract: landing needs them to file a refusal).

    Raises:
        UnsafeIdError: a field is missing or unsafe in a key.
    """
    if not isinstance(metadata, dict):
        raise UnsafeIdError(f"metadata.yaml must be a mapping, it holds a {type(metadata).__name__}")
    device = metadata.get("device")
    return (check_day(metadata.get("capture_date")),
            check_id(device.get("id") if isinstance(device, dict) else None, "device id"),
            check_id(metadata.get("clip_id"), "clip id"))


@dataclass(frozen=True)
class VideoProbe:
    """What decoding a clip's MP4 found.

    Attributes:
        codec: the video stream's codec name (FFmpeg's, e.g. ``h264``).
        width, height: frame size, pixels.
        fps: the stream's nominal rate (``average_rate``, else ``guessed_rate``), frames/s.
        num_frames: frames decoded.
        pts_s: (N,) float64 presentation time of each decoded frame, seconds from the first frame.
        duration_s: ``pts_s[-1] - pts_s[0] + 1 / fps`` (0 for no frames), seconds.
        size_bytes: the file's size.
    """

    codec: str
    width: int
    height: int
    fps: float
    num_frames: int
    pts_s: np.ndarray = field(repr=False)
    duration_s: float
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form (without the per-frame times)."""
        return {"codec": self.codec, "width": self.width, "height": self.height, "fps": round(self.fps, 6),
                "num_frames": self.num_frames, "duration_s": round(self.duration_s, 6), "size_bytes": self.size_bytes}


def _open_video(path: Path) -> tuple[Any, Any]:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise HumanVideoError(f"{path.name}: cannot open as a video: {exc}") from None
    if not container.streams.video:
        container.close()
        raise HumanVideoError(f"{path.name}: has no video stream")
    return container, container.streams.video[0]


def _frame_times(frames: Iterator[Any], stream: Any) -> Iterator[tuple[float, Any]]:
    base = stream.time_base
    for i, frame in enumerate(frames):
        if frame.pts is None:
            raise HumanVideoError(f"frame {i} has no presentation timestamp")
        yield float(frame.pts * base), frame


def probe_mp4(path: str | Path) -> VideoProbe:
    """Decode every frame of the clip's video stream with PyAV and describe it (:class:`VideoProbe`).

    Raises:
        HumanVideoError: the file does not open, has no video stream, a packet does not decode, a
            frame has no timestamp, or no frame decodes (message starts with the file's name).
    """
    path = Path(path)
    container, stream = _open_video(path)
    try:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else float("nan")
        pts = []
        try:
            for t, _ in _frame_times(container.decode(stream), stream):
                pts.append(t)
        except av.FFmpegError as exc:
            raise HumanVideoError(f"{path.name}: frame {len(pts)} does not decode: {exc}") from None
        except HumanVideoError as exc:
            raise HumanVideoError(f"{path.name}: {exc}") from None
        if not pts:
            raise HumanVideoError(f"{path.name}: no frame decodes")
        if not math.isfinite(fps) or fps <= 0:
            diffs = np.diff(pts)
            fps = 1.0 / float(np.median(diffs)) if len(diffs) and np.median(diffs) > 0 else float("nan")
        t = np.asarray(pts, np.float64) - pts[0]
        duration = float(t[-1] + (1.0 / fps if math.isfinite(fps) and fps > 0 else 0.0))
        return VideoProbe(codec=stream.codec_context.name, width=int(stream.codec_context.width),
                          height=int(stream.codec_context.height), fps=fps, num_frames=len(pts), pts_s=t,
                          duration_s=duration, size_bytes=path.stat().st_size)
    finally:
        container.close()


def read_frames(path: str | Path) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(t_s, frame)`` for every decoded frame: ``t_s`` seconds from the first frame's
    presentation time, ``frame`` an (H, W, 3) uint8 RGB array.

    Raises:
        HumanVideoError: as :func:`probe_mp4`.
    """
    path = Path(path)
    container, stream = _open_video(path)
    try:
        t0 = None
        try:
            for t, frame in _frame_times(container.decode(stream), stream):
                t0 = t if t0 is None else t0
                yield t - t0, frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise HumanVideoError(f"{path.name}: a frame does not decode: {exc}") from None
    finally:
        container.close()


def write_mp4(path: str | Path, frames: Iterator[np.ndarray] | list[np.ndarray], fps: float, *,
              crf: int = 14, pts_s: list[float] | np.ndarray | None = None) -> Path:
    """Encode (H, W, 3) uint8 RGB frames as H.264 (libx264, yuv420p) in an MP4 with PyAV.

    ``pts_s`` (one per frame, seconds, non-decreasing) gives each frame's presentation time; by
    default frame *k* is at *k* / ``fps``. H and W must be even (yuv420p). ``crf`` 14 (x264's
    constant-quality scale, 0 lossless .. 51) keeps a camera's sensor noise, as a camera's own
    high-bitrate recording does; at 23 (x264's default) still frames of a small clip lose it and
    read as repeated frames to the frozen-span check (docs/human_video.md).

    Raises:
        ValueError: a frame is not (H, W, 3) uint8 of the first frame's even size, or ``pts_s`` does
            not have one time per frame.
    """
    path = Path(path)
    frames = list(frames)
    if not frames:
        raise ValueError("write_mp4: no frames")
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"write_mp4: frame size {h}x{w} must be even for yuv420p")
    if pts_s is not None and len(pts_s) != len(frames):
        raise ValueError(f"write_mp4: {len(pts_s)} times for {len(frames)} frames")
    time_base = Fraction(1, 1000) if pts_s is not None else Fraction(1, max(1, round(fps)))
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = time_base
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for i, img in enumerate(frames):
            if img.shape != (h, w, 3) or img.dtype != np.uint8:
                raise ValueError(f"write_mp4: frame {i} is {img.shape} {img.dtype}, expected ({h}, {w}, 3) uint8")
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = round(pts_s[i] * 1000) if pts_s is not None else i
            vf.time_base = time_base
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
