"""Robo-DM ``.vla`` training cache built from a release's **source frames** (the HDF5 episodes the
release was written from), with its manifest and checks.

Layout (seed 002, "robodm-cache")::

    <out_dir>/episode_<NNNNNN>.vla     one per LeRobot episode (episode_index zero-padded to 6)
    <out_dir>/manifest.parquet         one row per .vla (columns: :data:`~hvla_platform.lib.formats.robodm_manifest.MANIFEST_COLUMNS`)

Feature names inside every ``.vla`` (training code depends on these exact names):

=================================  ===============  =========================================
feature                            per-step value   source
=================================  ===============  =========================================
``observation/state``              (D,) float32     the release's ``observation.state`` (Parquet)
``action``                         (A,) float32     the release's ``action`` (Parquet)
``observation/locomotion_command`` (4,) float32     the release's ``observation.locomotion_command``
                                                    (only when the release has it)
``observation/images/<camera>``    (H, W, 3) uint8  the camera's frames **decoded from the episode
                                                    HDF5** (format 3: the recording's JPEG/PNG
                                                    bytes; :class:`~hvla_platform.lib.formats.episode_h5.EpisodeReader`)
=================================  ===============  =========================================

**Source frames, not the release's MP4s.** The release's ``meta/hvla_episodes.parquet`` names, per
``episode_index``, the lake key and sha256 of the HDF5 the episode was written from
(``hdf5_key``, ``hdf5_sha256``; the release manifest's inputs name the same keys and hashes). The
builder gets those files (``hdf5_files``: lake key → local path), checks each one's sha256 against
the release's record and decodes its frames one at a time
(:meth:`~hvla_platform.lib.formats.episode_h5.EpisodeReader.iter_frames`: a repeated source frame
is decoded once). No MP4 of the release is opened, so the cache adds one encoding generation to
the source frames (like the release itself), not a second one on top of the release's H.264. The
low-dimensional features are the release's own Parquet values (exact, so training sees the
release's numbers); frame ``k`` of the HDF5 is frame ``k`` of the release's episode (the release
writer feeds ``iter_frames`` in order, and the lengths are checked).

**Bounded memory.** One decoded frame per camera at a time is added to the ``.vla`` (robodm writes
each value to its container as it is added, then transcodes the container packet by packet on
close), so the builder's memory does not grow with episode length or episode count.

Each step is added with ``timestamp = round(LeRobot timestamp [s] * 1000)`` ms. Low-dimensional
features are stored by robodm as pickled ``rawvideo`` packets (exact); images are encoded with the
configured codec.

**Codec: libx264 (CRF 23, preset medium, zerolatency, 1 thread), chosen by measurement.** robodm
0.1.0 accepts ``rawvideo``, ``libx264``, ``libx265``, ``libaom-av1``, ``ffv1`` (plus ``auto``), and
converts RGB to yuv420p before encoding with any of them (only ``rawvideo`` is bit-exact).
Measured on the demo release (8 episodes, 720 frames, 2 cameras 96 × 128; release 0.95 MB of
which MP4 0.70 MB), images only (the low-dimensional streams add ~0.3 MB to every variant), mean
|diff| against the HDF5's decoded frames in uint8 units:

===========================  ==========  ==========  ====================  ==============
codec                        images      build       robodm load           vs source mean
===========================  ==========  ==========  ====================  ==============
libx264 CRF 23 (B-frames)    0.50 MB     2.6 s       1,605 frames/s        2.8
libx264 CRF 23 zerolatency   ~0.75 MB    —           —                     2.3–2.8
libx264 CRF 30               0.31 MB     2.1 s       1,297 frames/s        3.9
ffv1                         9.40 MB     2.3 s       646 frames/s          1.4
libaom-av1                   1.01 MB     209 s       830 frames/s          2.9
rawvideo                     ~50 MB      —           —                     0
===========================  ==========  ==========  ====================  ==============

The whole cache (images + low-dimensional streams) with the default is **1.12 × the release's
bytes** (1.06 vs 0.95 MB; ffv1, the previous default: 9–10 ×); :class:`RoboDMCacheResult` and
the published manifest state the ratio of every build (``bytes_ratio``). Why ``zerolatency``:
robodm stamps every packet the encoder returns with the timestamp of the frame just fed, and the
packets it flushes on close with the *wall-clock* time since the trajectory was opened, so an
encoder that delays frames (B-frames, lookahead) gives wrong packet timestamps and a segment
duration that differs between two builds of the same frames (measured: same packets, different
bytes); with zerolatency every packet carries its own frame's timestamp and the bytes are
reproducible, for ~50 % more image bytes than with B-frames. Its loss is of the same order as
the release's own H.264 (CRF 30, GOP 2). Training does not decode the cache per step: it decodes
each frame once into a local frame store (:mod:`hvla_platform.lib.training.frame_store`). What
training sees differs from the release by at most :data:`DEFAULT_IMAGE_ATOL` (mean |diff|
against LeRobot's decoded frames, :func:`roundtrip_check`; measured 3.1–4.0 on the demo) and from
the source by at most :data:`DEFAULT_SOURCE_ATOL` (:func:`source_check`; measured 2.3–2.8); both
are checked on a sampled episode of every build. ``ffv1`` stays available
(``video_codec="ffv1"``) where a near-lossless cache matters more than its size.

**Codec probe fix (robodm 0.1.0, PyAV 15).** robodm decides per image stream whether the
configured codec can be used with ``CodecConfig.is_codec_config_supported``, which opens a test
``av.CodecContext`` and then calls ``cc.close()``. PyAV 14 removed ``CodecContext.close()``, so
the probe raises ``AttributeError``, its ``except Exception`` returns ``False`` and robodm logs a
warning and **writes every image stream as pickled rawvideo**. :func:`robodm_codec_probe_fix`
replaces that one static method, only while we write and only if the original probe is broken in
this environment, with the same probe minus the ``close()`` call. Whatever happens,
:func:`build_robodm_cache` reads the written codecs back with PyAV (:func:`written_video_codecs`)
and raises :class:`RoboDMCodecError` if an image stream does not use the configured codec -- no
silent fallback.

**Reproducible bytes.** FFmpeg's Matroska muxer gives every file a random segment UID and random
track UIDs, so two builds of the same cache differed in ~100 bytes per ``.vla``. robodm opens its
containers with ``av.open(path, mode="w", format="matroska")`` and no options;
:func:`robodm_bitexact_muxing` makes robodm's ``av.open`` add ``fflags=+bitexact`` for writing
(FFmpeg's reproducible-output flag: deterministic UIDs, no library version string), only while we
write. The encoded packets are deterministic for the same frames (libx264 with a fixed thread
count, ffv1, pickled rawvideo). ``manifest.parquet``'s ``created_at`` is content-derived, not the
build time (:func:`data_created_at`: when the newest episode's recording ended), so two builds of
the same release are byte-identical.
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
from hvla_platform.lib.core.lake import sha256_file
from hvla_platform.lib.core.tables import TableError
from hvla_platform.lib.formats.episode_h5 import EpisodeReader
from hvla_platform.lib.formats.robodm_manifest import read_cache_manifest, write_cache_manifest
from hvla_platform.lib.dataset.lerobot_release import read_hvla_episodes

DEFAULT_VIDEO_CODEC = "libx264"
#: Codecs robodm 0.1.0's ``CodecConfig`` accepts for image streams.
ROBODM_CODECS = ("rawvideo", "libx264", "libx265", "libaom-av1", "ffv1")
#: Encoder options per codec given to robodm's ``Trajectory(codec_options=...)``: for libx264
#: robodm's own quality (CRF 23, preset medium) with ``tune=zerolatency`` (no B-frames, no
#: lookahead: every frame comes out of the encoder when it goes in, see the module docstring) and
#: ``threads=1`` (the bytes do not depend on the machine's core count). Codecs not listed get
#: robodm's defaults.
CODEC_OPTIONS: dict[str, dict[str, str]] = {
    "libx264": {"crf": "23", "preset": "medium", "tune": "zerolatency", "threads": "1"},
}
#: Default image tolerance for :func:`roundtrip_check`: max mean |diff| in uint8 units between the
#: .vla images and the release's frames as LeRobot decodes them. Both are one lossy generation
#: from the same source frames (the release: H.264 CRF 30, GOP 2; the cache: H.264 CRF 23), so
#: they differ by the two codecs' losses: measured 2.0–3.3 on the demo's rendered frames and ~4–5 on
#: the tests' synthetic textured frames at 48 × 64; 6.0 (~2.4 % of full scale) fails clearly for
#: wrong, misordered or colour-swapped frames (tens of units).
DEFAULT_IMAGE_ATOL = 6.0
#: Default tolerance for :func:`source_check`: max mean |diff| (uint8 units) between the .vla
#: images and the HDF5's decoded source frames (the cache's own encoding loss: yuv420p + CRF 23;
#: measured 2.8 on the demo release, ~3–4 on the tests' textured frames).
DEFAULT_SOURCE_ATOL = 5.0
STATE, ACTION, LOCO = features.VLA_STATE, features.VLA_ACTION, features.VLA_LOCOMOTION_COMMAND
IMAGE_PREFIX = features.VLA_IMAGE_PREFIX
LEROBOT_KEYS = features.VLA_TO_LEROBOT
LEROBOT_IMAGE_PREFIX = features.IMAGE_PREFIX


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
        frames: frames (steps) written over all episodes.
        release_bytes: total size of the release's files (every file under its root: Parquet,
            MP4, metadata, card), bytes.
        bytes_ratio: ``bytes / release_bytes`` (how much larger the cache is than the release).
        sources: ``{vla file name: {"hdf5_key", "hdf5_sha256"}}``: the HDF5 each file was built from.
        extra: free-form.
    """

    out_dir: Path
    files: list[Path]
    codecs: dict[str, dict[str, str]]
    num_episodes: int
    bytes: int
    manifest_path: Path | None = None
    probe_fix_applied: bool = False
    frames: int = 0
    release_bytes: int = 0
    bytes_ratio: float = 0.0
    sources: dict[str, dict[str, str]] = field(default_factory=dict)
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


# ---------------------------------------------------------------------------------------------
# Building the cache
# ---------------------------------------------------------------------------------------------

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


def tree_bytes(root: str | os.PathLike[str]) -> int:
    """Total size in bytes of every file under ``root`` (hard links counted once per path)."""
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


def local_hdf5_files(lerobot_root: Path, paths: list[str | os.PathLike[str]]) -> dict[str, Path]:
    """Map the release's ``hdf5_key`` of every episode to one of the local files ``paths``, matched by
    sha256 (the release records each episode's ``hdf5_sha256`` in ``meta/hvla_episodes.parquet``).
    For callers that hold the HDF5 files the release was built from but not their lake keys.

    Raises:
        RoboDMCacheError: an episode's HDF5 is not among ``paths``.
    """
    by_sha = {sha256_file(p): Path(p) for p in paths}
    out: dict[str, Path] = {}
    missing = []
    for r in read_hvla_episodes(Path(lerobot_root)):
        p = by_sha.get(str(r.get("hdf5_sha256") or ""))
        if p is None:
            missing.append(r["episode_id"])
        else:
            out[str(r["hdf5_key"])] = p
    if missing:
        raise RoboDMCacheError(f"no local HDF5 file matches the sha256 the release records for episode(s) {missing}")
    return out


def _episode_source(row: Mapping[str, Any], hdf5_files: Mapping[str, str | os.PathLike[str]]) -> Path:
    """The local HDF5 of one ``meta/hvla_episodes.parquet`` row, its sha256 checked."""
    key = str(row.get("hdf5_key") or "")
    if key not in hdf5_files:
        raise RoboDMCacheError(f"episode {row['episode_index']} ({row.get('episode_id')}): no local file for its "
                               f"HDF5 {key!r} (hdf5_files has {len(hdf5_files)} key(s))")
    path = Path(hdf5_files[key])
    want = row.get("hdf5_sha256")
    if want and sha256_file(path) != want:
        raise RoboDMCacheError(f"episode {row['episode_index']}: {path} is not the HDF5 the release was built from "
                               f"(sha256 differs from {key}'s {str(want)[:12]}…)")
    return path


def build_robodm_cache(
    lerobot_root: Path,
    repo_id: str,
    out_dir: Path,
    *,
    release: str,
    hdf5_files: Mapping[str, str | os.PathLike[str]],
    video_codec: str = DEFAULT_VIDEO_CODEC,
    codec_options: Mapping[str, str] | None = None,
    episode_meta: list[dict[str, Any]] | None = None,
    converter_version: str,
    created_at: str | None = None,
) -> RoboDMCacheResult:
    """Convert every episode of a release into ``out_dir/episode_<NNNNNN>.vla`` from its source HDF5.

    Low-dimensional columns (:func:`low_dim_features`: the locomotion command only when the
    release has it) are read column-wise from the release's ``data/**/*.parquet``; images are
    decoded from the episode's HDF5 one frame at a time (module docstring: "Source frames") and
    added as they are decoded. The release's MP4s are never opened. Each .vla is written with
    ``robodm.Trajectory(path, mode="w", video_codec=video_codec, codec_options=..., time_unit="ms",
    enforce_monotonic=False)`` (robodm's monotonic enforcement is per trajectory, not per feature:
    it would shift the 2nd..nth feature of a step by +1 ms each), muxed reproducibly
    (:func:`robodm_bitexact_muxing`). Then ``manifest.parquet``, whose QA status, quality score
    and outcome columns come from ``episode_meta`` (by default the release's own
    ``meta/hvla_episodes.parquet``, which the release build fills from QA and the recordings).

    Args:
        lerobot_root: the release's LeRobot dataset root (its Parquet and metadata are read).
        repo_id: its repo id (manifest ``source_repo_id``).
        out_dir: cache directory; must not exist or be empty.
        release: release name/version (manifest ``source_dataset_version``).
        hdf5_files: lake key (``hdf5_key`` of ``meta/hvla_episodes.parquet``) → local path of every
            episode's HDF5 (:func:`local_hdf5_files` builds it from a list of files); each file's
            sha256 must equal the release's ``hdf5_sha256``.
        video_codec: robodm image codec, one of :data:`ROBODM_CODECS`.
        codec_options: encoder options (default :data:`CODEC_OPTIONS` of the codec).
        episode_meta: dicts with ``episode_index``, ``episode_id``, ``robot_id``, ``split`` and
            optionally ``task``, ``qa_status`` (default ``unchecked``), ``quality_score``,
            ``success``, ``min_distance_m`` (default null), one per LeRobot episode; default: the
            release's ``meta/hvla_episodes.parquet``.
        converter_version: recorded in the manifest.
        created_at: the manifest's ``created_at`` (ISO 8601 UTC); default :func:`data_created_at`
            of the episodes (content-derived, so a rebuild gives the same bytes). Never pass the
            current time.

    Returns:
        :class:`RoboDMCacheResult` (with ``bytes_ratio``: cache bytes / release bytes).

    Raises:
        ValueError: unknown ``video_codec``.
        RoboDMCacheError: ``out_dir`` not empty, metadata missing or inconsistent, an episode's HDF5
            missing from ``hdf5_files`` or not the one the release was built from (sha256), its
            frame count or a camera's size differs from the release's, no ``created_at`` given and
            an episode has no ``start_time_ns`` to derive it from.
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
    opts = dict(CODEC_OPTIONS.get(video_codec, {}) if codec_options is None else codec_options)
    info = json.loads((root / "meta" / "info.json").read_text())
    video_keys = [k for k, ft in info["features"].items() if ft["dtype"] == "video"]
    cameras = {vk: vk[len(LEROBOT_IMAGE_PREFIX):] for vk in video_keys}
    low_keys = low_dim_features(info)
    lr_eps = _read_episodes_meta(root)
    frames = _read_frames(root, list(low_keys.values()))
    tasks_by_index = {r["episode_index"]: (r.get("tasks") or [""])[0] for r in lr_eps}
    sources = {int(r["episode_index"]): r for r in read_hvla_episodes(root)}
    metas = episode_meta if episode_meta is not None else list(sources.values())
    by_index = {int(m["episode_index"]): dict(m) for m in metas}
    lr_indices = [int(r["episode_index"]) for r in lr_eps]
    if sorted(by_index) != lr_indices:
        raise RoboDMCacheError(f"episode_meta covers episode indices {sorted(by_index)}, "
                               f"the dataset has {lr_indices}")
    if sorted(sources) != lr_indices:
        raise RoboDMCacheError(f"meta/hvla_episodes.parquet covers episode indices {sorted(sources)}, "
                               f"the dataset has {lr_indices}")
    expected_codec = codec_stream_name(video_codec)
    if created_at is None:
        created_at = data_created_at([{**by_index[int(r["episode_index"])], "length": r["length"]} for r in lr_eps],
                                     fps=float(info["fps"]))
    files: list[Path] = []
    codecs: dict[str, dict[str, str]] = {}
    used: dict[str, dict[str, str]] = {}
    rows: list[dict[str, Any]] = []
    total_frames = 0
    with robodm_codec_probe_fix() as fixed, robodm_bitexact_muxing():
        for ep in lr_eps:
            idx = int(ep["episode_index"])
            cols = frames.get(idx)
            if cols is None or len(cols["frame_index"]) != int(ep["length"]):
                raise RoboDMCacheError(f"episode {idx}: {0 if cols is None else len(cols['frame_index'])} "
                                       f"frame rows, meta/episodes says {ep['length']}")
            ts_ms = np.rint(cols["timestamp"].astype(np.float64) * 1000.0).astype(np.int64)
            if np.any(np.diff(ts_ms) <= 0):
                raise RoboDMCacheError(f"episode {idx}: timestamps are not strictly increasing in ms")
            h5_path = _episode_source(sources[idx], hdf5_files)
            low = {name: np.ascontiguousarray(cols[col], dtype=np.float32) for name, col in low_keys.items()}
            path = out_dir / vla_name(idx)
            with EpisodeReader(h5_path) as reader:
                _check_source(reader, info, cameras, len(ts_ms), idx)
                streams = {IMAGE_PREFIX + cam: reader.iter_frames(cam) for cam in cameras.values()}
                traj = robodm.Trajectory(str(path), mode="w", video_codec=video_codec, codec_options=opts,
                                         time_unit="ms", enforce_monotonic=False)
                try:
                    for k in range(len(ts_ms)):  # one decoded frame per camera at a time
                        t = int(ts_ms[k])
                        for name, arr in low.items():
                            traj.add(name, arr[k], timestamp=t, time_unit="ms")
                        for name, it in streams.items():
                            traj.add(name, next(it), timestamp=t, time_unit="ms")
                except BaseException:
                    traj.close()
                    path.unlink(missing_ok=True)  # no half-written .vla is left behind
                    raise
                traj.close()
            written = written_video_codecs(path)
            wrong = {n: c for n, c in written.items() if n.startswith(IMAGE_PREFIX) and c != expected_codec}
            if wrong:
                raise RoboDMCodecError(
                    f"{path.name}: image stream(s) written as {wrong}, configured {video_codec!r} "
                    f"(stream codec {expected_codec!r}); robodm fell back -- see robodm_cache docstring")
            missing = (set(low) | {IMAGE_PREFIX + c for c in cameras.values()}) - set(written)
            if missing:
                raise RoboDMCacheError(f"{path.name}: streams {sorted(missing)} missing from the .vla")
            files.append(path)
            codecs[path.name] = written
            used[path.name] = {"hdf5_key": str(sources[idx]["hdf5_key"]),
                               "hdf5_sha256": str(sources[idx].get("hdf5_sha256") or "")}
            total_frames += len(ts_ms)
            m = by_index[idx]
            rows.append({
                "vla_path": path.name, "source_repo_id": repo_id, "source_dataset_version": release,
                "source_episode_index": idx, "source_episode_length": int(ep["length"]),
                "task": str(m.get("task") or tasks_by_index.get(idx, "")),
                "robot_id": str(m.get("robot_id", "")), "converter_version": converter_version,
                "created_at": created_at, "qa_status": str(m.get("qa_status") or "unchecked"),
                "episode_id": str(m.get("episode_id", "")), "split": str(m.get("split", "")),
                "video_codec": video_codec, "bytes": path.stat().st_size, "quality_score": m.get("quality_score"),
                "success": m.get("success"), "min_distance_m": m.get("min_distance_m"),
            })
    manifest_path = write_cache_manifest(out_dir, rows)
    total = sum(p.stat().st_size for p in files)
    release_bytes = tree_bytes(root)
    return RoboDMCacheResult(out_dir=out_dir, files=files, codecs=codecs, num_episodes=len(files), bytes=total,
                             manifest_path=manifest_path, probe_fix_applied=fixed, frames=total_frames,
                             release_bytes=release_bytes, bytes_ratio=total / release_bytes if release_bytes else 0.0,
                             sources=used, extra={"codec_options": opts})


def _check_source(reader: EpisodeReader, info: Mapping[str, Any], cameras: Mapping[str, str], length: int,
                  idx: int) -> None:
    """The HDF5 has the release's frame count and every camera at the release's size, in colour."""
    if reader.num_frames != length:
        raise RoboDMCacheError(f"episode {idx}: {reader.path.name} has {reader.num_frames} frames, "
                               f"the release {length}")
    for vk, cam in cameras.items():
        cam_info = reader.cameras.get(cam)
        want = tuple(info["features"][vk]["shape"][:2])
        if cam_info is None or cam_info.kind != "rgb" or (cam_info.height, cam_info.width) != want:
            got = None if cam_info is None else (cam_info.kind, cam_info.height, cam_info.width)
            raise RoboDMCacheError(f"episode {idx}: camera {cam!r} of {reader.path.name} is {got}, "
                                   f"the release's {vk} is rgb {want}")


def source_check(
    vla_path: str | os.PathLike[str],
    h5_path: str | os.PathLike[str],
    *,
    image_atol: float = DEFAULT_SOURCE_ATOL,
) -> dict[str, Any]:
    """Compare a .vla's images with the source frames of the HDF5 it was built from.

    The .vla is read with robodm's own loader (``Trajectory(path).load(return_type="numpy")``), the
    HDF5 frame by frame with :class:`~hvla_platform.lib.formats.episode_h5.EpisodeReader`. For each
    ``observation/images/<camera>`` stream: the frame count must equal the HDF5's and the mean
    |diff| over all pixels (uint8 units) must be ``<= image_atol`` (default
    :data:`DEFAULT_SOURCE_ATOL`), and the stream must match the source frames in place at least as
    well as shifted by one frame either way (``order_ok``: mean |diff| of ``vla[k]`` vs ``src[k]``
    ≤ that of ``vla[k ± 1]`` vs ``src[k]``; a per-frame test is not reliable, consecutive rendered
    frames differing by less than the codec's loss).

    Returns:
        ``{"ok": bool, "problems": [str], "image_atol", "num_frames", "images": {feature:
        {"mean_abs_diff", "max_abs_diff", "order_ok", "shifted_mean_abs_diff"}}}``.

    Raises:
        whatever robodm, PyAV or h5py raise when a file cannot be read.
    """
    data = import_robodm().Trajectory(str(vla_path)).load(return_type="numpy")
    problems: list[str] = []
    report: dict[str, Any] = {"image_atol": float(image_atol), "images": {}}
    with EpisodeReader(h5_path) as reader:
        report["num_frames"] = reader.num_frames
        names = sorted(k for k in data if k.startswith(IMAGE_PREFIX))
        if not names:
            problems.append("the .vla has no image streams")
        for name in names:
            cam = name[len(IMAGE_PREFIX):]
            got = data[name]
            if cam not in reader.cameras or got.shape[0] != reader.num_frames:
                problems.append(f"{name}: {got.shape[0]} frames, the HDF5 {'has no such camera' if cam not in reader.cameras else reader.num_frames}")
                continue
            total, mx, count = 0.0, 0, 0
            shifted = {-1: [0.0, 0], 1: [0.0, 0]}  # got[k - o] vs source k: the stream shifted by o
            n = reader.num_frames
            for k, src in enumerate(reader.iter_frames(cam)):
                s16 = src.astype(np.int16)
                d = np.abs(got[k].astype(np.int16) - s16)
                total += float(d.sum(dtype=np.float64))
                mx, count = max(mx, int(d.max())), count + int(d.size)
                for o, acc in shifted.items():
                    if 0 <= k - o < n:
                        acc[0] += float(np.abs(got[k - o].astype(np.int16) - s16).sum(dtype=np.float64))
                        acc[1] += int(d.size)
            mean = total / count if count else 0.0
            neighbours = [acc[0] / acc[1] for acc in shifted.values() if acc[1]]
            order_ok = all(mean <= m for m in neighbours)
            report["images"][name] = {"mean_abs_diff": mean, "max_abs_diff": mx, "order_ok": order_ok,
                                      "shifted_mean_abs_diff": min(neighbours, default=None)}
            if mean > image_atol:
                problems.append(f"{name}: mean |diff| vs the HDF5 frames {mean:.2f} > {image_atol}")
            if not order_ok:
                problems.append(f"{name}: the stream matches the source frames shifted by one frame better "
                                f"({min(neighbours):.2f}) than in place ({mean:.2f}): misordered frames")
    report["problems"] = problems
    report["ok"] = not problems
    return report


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
