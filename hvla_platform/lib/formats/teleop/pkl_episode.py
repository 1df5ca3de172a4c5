"""Read and write seed 003's episode folders: ``frame_NNNN.pkl`` files and ``episode_meta.json``.

The format (seed 003, "Unified Episode Structure", "Frame Format (.pkl)", "Episode Metadata")::

    episode_cpu_0218_143000/
      frame_0000.pkl … frame_0070.pkl   one pickled dict per frame, 30 Hz, in recording order
      episode_meta.json                 see :mod:`hvla_platform.lib.formats.teleop.meta`

Each frame is exactly (:data:`FRAME_KEYS`)::

    {"timestamp": float,                  # Unix seconds
     "phase": str,                        # "teleop" | "skill" | "correction" | "skill_resume"
     "joint_positions": [j0, ..., j5],    # 6 UR5e joint angles, radians (list or (6,) array)
     "tcp_pose": [x, y, z, rx, ry, rz],   # metres + UR rotation vector, radians
     "gripper_pos": int,                  # Robotiq 2F-85 position, 0 (open) … 255 (closed)
     "wrist_rgb": np.ndarray,             # (256, 256, 3) uint8
     "wrist_timestamp": float,
     "base_rgb": np.ndarray,              # (256, 256, 3) uint8
     "base_timestamp": float}

**Pickle executes code.** Every ``.pkl`` is loaded with :class:`FrameUnpickler`, whose
``find_class`` admits only the globals this format needs (:data:`ALLOWED_GLOBALS`: numpy's array,
dtype and scalar reconstruction, and ``_codecs.encode``, which protocol-2 pickles use for bytes);
any other global — ``os.system``, ``builtins.eval``, ``subprocess.Popen`` … — is refused before it
is imported, with :class:`TeleopFormatError` naming the file and the global. Object dtypes are
refused too (an object array would carry arbitrary pickled objects). Dicts, lists, tuples, strings,
ints, floats and bytes need no global. A frame larger than :data:`MAX_FRAME_BYTES` is refused
before it is read.
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import json
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:  # numpy >= 2 (numpy.core is a deprecated alias there)
    from numpy._core import multiarray as _multiarray, numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray, numeric as _numeric  # type: ignore[no-redef]

from hvla_platform.lib.formats.teleop.episode import CAMERAS, GRIPPER_MAX, PHASES, TeleopEpisode
from hvla_platform.lib.formats.teleop.meta import (
    META_NAME,
    EpisodeMeta,
    TeleopFormatError,
    meta_problems,
    parse_episode_meta,
    phase_counts,
    phase_segments,
)

#: The keys of a seed-003 frame, in the seed's order.
FRAME_KEYS: tuple[str, ...] = ("timestamp", "phase", "joint_positions", "tcp_pose", "gripper_pos", "wrist_rgb",
                               "wrist_timestamp", "base_rgb", "base_timestamp")
#: Camera image key → the key of its timestamp.
CAMERA_STAMPS: dict[str, str] = {"wrist_rgb": "wrist_timestamp", "base_rgb": "base_timestamp"}
#: File names of frames: ``frame_`` + at least four digits (the frame index) + ``.pkl``.
FRAME_RE = re.compile(r"frame_([0-9]{4,})\.pkl")
#: Largest frame file read, bytes (a 256 × 256 two-camera frame is ~0.4 MB).
MAX_FRAME_BYTES = 8 * 1024 * 1024
#: Pickle protocol :func:`write_teleop_episode` writes (Python's default, what ``pickle.dump`` in
#: seed 003's recorder writes).
PICKLE_PROTOCOL = 4


def _checked_dtype(*args: Any) -> np.dtype:
    """``numpy.dtype(*args)`` for the unpickler, refusing object dtypes."""
    d = np.dtype(*args)
    if d.hasobject:
        raise pickle.UnpicklingError(f"refused dtype {d!r} (object arrays are not in the seed-003 frame format)")
    return d


#: ``(module, name)`` → the object :class:`FrameUnpickler` returns for it; nothing else is loaded.
#: numpy's ndarray / dtype / scalar reconstruction under its 2.x (``numpy._core``) and 1.x
#: (``numpy.core``) module names — ``multiarray._reconstruct`` (protocols 2–4),
#: ``numeric._frombuffer`` (protocol 5), ``multiarray.scalar`` (a numpy scalar) — and
#: ``_codecs.encode`` (how protocol 2 stores bytes). ``numpy.dtype`` refuses object dtypes.
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "dtype"): _checked_dtype,
    ("numpy", "ndarray"): np.ndarray,
    ("_codecs", "encode"): codecs.encode,
    **{(f"{mod}.multiarray", "_reconstruct"): _multiarray._reconstruct for mod in ("numpy._core", "numpy.core")},
    **{(f"{mod}.multiarray", "scalar"): _multiarray.scalar for mod in ("numpy._core", "numpy.core")},
    **{(f"{mod}.numeric", "_frombuffer"): _numeric._frombuffer for mod in ("numpy._core", "numpy.core")},
}


class FrameUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only :data:`ALLOWED_GLOBALS`.

    Raises (from :meth:`load`):
        pickle.UnpicklingError: ``refused global 'os.system' (not in the seed-003 frame format)``
            for any other global, before its module is imported; also for an object dtype.
    """

    def find_class(self, module: str, name: str) -> Any:
        """The allowed object for ``module.name``; anything else is refused (never imported)."""
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused global '{module}.{name}' (not in the seed-003 frame format)")
        return found

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids are not part of the format: refused."""
        raise pickle.UnpicklingError("refused persistent id (not in the seed-003 frame format)")


def _number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) \
        and math.isfinite(float(v))


def _vector6(name: str, v: Any, where: str) -> np.ndarray:
    if isinstance(v, np.ndarray):
        if v.shape != (6,) or v.dtype.kind not in "fiu":
            raise TeleopFormatError(f"{where}: '{name}' is an array {v.shape} {v.dtype}, expected 6 numbers")
        arr = v.astype(np.float64)
    elif isinstance(v, (list, tuple)):
        if len(v) != 6 or not all(_number(x) for x in v):
            raise TeleopFormatError(f"{where}: '{name}' must be 6 finite numbers, got {_short(v)}")
        arr = np.array([float(x) for x in v], np.float64)
    else:
        raise TeleopFormatError(f"{where}: '{name}' must be a list of 6 numbers, got a {type(v).__name__}")
    if not np.isfinite(arr).all():
        raise TeleopFormatError(f"{where}: '{name}' holds a non-finite value {_short(arr.tolist())}")
    return arr


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def validate_frame(frame: Any, where: str) -> dict[str, Any]:
    """Check one unpickled frame against :data:`FRAME_KEYS` and their types and shapes; return it
    normalised: ``timestamp``/``*_timestamp`` float (Unix s), ``phase`` str, ``joint_positions`` and
    ``tcp_pose`` ``(6,) float64``, ``gripper_pos`` int (its range is a QA matter, not checked here),
    ``wrist_rgb``/``base_rgb`` ``(H, W, 3) uint8``.

    Raises:
        TeleopFormatError: naming ``where`` (the file) and the missing, unknown or mistyped key.
    """
    if not isinstance(frame, dict):
        raise TeleopFormatError(f"{where}: a frame must be a dict, it holds a {type(frame).__name__}")
    missing = [k for k in FRAME_KEYS if k not in frame]
    unknown = sorted(str(k) for k in frame if k not in FRAME_KEYS)
    if missing or unknown:
        parts = [f"missing key(s) {missing}"] * bool(missing) + [f"unknown key(s) {unknown}"] * bool(unknown)
        raise TeleopFormatError(f"{where}: {'; '.join(parts)} (a seed-003 frame has exactly {list(FRAME_KEYS)})")
    out: dict[str, Any] = {}
    for k in ("timestamp", "wrist_timestamp", "base_timestamp"):
        v = frame[k]
        if not isinstance(v, (float, np.floating)) or not math.isfinite(float(v)):
            raise TeleopFormatError(f"{where}: '{k}' must be a finite float (Unix seconds), got {_short(v)}")
        out[k] = float(v)
    if not isinstance(frame["phase"], str):
        raise TeleopFormatError(f"{where}: 'phase' must be a string, got {_short(frame['phase'])}")
    out["phase"] = frame["phase"]
    out["joint_positions"] = _vector6("joint_positions", frame["joint_positions"], where)
    out["tcp_pose"] = _vector6("tcp_pose", frame["tcp_pose"], where)
    g = frame["gripper_pos"]
    if not isinstance(g, (int, np.integer)) or isinstance(g, (bool, np.bool_)):
        raise TeleopFormatError(f"{where}: 'gripper_pos' must be an int (0-255), got {_short(g)}")
    out["gripper_pos"] = int(g)
    for cam in CAMERAS:
        img = frame[cam]
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            what = f"{img.shape} {img.dtype} array" if isinstance(img, np.ndarray) else type(img).__name__
            raise TeleopFormatError(f"{where}: '{cam}' must be an (H, W, 3) uint8 array, got a {what}")
        out[cam] = img
    return out


def load_frame(path: str | Path) -> dict[str, Any]:
    """Unpickle one ``frame_NNNN.pkl`` with :class:`FrameUnpickler` and :func:`validate_frame` it.

    Raises:
        TeleopFormatError: ``frame_0003.pkl: refused global 'os.system' (not in the seed-003 frame
            format)``; a file larger than :data:`MAX_FRAME_BYTES`; a truncated or malformed pickle;
            a frame that is not the format's dict.
        OSError: the file cannot be read.
    """
    p = Path(path)
    size = p.stat().st_size
    if size > MAX_FRAME_BYTES:
        raise TeleopFormatError(f"{p.name}: {size} bytes, larger than a seed-003 frame can be ({MAX_FRAME_BYTES})")
    data = p.read_bytes()
    try:
        frame = FrameUnpickler(io.BytesIO(data)).load()
    except pickle.UnpicklingError as exc:
        raise TeleopFormatError(f"{p.name}: {exc}") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, OverflowError,
            MemoryError, RecursionError) as exc:
        raise TeleopFormatError(f"{p.name}: not a readable pickle: {type(exc).__name__}: {exc}") from None
    return validate_frame(frame, p.name)


@dataclass
class FolderListing:
    """What an episode folder holds, by name.

    Attributes:
        frames: ``[(frame index, path)]`` sorted by index.
        meta: ``episode_meta.json`` or None when absent.
        others: every other file name (sorted).
    """

    frames: list[tuple[int, Path]]
    meta: Path | None
    others: list[str]

    @property
    def missing_indices(self) -> list[int]:
        """Frame indices absent from ``0 … max index`` (the seed numbers frames from 0 without gaps)."""
        have = {i for i, _ in self.frames}
        top = max(have) + 1 if have else 0
        return [i for i in range(top) if i not in have]

    @property
    def duplicate_indices(self) -> list[int]:
        """Indices named by two files (``frame_0001.pkl`` and ``frame_00001.pkl``)."""
        seen: set[int] = set()
        return sorted({i for i, _ in self.frames if i in seen or seen.add(i)})  # type: ignore[func-returns-value]


def list_folder(folder: str | Path) -> FolderListing:
    """The frames, ``episode_meta.json`` and other files of an episode folder (non-recursive)."""
    folder = Path(folder)
    frames, others, meta = [], [], None
    for p in sorted(folder.iterdir()):
        m = FRAME_RE.fullmatch(p.name)
        if m and p.is_file():
            frames.append((int(m.group(1)), p))
        elif p.name == META_NAME and p.is_file():
            meta = p
        else:
            others.append(p.name)
    frames.sort(key=lambda x: x[0])
    return FolderListing(frames, meta, others)


def read_meta(path: str | Path, *, source: str | None = None) -> EpisodeMeta:
    """Read and validate ``episode_meta.json`` (:func:`~.meta.parse_episode_meta`).

    Raises:
        TeleopFormatError: not JSON, or breaks the contract (one line naming ``source``).
    """
    p = Path(path)
    shown = source or p.name
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TeleopFormatError(f"{shown}: not valid JSON: {exc}") from None
    return parse_episode_meta(data, source=shown)


def read_teleop_episode(folder: str | Path, *, episode_id: str | None = None) -> TeleopEpisode:
    """Read one seed-003 episode folder strictly into a :class:`TeleopEpisode`.

    Every frame is loaded with the restricted unpickler and validated (:func:`load_frame`); the
    folder must hold ``frame_0000.pkl`` … ``frame_<N-1>.pkl`` without gaps and ``episode_meta.json``
    agreeing with them (:func:`~.meta.meta_problems`); every gripper position must be 0–255 and
    each camera's images one shape. Files other than frames and the metadata (``metadata.yaml``,
    ``operator_notes.md`` beside it in the lake) are ignored. ``episode_id`` defaults to the
    folder's name.

    Returns:
        The episode: ``timestamps (T,) float64`` Unix s, ``joint_positions``/``tcp_pose (T, 6)
        float64``, ``gripper_pos (T,) uint8``, ``images[cam] (T, H, W, 3) uint8``,
        ``image_timestamps[cam] (T,) float64``, ``meta`` = ``episode_meta.json`` as written.

    Raises:
        TeleopFormatError: a refused pickle global, a bad frame or metadata, missing frames, a
            gripper value outside 0–255, images of varying shape, unknown phase labels.
        FileNotFoundError: no frames or no ``episode_meta.json``.
    """
    folder = Path(folder)
    listing = list_folder(folder)
    if not listing.frames:
        raise FileNotFoundError(f"{folder}: no frame_NNNN.pkl files")
    if listing.meta is None:
        raise FileNotFoundError(f"{folder}: no {META_NAME}")
    if listing.missing_indices or listing.duplicate_indices:
        raise TeleopFormatError(f"{folder.name}: frames are not numbered 0..{listing.frames[-1][0]} without gaps "
                                f"(missing {listing.missing_indices[:10]}, duplicated {listing.duplicate_indices[:10]})")
    meta = read_meta(listing.meta)
    meta_raw = json.loads(listing.meta.read_text(encoding="utf-8"))
    frames = [load_frame(p) for _, p in listing.frames]
    phases = tuple(f["phase"] for f in frames)
    bad = sorted({p for p in phases} - set(PHASES))
    if bad:
        raise TeleopFormatError(f"{folder.name}: unknown phase label(s) {bad}; expected one of {list(PHASES)}")
    problems = meta_problems(meta, phases)
    if problems:
        raise TeleopFormatError(f"{folder.name}/{META_NAME}: " + "; ".join(problems))
    grip = np.array([f["gripper_pos"] for f in frames], np.int64)
    out_of_range = np.flatnonzero((grip < 0) | (grip > GRIPPER_MAX))
    if out_of_range.size:
        i = int(out_of_range[0])
        raise TeleopFormatError(f"{listing.frames[i][1].name}: gripper_pos {int(grip[i])} outside 0-{GRIPPER_MAX}")
    images = {}
    for cam in CAMERAS:
        shapes = sorted({f[cam].shape for f in frames})
        if len(shapes) > 1:
            raise TeleopFormatError(f"{folder.name}: camera '{cam}' images change shape within the episode: {shapes}")
        images[cam] = np.stack([f[cam] for f in frames])
    return TeleopEpisode(
        episode_id=episode_id or folder.name,
        timestamps=np.array([f["timestamp"] for f in frames], np.float64),
        phases=phases,
        joint_positions=np.stack([f["joint_positions"] for f in frames]),
        tcp_pose=np.stack([f["tcp_pose"] for f in frames]),
        gripper_pos=grip.astype(np.uint8),
        images=images,
        image_timestamps={cam: np.array([f[CAMERA_STAMPS[cam]] for f in frames], np.float64)
                          for cam in CAMERAS},
        meta=meta_raw,
    )


def write_teleop_episode(folder: str | Path, episode: TeleopEpisode) -> Path:
    """Write ``episode`` as a seed-003 folder: ``frame_NNNN.pkl`` (pickle protocol
    :data:`PICKLE_PROTOCOL`; ``joint_positions``/``tcp_pose`` as lists of 6 floats, ``gripper_pos``
    an int, images ``(H, W, 3) uint8`` arrays) and ``episode_meta.json``.

    ``episode.meta`` supplies ``skill_name``, ``skill_outcome``, the ``grasp_*`` fields and
    ``saved_at`` (default: now, local ISO time); ``phase_counts``, ``phase_segments``,
    ``num_frames`` and ``fps`` (``episode.fps``) are computed from the episode, so the folder always
    agrees with itself. ``folder`` is created; it must not hold frames already.

    Returns:
        ``folder``.

    Raises:
        TeleopFormatError: ``episode.meta`` breaks the :class:`~.meta.EpisodeMeta` contract.
        FileExistsError: ``folder`` already holds frames or ``episode_meta.json``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    listing = list_folder(folder)
    if listing.frames or listing.meta is not None:
        raise FileExistsError(f"{folder} already holds a seed-003 episode")
    meta = {k: v for k, v in episode.meta.items()
            if k not in ("phase_counts", "phase_segments", "num_frames", "fps", "saved_at")}
    fps = episode.fps
    meta.update(phase_counts=phase_counts(episode.phases), phase_segments=phase_segments(episode.phases),
                num_frames=episode.num_frames, fps=int(fps) if float(fps).is_integer() else float(fps),
                saved_at=str(episode.meta.get("saved_at") or dt.datetime.now().isoformat(timespec="seconds")))
    parse_episode_meta(meta, source=f"{folder.name}/{META_NAME}")
    for i in range(episode.num_frames):
        frame = {
            "timestamp": float(episode.timestamps[i]),
            "phase": str(episode.phases[i]),
            "joint_positions": [float(v) for v in episode.joint_positions[i]],
            "tcp_pose": [float(v) for v in episode.tcp_pose[i]],
            "gripper_pos": int(episode.gripper_pos[i]),
            "wrist_rgb": np.ascontiguousarray(episode.images["wrist_rgb"][i]),
            "wrist_timestamp": float(episode.image_timestamps["wrist_rgb"][i]),
            "base_rgb": np.ascontiguousarray(episode.images["base_rgb"][i]),
            "base_timestamp": float(episode.image_timestamps["base_rgb"][i]),
        }
        with open(folder / f"frame_{i:04d}.pkl", "wb") as f:
            pickle.dump(frame, f, protocol=PICKLE_PROTOCOL)
    (folder / META_NAME).write_text(json.dumps(meta, indent=4) + "\n", encoding="utf-8")
    return folder
