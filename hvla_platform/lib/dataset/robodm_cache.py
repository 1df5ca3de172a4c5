"""Robo-DM ``.vla`` training cache built from a LeRobot v3.0 release, with its manifest and checks.

Layout (seed 002, "robodm-cache")::

    <out_dir>/episode_<NNNNNN>.vla     one per LeRobot episode (episode_index zero-padded to 6)
    <out_dir>/manifest.parquet         one row per .vla (columns: :data:`~hvla_platform.lib.formats.robodm_manifest.MANIFEST_COLUMNS`)

Feature names inside every ``.vla`` (training code depends on these exact names):

=================================  ===============  =========================================
feature                            per-step value   source (LeRobot)
=================================  ===============  =========================================
``observation/state``              (D,) float32     ``observation.state``
``action``                         (A,) float32     ``action``
``observation/locomotion_command`` (4,) float32     ``observation.locomotion_command`` (only
                                                    when the release has it: robot profiles
                                                    with locomotion)
``observation/images/<camera>``    (H, W, 3) uint8  ``observation.images.<camera>`` (decoded,
                                                    at the release's size, e.g. 480 × 640)
=================================  ===============  =========================================

**Bounded memory.** Images are decoded a few frames at a time per camera (:func:`decode_batch`:
:data:`DECODE_BATCH` small frames, fewer large ones) and added
to the ``.vla`` step by step (robodm writes each value to its container as it is added), so the
builder does not hold an episode's images: its memory does not grow with episode length.
:func:`roundtrip_check` reads the sampled ``.vla`` with robodm's own loader (whole episode).

Each step is added with ``timestamp = round(LeRobot timestamp [s] * 1000)`` ms. Low-dimensional
features are stored by robodm as pickled ``rawvideo`` packets (exact); images are encoded with the
configured codec.

**Codec findings (robodm 0.1.0, PyAV 15).** robodm decides per image stream whether the configured
codec can be used with ``CodecConfig.is_codec_config_supported``, which opens a test
``av.CodecContext`` and then calls ``cc.close()``. PyAV 14 removed ``CodecContext.close()``, so
the probe raises ``AttributeError``, its ``except Exception`` returns ``False`` and robodm logs a
warning and **writes every image stream as pickled rawvideo** (exact, but ~10x the size of ffv1
and ~50x of libx264 on our frames). :func:`robodm_codec_probe_fix` replaces that one static
method, only while we write and only if the original probe is broken in this environment, with the
same probe minus the ``close()`` call (the context is released by garbage collection). Whatever
happens, :func:`build_robodm_cache` reads the written codecs back with PyAV
(:func:`written_video_codecs`) and raises :class:`RoboDMCodecError` if an image stream does not use
the configured codec -- no silent fallback.

Codecs robodm 0.1.0 accepts: ``rawvideo``, ``libx264``, ``libx265``, ``libaom-av1``, ``ffv1``
(plus ``auto``). robodm always converts RGB to **yuv420p** before encoding with any of them, so
even ``ffv1`` (lossless on its yuv420p input) loses chroma detail relative to the RGB frames;
only ``rawvideo`` is bit-exact. Default: ``ffv1`` -- intra-only (every frame independently
decodable, no B-frame reordering with robodm's overwritten packet timestamps) and lossless after
the colour conversion, so the cache adds no second lossy generation on top of the release's
H.264. Measured on 20 episodes x 200 frames, 2 cameras 96x128 (release MP4s: 1.6 MB), 2 cores:

=========  ==========  =========  ==================  ====================================
codec      cache size  build      load all (.load)    vs LeRobot frames (mean / max |diff|)
=========  ==========  =========  ==================  ====================================
ffv1       29.1 MB     26.8 s     4.1 s               1.2 / 25 (uint8 units)
libx264    3.7 MB      16.7 s     1.4 s               1.9 / 90
rawvideo   299 MB      5.3 s      0.4 s               0 / 0
=========  ==========  =========  ==================  ====================================

Choose ``libx264`` if cache size or load speed matter more than the extra generation loss.

**Reproducible bytes.** FFmpeg's Matroska muxer gives every file a random segment UID and random
track UIDs, so two builds of the same cache differed in ~100 bytes per ``.vla``. robodm opens its
containers with ``av.open(path, mode="w", format="matroska")`` and no options;
:func:`robodm_bitexact_muxing` makes robodm's ``av.open`` add ``fflags=+bitexact`` for writing
(FFmpeg's reproducible-output flag: deterministic UIDs, no library version string), only while we
write. The encoded packets are unchanged (ffv1, libx264 and pickled rawvideo are deterministic for
the same frames). ``manifest.parquet``'s ``created_at`` is content-derived, not the build time
(:func:`data_created_at`: when the newest episode's recording ended), so two builds of the same
release are byte-identical.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hvla_platform.lib.core import features
from hvla_platform.lib.core.compat import import_lerobot_dataset, import_robodm
from hvla_platform.lib.core.tables import TableError
from hvla_platform.lib.formats.robodm_manifest import read_cache_manifest, write_cache_manifest
from hvla_platform.lib.dataset.lerobot_release import read_hvla_episodes

DEFAULT_VIDEO_CODEC = "ffv1"
#: Codecs robodm 0.1.0's ``CodecConfig`` accepts for image streams.
ROBODM_CODECS = ("rawvideo", "libx264", "libx265", "libaom-av1", "ffv1")
#: Default image tolerance for :func:`roundtrip_check`: max mean |diff| in uint8 units between the
#: .vla images and LeRobot's decoded frames. The LeRobot frames are already yuv420p-decoded; robodm
#: converts them RGB -> yuv420p again (chroma re-subsampling, rounding) and ffv1 is lossless after
#: that, so a mean error of a few units is the conversion alone; 4.0 is ~1.5 % of full scale and
#: fails clearly for wrong frames, misordered frames or wrong colour channels (tens of units).
DEFAULT_IMAGE_ATOL = 4.0
#: Timestamp tolerance when matching LeRobot frames in the video files, s (LeRobot's default).
VIDEO_TOLERANCE_S = 1e-4
STATE, ACTION, LOCO = features.VLA_STATE, features.VLA_ACTION, features.VLA_LOCOMOTION_COMMAND
IMAGE_PREFIX = features.VLA_IMAGE_PREFIX
LEROBOT_KEYS = features.VLA_TO_LEROBOT
LEROBOT_IMAGE_PREFIX = features.IMAGE_PREFIX
#: Most frames decoded at a time per camera (LeRobot's ``decode_video_frames`` batch).
DECODE_BATCH = 64
#: Bytes of decoded uint8 frames one camera's batch may hold (:func:`decode_batch`): 64 frames of
#: 96 × 128, 17 of 480 × 640 (a 480p batch of 64 took the builder's peak RSS from ~1.2 to ~2.2 GB
#: with three cameras, for no speed gain).
DECODE_BATCH_BYTES = 16 << 20


_PATCH_LOCK = threading.RLock()


class RoboDMCacheError(RuntimeError):
    """The cache cannot be built (bad input, missing metadata)."""


class RoboDMCodecError(RoboDMCacheError):
    """An image stream of a written .vla does not use the configured codec."""


@dataclass
class RoboDMCacheResult:
    """What :func:`build_robodm_cache` wrote.

    Attributes:
        out_dir: the cache directory.
        files: .vla paths in episode_index order.
        codecs: ``{vla file name: {feature name: codec}}`` as read back with PyAV.
        num_episodes: number of .vla files.
        bytes: total size of the .vla files.
        manifest_path: ``out_dir/manifest.parquet``.
        probe_fix_applied: whether :func:`robodm_codec_probe_fix` had to patch robodm.
    """

    out_dir: Path
    files: list[Path]
    codecs: dict[str, dict[str, str]]
    num_episodes: int
    bytes: int
    manifest_path: Path | None = None
    probe_fix_applied: bool = False
    frames: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def vla_name(episode_index: int) -> str:
    """``episode_<NNNNNN>.vla``."""
    return f"episode_{int(episode_index):06d}.vla"


def codec_stream_name(encoder: str) -> str:
    """The codec name a stream written with ``encoder`` reports (``libx264`` → ``h264``)."""
    return av.codec.Codec(encoder, "w").canonical_name


def _probe_without_close(width: int, height: int, pix_fmt: str = "yuv420p", codec_name: str = "libx264") -> bool:
    """robodm's codec probe without the ``CodecContext.close()`` call PyAV >= 14 lacks."""
    try:
        cc = av.codec.CodecContext.create(codec_name, "w")
        cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
        cc.time_base = Fraction(1, 30)
        cc.open(strict=True)
        return True
    except Exception:  # noqa: BLE001 - mirrors robodm's probe: unsupported → False
        return False
    finally:
        cc = None  # noqa: F841 - release the test context


def robodm_probe_is_broken() -> bool:
    """True if robodm's codec probe rejects a config this FFmpeg/PyAV clearly supports."""
    robodm = import_robodm()
    cfg = robodm.trajectory.CodecConfig
    return (not cfg.is_codec_config_supported(64, 48, "yuv420p", "ffv1")
            and _probe_without_close(64, 48, "yuv420p", "ffv1"))


@contextlib.contextmanager
def robodm_codec_probe_fix() -> Iterator[bool]:
    """Temporarily replace robodm's broken codec probe (see module docstring); yields whether it did.

    Scope: only ``robodm.trajectory.CodecConfig.is_codec_config_supported``, only for the duration
    of the ``with`` block, only when :func:`robodm_probe_is_broken`; the original is restored on
    exit. Serialised by a process-wide lock, since the patch is visible to all threads.
    """
    robodm = import_robodm()
    cfg = robodm.trajectory.CodecConfig
    with _PATCH_LOCK:
        if not robodm_probe_is_broken():
            yield False
            return
        original = cfg.__dict__["is_codec_config_supported"]
        cfg.is_codec_config_supported = staticmethod(_probe_without_close)
        try:
            yield True
        finally:
            cfg.is_codec_config_supported = original


class _BitexactAV:
    """PyAV as robodm's ``trajectory`` module sees it inside :func:`robodm_bitexact_muxing`: every
    attribute is PyAV's, except that containers opened for writing get ``fflags=+bitexact``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(av, name)

    @staticmethod
    def open(file: Any, mode: str = "r", **kwargs: Any) -> Any:  # noqa: A003 - mirrors av.open
        if str(mode).startswith("w"):
            opts = dict(kwargs.pop("container_options", None) or {})
            flags = opts.get("fflags", "")
            opts["fflags"] = f"{flags}+bitexact" if "bitexact" not in flags else flags
            kwargs["container_options"] = opts
        return av.open(file, mode, **kwargs)


@contextlib.contextmanager
def robodm_bitexact_muxing() -> Iterator[None]:
    """While the block runs, robodm writes its Matroska containers with ``fflags=+bitexact`` (see
    the module docstring): the same frames give the same ``.vla`` bytes.

    Scope: only the ``av`` name inside ``robodm.trajectory`` (robodm's own module global, the one
    its ``Trajectory`` calls ``av.open`` through), only for the block, restored on exit; serialised
    by the same process-wide lock as :func:`robodm_codec_probe_fix`.
    """
    robodm = import_robodm()
    module = robodm.trajectory
    with _PATCH_LOCK:
        original = module.av
        module.av = _BitexactAV()
        try:
            yield
        finally:
            module.av = original


def written_video_codecs(vla_path: str | os.PathLike[str]) -> dict[str, str]:
    """``{feature name: codec name}`` of every stream of a .vla, read with PyAV.

    Codec names are FFmpeg's stream codec names (``h264`` for libx264, ``ffv1``, ``rawvideo``).
    The feature name is robodm's ``FEATURE_NAME`` stream metadata (stream index if absent).
    """
    with av.open(str(vla_path), mode="r") as c:
        return {s.metadata.get("FEATURE_NAME", f"stream{s.index}"): s.codec_context.name for s in c.streams}


def vla_timestamps_ms(vla_path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Packet timestamps per feature of a .vla, int64 ms (robodm's stream time base is 1/1000 s)."""
    out: dict[str, list[int]] = {}
    with av.open(str(vla_path), mode="r") as c:
        names = {s.index: s.metadata.get("FEATURE_NAME", f"stream{s.index}") for s in c.streams}
        for pkt in c.demux():
            if pkt.pts is None or pkt.size == 0:
                continue
            tb = pkt.time_base or Fraction(1, 1000)
            out.setdefault(names[pkt.stream.index], []).append(int(round(pkt.pts * tb * 1000)))
    return {k: np.sort(np.asarray(v, dtype=np.int64)) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# Reading the LeRobot release
# ---------------------------------------------------------------------------------------------

def low_dim_features(info: Mapping[str, Any]) -> dict[str, str]:
    """Robo-DM stream name → LeRobot column of the low-dimensional features a release has:
    ``observation/state`` and ``action`` always, ``observation/locomotion_command`` when the
    release has ``observation.locomotion_command`` (robot profiles with locomotion).

    Raises:
        RoboDMCacheError: ``meta/info.json`` lacks ``observation.state`` or ``action``.
    """
    feats = info["features"]
    missing = [col for col in (LEROBOT_KEYS[STATE], LEROBOT_KEYS[ACTION]) if col not in feats]
    if missing:
        raise RoboDMCacheError(f"the LeRobot dataset has no {missing} feature(s)")
    return {name: col for name, col in LEROBOT_KEYS.items() if col in feats}


def _read_episodes_meta(root: Path) -> list[dict[str, Any]]:
    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    if not files:
        raise RoboDMCacheError(f"{root}/meta/episodes has no Parquet files")
    rows: list[dict[str, Any]] = []
    for f in files:
        t = pq.read_table(f)
        t = t.select([c for c in t.column_names if not c.startswith("stats/")])
        rows.extend(t.to_pylist())
    return sorted(rows, key=lambda r: r["episode_index"])


def _read_frames(root: Path, low_dim: list[str]) -> dict[int, dict[str, np.ndarray]]:
    """Low-dim columns ``low_dim`` per episode from data/**/*.parquet (column-wise), sorted by frame_index."""
    cols = ["episode_index", "frame_index", "timestamp", *low_dim]
    parts: dict[str, list[np.ndarray]] = {c: [] for c in cols}
    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise RoboDMCacheError(f"{root}/data has no Parquet files")
    for f in files:
        t = pq.read_table(f, columns=cols)
        for c in cols:
            arr = t.column(c).combine_chunks()
            if pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type):
                n = len(arr)
                parts[c].append(arr.flatten().to_numpy(zero_copy_only=False).reshape(n, -1))
            else:
                parts[c].append(arr.to_numpy(zero_copy_only=False))
    data = {c: np.concatenate(v) for c, v in parts.items()}
    order = np.lexsort((data["frame_index"], data["episode_index"]))
    data = {c: v[order] for c, v in data.items()}
    out: dict[int, dict[str, np.ndarray]] = {}
    eps = data["episode_index"]
    for e in np.unique(eps):
        m = eps == e
        out[int(e)] = {c: data[c][m] for c in cols}
    return out


def decode_batch(height: int, width: int) -> int:
    """Frames of ``height`` × ``width`` RGB decoded at a time per camera: :data:`DECODE_BATCH`, fewer
    for large frames so that a batch holds at most :data:`DECODE_BATCH_BYTES` (at least 1)."""
    return max(1, min(DECODE_BATCH, DECODE_BATCH_BYTES // max(1, int(height) * int(width) * 3)))


def iter_episode_frames(
    root: Path, info: Mapping[str, Any], ep_meta: Mapping[str, Any], video_key: str, timestamps: np.ndarray,
    *, video_backend: str = "torchcodec", batch: int = DECODE_BATCH,
) -> Iterator[np.ndarray]:
    """Decode one camera of one episode with LeRobot's ``decode_video_frames``, ``batch`` frames at
    a time (bounded memory whatever the episode's length).

    Respects the v3.0 layout: the episode lives in ``videos/<key>/chunk-<c>/file-<f>.mp4`` starting
    at ``from_timestamp``; frame k is looked up at ``from_timestamp + timestamp[k]`` within
    :data:`VIDEO_TOLERANCE_S`.

    Yields:
        (b, H, W, 3) uint8 RGB for frames ``i .. i+b-1`` (b = ``batch``, fewer at the end; LeRobot's
        float frames ``u8 / 255`` mapped back exactly).

    Raises:
        lerobot's ``FrameTimestampError`` if a frame is not found within the tolerance.
    """
    import_lerobot_dataset()
    from lerobot.datasets.video_utils import decode_video_frames

    rel = info["video_path"].format(video_key=video_key,
                                    chunk_index=int(ep_meta[f"videos/{video_key}/chunk_index"]),
                                    file_index=int(ep_meta[f"videos/{video_key}/file_index"]))
    path = root / rel
    start = float(ep_meta[f"videos/{video_key}/from_timestamp"])
    ts = [start + float(t) for t in np.asarray(timestamps, dtype=np.float64)]
    for i in range(0, len(ts), batch):
        frames = decode_video_frames(path, ts[i:i + batch], VIDEO_TOLERANCE_S, video_backend)
        yield (frames.permute(0, 2, 3, 1).numpy() * 255.0).round().clip(0, 255).astype(np.uint8)


def decode_episode_frames(
    root: Path, info: Mapping[str, Any], ep_meta: Mapping[str, Any], video_key: str, timestamps: np.ndarray,
    *, video_backend: str = "torchcodec",
) -> np.ndarray:
    """All frames of one camera of one episode (:func:`iter_episode_frames` concatenated): memory
    grows with the episode; the cache builder streams instead.

    Returns:
        (T, H, W, 3) uint8 RGB.

    Raises:
        lerobot's ``FrameTimestampError`` if a frame is not found within the tolerance.
    """
    out = list(iter_episode_frames(root, info, ep_meta, video_key, timestamps, video_backend=video_backend))
    return np.concatenate(out, axis=0) if out else np.zeros((0,), np.uint8)


# ---------------------------------------------------------------------------------------------
# Building the cache
# ---------------------------------------------------------------------------------------------

def _episode_meta_from_release(root: Path) -> list[dict[str, Any]]:
    return read_hvla_episodes(root)


def data_created_at(episodes: list[Mapping[str, Any]], *, fps: float) -> str:
    """When the newest episode's recording ended, as ISO 8601 UTC with seconds: the largest
    ``start_time_ns + (length - 1) / fps`` over ``episodes`` (dicts with ``episode_id``,
    ``start_time_ns`` (ns since the Unix epoch, as in ``meta/hvla_episodes.parquet``) and
    ``length`` (frames)), truncated to the second. The Robo-DM manifest's ``created_at``: a time
    the data fixes, so that rebuilding the cache never changes its bytes.

    Raises:
        RoboDMCacheError: no episodes, or one has no ``start_time_ns`` (a release written before
            the column existed: pass ``created_at`` explicitly).
    """
    missing = [str(e.get("episode_id", "?")) for e in episodes if e.get("start_time_ns") is None]
    if not episodes or missing:
        raise RoboDMCacheError("cannot derive created_at: episodes without start_time_ns: "
                               f"{missing or '(no episodes)'}; pass created_at explicitly")
    end_ns = max(int(e["start_time_ns"]) + round((int(e["length"]) - 1) * 1e9 / fps) for e in episodes)
    return dt.datetime.fromtimestamp(end_ns // 1_000_000_000, tz=dt.timezone.utc).isoformat(timespec="seconds")


def build_robodm_cache(
    lerobot_root: Path,
    repo_id: str,
    out_dir: Path,
    *,
    release: str,
    video_codec: str = DEFAULT_VIDEO_CODEC,
    episode_meta: list[dict[str, Any]] | None = None,
    converter_version: str,
    created_at: str | None = None,
    video_backend: str = "torchcodec",
) -> RoboDMCacheResult:
    """Convert every episode of a LeRobot v3.0 dataset into ``out_dir/episode_<NNNNNN>.vla``.

    Low-dimensional columns (:func:`low_dim_features`: the locomotion command only when the
    release has it) are read column-wise from ``data/**/*.parquet``; images are decoded
    :func:`decode_batch` frames at a time per camera (:func:`iter_episode_frames`) and added as they
    are decoded, so an episode's images are never all in memory. Each .vla is written with
    ``robodm.Trajectory(path, mode="w", video_codec=video_codec, time_unit="ms",
    enforce_monotonic=False)`` (robodm's monotonic enforcement is per trajectory, not per feature:
    it would shift the 2nd..nth feature of a step by +1 ms each), muxed reproducibly
    (:func:`robodm_bitexact_muxing`). Then ``manifest.parquet``, whose QA status, quality score
    and outcome columns come from ``episode_meta`` (by default the release's own
    ``meta/hvla_episodes.parquet``, which the release build fills from QA and the recordings).

    Args:
        lerobot_root: LeRobot dataset root.
        repo_id: its repo id (manifest ``source_repo_id``).
        out_dir: cache directory; must not exist or be empty.
        release: release name/version (manifest ``source_dataset_version``).
        video_codec: robodm image codec, one of :data:`ROBODM_CODECS`.
        episode_meta: dicts with ``episode_index``, ``episode_id``, ``robot_id``, ``split`` and
            optionally ``task``, ``qa_status`` (default ``unchecked``), ``quality_score``,
            ``success``, ``min_distance_m`` (default null), one per LeRobot episode; default: the
            release's ``meta/hvla_episodes.parquet``.
        converter_version: recorded in the manifest.
        created_at: the manifest's ``created_at`` (ISO 8601 UTC); default :func:`data_created_at`
            of the episodes (content-derived, so a rebuild gives the same bytes). Never pass the
            current time.
        video_backend: LeRobot decoding backend.

    Returns:
        :class:`RoboDMCacheResult`.

    Raises:
        ValueError: unknown ``video_codec``.
        RoboDMCacheError: ``out_dir`` not empty, metadata missing or inconsistent, frame count of a
            decoded camera differs from the episode length, no ``created_at`` given and an episode
            has no ``start_time_ns`` to derive it from.
        RoboDMCodecError: an image stream was written with another codec than ``video_codec``
            (e.g. robodm's silent rawvideo fallback).
    """
    if video_codec not in ROBODM_CODECS:
        raise ValueError(f"video_codec {video_codec!r} is not one of robodm's {ROBODM_CODECS}")
    root, out_dir = Path(lerobot_root), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise RoboDMCacheError(f"{out_dir} is not empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    robodm = import_robodm()
    info = json.loads((root / "meta" / "info.json").read_text())
    video_keys = [k for k, ft in info["features"].items() if ft["dtype"] == "video"]
    low_keys = low_dim_features(info)
    lr_eps = _read_episodes_meta(root)
    frames = _read_frames(root, list(low_keys.values()))
    tasks_by_index = {r["episode_index"]: (r.get("tasks") or [""])[0] for r in lr_eps}
    metas = episode_meta if episode_meta is not None else _episode_meta_from_release(root)
    by_index = {int(m["episode_index"]): dict(m) for m in metas}
    lr_indices = [int(r["episode_index"]) for r in lr_eps]
    if sorted(by_index) != lr_indices:
        raise RoboDMCacheError(f"episode_meta covers episode indices {sorted(by_index)}, "
                               f"the dataset has {lr_indices}")
    expected_codec = codec_stream_name(video_codec)
    if created_at is None:
        created_at = data_created_at([{**by_index[int(r["episode_index"])], "length": r["length"]} for r in lr_eps],
                                     fps=float(info["fps"]))
    files: list[Path] = []
    codecs: dict[str, dict[str, str]] = {}
    rows: list[dict[str, Any]] = []
    total_frames = 0
    with robodm_codec_probe_fix() as fixed, robodm_bitexact_muxing():
        for ep in lr_eps:
            idx = int(ep["episode_index"])
            cols = frames.get(idx)
            if cols is None or len(cols["frame_index"]) != int(ep["length"]):
                raise RoboDMCacheError(f"episode {idx}: {0 if cols is None else len(cols['frame_index'])} "
                                       f"frame rows, meta/episodes says {ep['length']}")
            ts = cols["timestamp"].astype(np.float64)
            ts_ms = np.rint(ts * 1000.0).astype(np.int64)
            if np.any(np.diff(ts_ms) <= 0):
                raise RoboDMCacheError(f"episode {idx}: timestamps are not strictly increasing in ms")
            image_names = {vk: IMAGE_PREFIX + vk[len(LEROBOT_IMAGE_PREFIX):] for vk in video_keys}
            batch_len = min([decode_batch(*info["features"][vk]["shape"][:2]) for vk in video_keys],
                            default=DECODE_BATCH)
            decoders = {vk: iter_episode_frames(root, info, ep, vk, ts, video_backend=video_backend, batch=batch_len)
                        for vk in video_keys}
            low = {name: np.ascontiguousarray(cols[col], dtype=np.float32) for name, col in low_keys.items()}
            path = out_dir / vla_name(idx)
            traj = robodm.Trajectory(str(path), mode="w", video_codec=video_codec, time_unit="ms",
                                     enforce_monotonic=False)
            try:
                # a batch of frames of every camera at a time, added step by step: the episode's
                # images are never all in memory
                for start in range(0, len(ts), batch_len):
                    stop = min(start + batch_len, len(ts))
                    batch = {}
                    for vk, frames_it in decoders.items():
                        imgs = next(frames_it, None)
                        got = 0 if imgs is None else int(imgs.shape[0])
                        if got != stop - start:
                            raise RoboDMCacheError(f"episode {idx} {vk}: decoded {start + got} frames, "
                                                   f"expected {len(ts)}")
                        batch[vk] = imgs
                    for k in range(start, stop):
                        t = int(ts_ms[k])
                        for name, arr in low.items():
                            traj.add(name, arr[k], timestamp=t, time_unit="ms")
                        for vk, imgs in batch.items():
                            traj.add(image_names[vk], imgs[k - start], timestamp=t, time_unit="ms")
                    del batch
            except BaseException:
                traj.close()
                path.unlink(missing_ok=True)  # no half-written .vla is left behind
                raise
            traj.close()
            images = dict.fromkeys(image_names.values())
            written = written_video_codecs(path)
            wrong = {n: c for n, c in written.items() if n.startswith(IMAGE_PREFIX) and c != expected_codec}
            if wrong:
                raise RoboDMCodecError(
                    f"{path.name}: image stream(s) written as {wrong}, configured {video_codec!r} "
                    f"(stream codec {expected_codec!r}); robodm fell back -- see robodm_cache docstring")
            missing = set(low) | set(images)
            missing -= set(written)
            if missing:
                raise RoboDMCacheError(f"{path.name}: streams {sorted(missing)} missing from the .vla")
            files.append(path)
            codecs[path.name] = written
            total_frames += len(ts)
            m = by_index[idx]
            ep_id = str(m.get("episode_id", ""))
            rows.append({
                "vla_path": path.name, "source_repo_id": repo_id, "source_dataset_version": release,
                "source_episode_index": idx, "source_episode_length": int(ep["length"]),
                "task": str(m.get("task") or tasks_by_index.get(idx, "")),
                "robot_id": str(m.get("robot_id", "")), "converter_version": converter_version,
                "created_at": created_at, "qa_status": str(m.get("qa_status") or "unchecked"),
                "episode_id": ep_id, "split": str(m.get("split", "")), "video_codec": video_codec,
                "bytes": path.stat().st_size, "quality_score": m.get("quality_score"),
                "success": m.get("success"), "min_distance_m": m.get("min_distance_m"),
            })
    manifest_path = write_cache_manifest(out_dir, rows)
    return RoboDMCacheResult(out_dir=out_dir, files=files, codecs=codecs, num_episodes=len(files),
                             bytes=sum(p.stat().st_size for p in files), manifest_path=manifest_path,
                             probe_fix_applied=fixed, frames=total_frames)


def check_cache(out_dir: Path, *, video_codec: str, expected_episode_indices: list[int]) -> list[str]:
    """Structural checks of a cache directory; empty list = OK.

    Checks that the manifest lists exactly one .vla per expected episode index, every listed file
    exists with the manifest's size, and every image stream uses ``video_codec``.
    """
    problems: list[str] = []
    out_dir = Path(out_dir)
    try:
        rows = read_cache_manifest(out_dir)
    except (OSError, pa.ArrowInvalid, TableError) as exc:
        return [f"manifest.parquet unreadable: {exc}"]
    got = [r["source_episode_index"] for r in rows]
    if got != sorted(expected_episode_indices):
        problems.append(f"manifest episodes {got} != expected {sorted(expected_episode_indices)}")
    on_disk = sorted(p.name for p in out_dir.glob("*.vla"))
    if on_disk != sorted(r["vla_path"] for r in rows):
        problems.append(f".vla files on disk {on_disk} do not match the manifest")
    expected_codec = codec_stream_name(video_codec)
    for r in rows:
        p = out_dir / r["vla_path"]
        if not p.exists():
            problems.append(f"{r['vla_path']}: missing")
            continue
        if p.stat().st_size != r["bytes"]:
            problems.append(f"{r['vla_path']}: size {p.stat().st_size} != manifest {r['bytes']}")
        for name, codec in written_video_codecs(p).items():
            if name.startswith(IMAGE_PREFIX) and codec != expected_codec:
                problems.append(f"{r['vla_path']}: {name} is {codec}, expected {expected_codec}")
    return problems


def roundtrip_check(
    vla_path: str | os.PathLike[str],
    lerobot_root: Path,
    repo_id: str,
    episode_index: int,
    *,
    image_atol: float = DEFAULT_IMAGE_ATOL,
    video_backend: str = "torchcodec",
) -> dict[str, Any]:
    """Compare a .vla with the same episode read back through ``LeRobotDataset``.

    The .vla is loaded by robodm itself, ``Trajectory(path).load(return_type="numpy")`` (what a
    consumer of the cache runs: the check proves robodm reads our files, so it holds the sampled
    episode in memory); the reference with ``LeRobotDataset(repo_id, root, episodes=[episode_index],
    video_backend=...)`` item by item (an independent read path from the converter's column
    reader). State, action and (when the release has it) locomotion command must be equal
    (float32); packet timestamps must equal ``round(timestamp * 1000)`` ms; for each camera the
    mean |diff| over all pixels (uint8 units) must be ``<= image_atol`` (default
    :data:`DEFAULT_IMAGE_ATOL`, see there for why).

    Returns:
        ``{"episode_index", "num_frames", "ok": bool, "problems": [str], "state_equal",
        "action_equal", "locomotion_equal" (None when the release has no locomotion command),
        "timestamps_equal", "image_atol", "images": {feature: {"mean_abs_diff", "max_abs_diff"}}}``.

    Raises:
        whatever robodm, LeRobot or PyAV raise when a file cannot be read.
    """
    robodm = import_robodm()
    LeRobotDataset = import_lerobot_dataset()
    data = robodm.Trajectory(str(vla_path)).load(return_type="numpy")
    idx = int(episode_index)
    ds = LeRobotDataset(repo_id, root=Path(lerobot_root), episodes=[idx], video_backend=video_backend)
    items = [ds[i] for i in range(len(ds))]
    items = [it for it in items if int(it["episode_index"]) == idx]
    items.sort(key=lambda it: int(it["frame_index"]))
    problems: list[str] = []
    report: dict[str, Any] = {"episode_index": idx, "num_frames": len(items),
                              "image_atol": float(image_atol), "images": {}}
    if not items:
        problems.append(f"LeRobot has no frames of episode {idx}")
    low_names = [n for n in (STATE, ACTION, LOCO) if LEROBOT_KEYS[n] in ds.meta.features]
    for flag, name in (("state_equal", STATE), ("action_equal", ACTION), ("locomotion_equal", LOCO)):
        if name not in low_names:
            report[flag] = None  # the release has no such feature (a robot without locomotion)
            continue
        ref = np.stack([it[LEROBOT_KEYS[name]].numpy() for it in items]).astype(np.float32) if items else None
        got = data.get(name)
        eq = (ref is not None and got is not None and got.dtype == np.float32 and got.shape == ref.shape
              and np.array_equal(got, ref))
        report[flag] = bool(eq)
        if not eq:
            problems.append(f"{name}: differs from LeRobot "
                            f"({None if got is None else (got.shape, got.dtype)} vs {None if ref is None else ref.shape})")
    ref_ms = np.rint(np.array([float(it["timestamp"]) for it in items]) * 1000).astype(np.int64)
    ts = vla_timestamps_ms(vla_path)
    ts_ok = all(np.array_equal(ts.get(n, np.array([])), ref_ms) for n in low_names)
    report["timestamps_equal"] = bool(ts_ok)
    if not ts_ok:
        problems.append("low-dimensional packet timestamps differ from LeRobot's (ms)")
    for key in ds.meta.video_keys:
        name = IMAGE_PREFIX + key[len(LEROBOT_IMAGE_PREFIX):]
        got = data.get(name)
        shape = (len(items), *tuple(ds.meta.features[key]["shape"]))
        if got is None or not items or got.shape[0] != len(items) or got.dtype != np.uint8:
            problems.append(f"{name}: {None if got is None else (got.shape, got.dtype)}, expected {len(items)} "
                            f"uint8 frames (LeRobot: {shape[1:]})")
            continue
        total, mx, count = 0.0, 0, 0
        for k, it in enumerate(items):  # one frame at a time: no second decoded copy of the episode
            ref = (it[key].permute(1, 2, 0).numpy() * 255.0).round().astype(np.int16)
            if got[k].shape != ref.shape:
                problems.append(f"{name}: frame {k} is {got[k].shape}, LeRobot's {ref.shape}")
                break
            d = np.abs(got[k].astype(np.int16) - ref)
            total += float(d.sum(dtype=np.float64))
            mx = max(mx, int(d.max()))
            count += int(d.size)
        else:
            mean = total / count if count else 0.0
            report["images"][name] = {"mean_abs_diff": mean, "max_abs_diff": mx}
            if mean > image_atol:
                problems.append(f"{name}: mean |diff| {mean:.2f} > {image_atol}")
    report["problems"] = problems
    report["ok"] = not problems
    return report
