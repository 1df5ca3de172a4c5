"""Build a LeRobotDataset v3.0 release from processed-episode HDF5 files.

The dataset is written with LeRobot's own writer (``LeRobotDataset.create`` → LeRobot's episode
save per episode → ``finalize``), so its layout is whatever lerobot 0.4.4 produces for codebase
version v3.0. The frames do not take LeRobot's PNG round trip (``add_frame`` → PNG → re-read for
statistics and for encoding): they go from the HDF5 straight into an encoder with LeRobot's codec
settings, in worker processes on every core, and image statistics are computed on a sample of
frames (stated on the card); :mod:`hvla_platform.lib.dataset.lerobot_writer` says exactly which
LeRobot calls are made and where it deviates. A new version can instead be grown from the
previous one (:mod:`hvla_platform.lib.dataset.lerobot_extend`)::

    <root>/meta/info.json                          schema, fps, totals, splits (LeRobot)
    <root>/meta/tasks.parquet, meta/stats.json     (LeRobot; stats of the train split only)
    <root>/meta/episodes/chunk-*/file-*.parquet    per-episode index + video from/to timestamps
                                                   + per-episode stats (LeRobot) + hvla/* columns
    <root>/data/chunk-*/file-*.parquet             frame rows (several episodes per file)
    <root>/videos/<video_key>/chunk-*/file-*.mp4   one video file holds several episodes
    <root>/meta/hvla_episodes.parquet              ours: episode_index → hvla episode id, split, QA
    <root>/README.md                               ours: dataset card with the data rights

Features (names are part of the release schema, see :func:`feature_schema`), from the release
spec and its robot profile (:meth:`ReleaseSpec.robot_profile`):

==================================  =========  ==========  ======================================
key                                 dtype      shape       meaning
==================================  =========  ==========  ======================================
``observation.state``               float32    (D,)        ``spec.state_joints`` positions, rad
``action``                          float32    (A,)        ``spec.action_joints`` targets, rad
``observation.locomotion_command``  float32    (4,)        forward/lateral/yaw flag, stance h (m);
                                                           only when the profile has locomotion
``observation.images.<camera>``     video      (H, W, 3)   RGB at the camera's own size (e.g.
                                                           480 × 640), ``spec.video_codec``
==================================  =========  ==========  ======================================

plus LeRobot's default ``timestamp`` (s, = frame_index / fps), ``frame_index``, ``episode_index``,
``index`` and ``task_index``. The dataset's ``robot_type`` is ``spec.robot_type`` (the profile's
robot model by default). Depth cameras are never a feature (a LeRobot video is colour; depth stays
in the HDF5 layer).

**Bounded memory.** Episodes are read frame by frame
(:meth:`~hvla_platform.lib.formats.episode_h5.EpisodeReader.iter_frames`: each stored frame is
decoded once) by the encoder workers and fed to the encoder one frame at a time; so peak memory
does not grow with an episode's length or with the number of episodes (only the low-dimensional
arrays of the few episodes being encoded ahead, and ≤ 12 sampled frames per camera, are held).

**Splits in LeRobot's own metadata.** Episodes are written train first, then held out, each in
episode id order (the held-out ones starting a new data file), so each split is one contiguous
``episode_index`` range: ``meta/info.json``
``splits`` is ``{"train": "0:k", "test": "k:N"}`` (``"test"`` is the held-out split; it is left
out when nothing is held out), and ``meta/stats.json`` is LeRobot's
``aggregate_stats`` over the **train** episodes' per-episode stats only (LeRobot keeps those in
``meta/episodes``; ``count`` is the number of train frames), written with LeRobot's
``write_stats`` with its features in sorted order. Someone who trains with ``lerobot-train`` on
the train range (``--dataset.episodes``) therefore neither trains nor normalises on held-out data.

**What QA and the recording know** is written per episode into LeRobot's episode metadata
(``meta/episodes`` columns :data:`LEROBOT_EPISODE_COLUMNS`, loaded by ``LeRobotDataset`` as
``meta.episodes``), into :data:`HVLA_EPISODES_PATH` and onto the dataset card: QA status
(:data:`~hvla_platform.lib.core.tables.QA_STATUSES`), quality score, the recording's outcome
(``success``, ``min_distance_m``), and per camera its source rate and the fraction of dataset
frames that repeat the previous frame (a 15 Hz camera in a 20 fps dataset repeats ~25 %).

**Reproducible bytes.** Two builds of the same inputs give byte-identical files (checked by the
tests): the card has no build time, stats keys are sorted, no file names a local path (episodes
are named by lake keys). LeRobot's Parquet writer and the encoder are deterministic for the same
frames, and episodes are saved in order whatever the number of encoder workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.keys import episodes_prefix
from hvla_platform.lib.core.tables import QA_STATUSES
from hvla_platform.lib.formats.episode_h5 import EpisodeData, EpisodeReader
from hvla_platform.lib.formats.recording.profile import DEFAULT_PROFILE, LOCOMOTION_COMMAND_NAMES
from hvla_platform.lib.dataset.releases import OTHER_PROFILE, profile_name
from hvla_platform.lib.dataset.episode_video import IMAGE_STATS_FRAMES
from hvla_platform.lib.dataset.lerobot_writer import EpisodeFrames, write_episodes
from hvla_platform.lib.dataset.release_qa import ReleaseQA
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.core import features
from hvla_platform.lib.core.lake import sha256_file
from hvla_platform.lib.processing.sync import repeated_frames

STATE_KEY, ACTION_KEY, LOCO_KEY, IMAGE_KEY_PREFIX = features.STATE, features.ACTION, features.LOCOMOTION_COMMAND, features.IMAGE_PREFIX
#: Our episode mapping file, relative to the dataset root. LeRobot 0.4.4 only reads
#: ``meta/info.json``, ``meta/stats.json``, ``meta/tasks.parquet`` and ``meta/episodes/**``, so an
#: extra file directly under ``meta/`` is left alone (checked by reloading in the tests).
HVLA_EPISODES_PATH = "meta/hvla_episodes.parquet"
#: LeRobot's train statistics file, relative to the dataset root (``lerobot.datasets.utils.STATS_PATH``).
STATS_FILE = "meta/stats.json"
#: Default video decoding backend: LeRobot's "pyav" backend calls ``torchvision.io.VideoReader``,
#: which torchvision 0.28 removed; torchcodec 0.13 works with Debian's FFmpeg 5.1.
DEFAULT_VIDEO_BACKEND = "torchcodec"
#: Max |HDF5 timestamp - k/fps| accepted, seconds (LeRobot's own default tolerance is 1e-4 s).
TIMESTAMP_TOLERANCE_S = 1e-4
#: LeRobot's name of our held-out split in ``meta/info.json`` ``splits``.
LEROBOT_HELDOUT_SPLIT = "test"
#: Columns we add to LeRobot's episode metadata (``meta/episodes/**/*.parquet``): name, Arrow
#: type. Null means unknown (no QA score, no outcome in the recording's ``metadata.yaml``).
LEROBOT_EPISODE_COLUMNS = (
    ("hvla/episode_id", pa.string()), ("hvla/split", pa.string()), ("hvla/qa_status", pa.string()),
    ("hvla/quality_score", pa.float64()), ("hvla/success", pa.bool_()), ("hvla/min_distance_m", pa.float64()),
)


class LeRobotReleaseError(ValueError):
    """The episodes cannot be made into the requested release (the message names the episode)."""


@dataclass(frozen=True)
class EpisodeQA:
    """What QA concluded about one episode of a release (from the release's episode selection).

    Attributes:
        status: ``passed`` (quality score ≥ the spec's ``min_quality`` and no QA gate failed),
            ``approved`` (it failed one of those and a supervisor approved it) or ``unchecked``
            (:data:`~hvla_platform.lib.core.tables.QA_STATUSES`).
        quality_score: the QA quality score in [0, 1], ``None`` when not scored.
        note: why it needed approval and who approved it (empty for ``passed``).
    """

    status: str = "unchecked"
    quality_score: float | None = None
    note: str = ""


@dataclass(frozen=True)
class CameraSource:
    """How one camera's dataset frames relate to what the camera recorded, over the release.

    Attributes:
        camera: camera name (``observation.images.<camera>``).
        rate_min_hz, rate_max_hz: the smallest and largest per-episode source rate, Hz (``None``
            when no episode's HDF5 records it).
        repeated_frames: dataset frames showing the same source frame as the frame before them.
        frames: dataset frames of the episodes whose source indices are known.
        episodes_unknown: episodes whose HDF5 has no source indices (format version 1).
    """

    camera: str
    rate_min_hz: float | None
    rate_max_hz: float | None
    repeated_frames: int
    frames: int
    episodes_unknown: int = 0

    @property
    def repeated_fraction(self) -> float | None:
        """``repeated_frames / frames``, ``None`` when no frame's source is known."""
        return self.repeated_frames / self.frames if self.frames else None


@dataclass
class LeRobotBuildResult:
    """What :func:`build_lerobot_dataset` wrote.

    Attributes:
        root: dataset root directory.
        num_episodes, num_frames: totals.
        episode_ids: hvla episode ids in LeRobot ``episode_index`` order (index = position): the
            train episodes (sorted) first, then the held-out ones (sorted).
        train_episode_ids, heldout_episode_ids: the split (sorted ids).
        train_episode_indices, heldout_episode_indices: the same split as LeRobot episode indices
            (``0..k-1`` and ``k..N-1``).
        features: the ``features`` block of ``meta/info.json`` (LeRobot's format).
        fps: frames per second.
        video_codec: the LeRobot ``vcodec`` used.
        splits: ``meta/info.json`` ``splits`` as written.
        cameras: per camera, its source rate and repeated frames (:class:`CameraSource`).
        profile: ``<name>@<version>`` of the release's robot profile when it was built.
        robot_type: LeRobot ``robot_type`` written.
        release_checks: the release checks' findings (lib/dataset/release_qa.py), set by the
            release build (lib/dataset/build.py), which needs the lake (previous version, QA
            metrics) and then rewrites the card; ``None`` when the dataset was written on its own.
    """

    root: Path
    num_episodes: int
    num_frames: int
    episode_ids: list[str]
    train_episode_ids: list[str]
    heldout_episode_ids: list[str]
    features: dict[str, Any]
    fps: int
    train_episode_indices: list[int] = field(default_factory=list)
    heldout_episode_indices: list[int] = field(default_factory=list)
    video_codec: str = ""
    splits: dict[str, str] = field(default_factory=dict)
    cameras: list[CameraSource] = field(default_factory=list)
    profile: str = ""
    robot_type: str = ""
    release_checks: ReleaseQA | None = None


@dataclass(frozen=True)
class _CameraSummary:
    """What :class:`CameraSource` needs of one camera of one episode (no frames, no indices)."""

    rate_hz: float | None
    repeated_frames: int | None  # None: source indices not recorded
    frames: int


@dataclass(frozen=True)
class _Header:
    """What the build keeps of an episode between its validation pass and its writing pass."""

    episode_id: str
    path: Path
    num_frames: int
    outcome: dict[str, Any] | None
    cameras: dict[str, _CameraSummary]


def _camera_summary(ep: EpisodeData, cameras: tuple[str, ...] | list[str]) -> dict[str, _CameraSummary]:
    out = {}
    for cam in cameras:
        idx = ep.source_index.get(cam)
        out[cam] = _CameraSummary(rate_hz=ep.source_rate_hz.get(cam),
                                  repeated_frames=None if idx is None else repeated_frames(idx),
                                  frames=0 if idx is None else int(idx.size))
    return out


def _camera_sources_of(cameras: list[str], summaries: list[dict[str, _CameraSummary]]) -> list[CameraSource]:
    out = []
    for cam in cameras:
        per = [s[cam] for s in summaries]
        rates = [c.rate_hz for c in per if c.rate_hz is not None]
        known = [c for c in per if c.repeated_frames is not None]
        out.append(CameraSource(
            camera=cam, rate_min_hz=min(rates) if rates else None, rate_max_hz=max(rates) if rates else None,
            repeated_frames=sum(c.repeated_frames or 0 for c in known), frames=sum(c.frames for c in known),
            episodes_unknown=len(per) - len(known)))
    return out


def _select(values: np.ndarray, names: list[str], wanted: tuple[str, ...], what: str, ep_id: str) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in wanted if j not in index]
    if missing:
        raise LeRobotReleaseError(f"episode {ep_id}: {what} has no joint(s) {missing} (it has {names})")
    return np.ascontiguousarray(values[:, [index[j] for j in wanted]], dtype=np.float32)


def lerobot_features(spec: ReleaseSpec, image_shapes: Mapping[str, tuple[int, int, int]], *,
                     locomotion: bool | None = None) -> dict[str, dict]:
    """The LeRobot ``features`` argument of ``LeRobotDataset.create`` for ``spec`` (module docstring).

    Args:
        image_shapes: camera → (H, W, 3) pixels, for every camera of ``spec.cameras``.
        locomotion: whether ``observation.locomotion_command`` (4,) float32 is a feature; None: when
            the spec's robot profile has a locomotion stream.

    Raises:
        KeyError: a camera of the spec has no shape.
        ProfileError: ``locomotion`` is None and the spec's profile cannot be loaded.
    """
    if locomotion is None:
        locomotion = spec.robot_profile().locomotion is not None
    feats: dict[str, dict] = {
        STATE_KEY: {"dtype": "float32", "shape": (len(spec.state_joints),), "names": list(spec.state_joints)},
        ACTION_KEY: {"dtype": "float32", "shape": (len(spec.action_joints),), "names": list(spec.action_joints)},
    }
    if locomotion:
        feats[LOCO_KEY] = {"dtype": "float32", "shape": (4,), "names": list(LOCOMOTION_COMMAND_NAMES)}
    for cam in spec.cameras:
        feats[IMAGE_KEY_PREFIX + cam] = {
            "dtype": "video", "shape": tuple(image_shapes[cam]), "names": ["height", "width", "channels"],
        }
    return feats


def episode_outcome(ep: EpisodeData) -> dict[str, Any] | None:
    """The recording's outcome stored in an episode's HDF5 ``outcome`` attribute (JSON, written by
    the processing stage from ``metadata.yaml``): ``{"success": bool, "min_distance_m": float |
    None}`` (metres), or ``None`` when the recording states none or the file predates it.

    Raises:
        LeRobotReleaseError: the attribute is not JSON of that form.
    """
    raw = ep.attrs.get("outcome")
    if raw is None:
        return None
    try:
        value = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    except ValueError as exc:
        raise LeRobotReleaseError(f"episode {ep.episode_id}: HDF5 attribute 'outcome' is not JSON: {raw!r}") from exc
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("success"), bool):
        raise LeRobotReleaseError(f"episode {ep.episode_id}: HDF5 attribute 'outcome' is {value!r}, expected "
                                  "{'success': bool, 'min_distance_m': float | null}")
    dist = value.get("min_distance_m")
    return {"success": value["success"], "min_distance_m": None if dist is None else float(dist)}


def _episode_row(ep_index: int, ep: EpisodeData, path: Path, held: set[str], hdf5_keys: Mapping[str, str] | None,
                 q: EpisodeQA, outcome: dict[str, Any] | None) -> dict[str, Any]:
    """The :data:`HVLA_EPISODES_PATH` row of one episode (columns: :func:`write_hvla_episodes`)."""
    outcome = outcome or {}
    return {
        "episode_index": ep_index, "episode_id": ep.episode_id, "robot_id": ep.robot_id,
        "capture_day": ep.capture_day, "task": ep.task,
        "split": "heldout" if ep.episode_id in held else "train", "num_frames": ep.num_frames,
        "start_time_ns": int(ep.start_time_ns),
        "hdf5_key": (hdf5_keys or {}).get(str(path)) or f"{episodes_prefix(ep.capture_day, ep.robot_id)}/{Path(path).name}",
        "hdf5_sha256": sha256_file(path),
        "source_key": str(ep.attrs.get("source_key", "")),
        "source_sha256": str(ep.attrs.get("source_sha256", "")),
        "qa_status": q.status, "quality_score": q.quality_score, "qa_note": q.note,
        "success": outcome.get("success"), "min_distance_m": outcome.get("min_distance_m"),
    }


def build_lerobot_dataset(
    spec: ReleaseSpec,
    episode_paths: list[Path],
    out_root: Path,
    *,
    rights: dict | None = None,
    progress: Callable[[str], None] | None = None,
    hdf5_keys: Mapping[str, str] | None = None,
    episode_qa: Mapping[str, EpisodeQA] | None = None,
    workers: int | None = None,
) -> LeRobotBuildResult:
    """Write a LeRobot v3.0 dataset from processed-episode HDF5 files.

    Episodes are split with ``spec.split`` and added train first, then held out, each in sorted
    ``episode_id`` order (LeRobot ``episode_index`` 0..N-1, so each split is a contiguous range),
    every frame with ``task`` = the episode's task. Timestamps are LeRobot's ``frame_index / fps``
    (the HDF5 ``timestamps`` must already equal ``k / fps``). After LeRobot's ``finalize``:
    ``meta/info.json`` ``splits`` = ``{"train": "0:k", "test": "k:N"}`` (LeRobot's
    ``load_info``/``write_info``), ``meta/stats.json`` = LeRobot's ``aggregate_stats`` of the train
    episodes' per-episode stats (``write_stats``, features sorted; no ``stats.json`` at all when
    every episode is held out: an evaluation-only release), and the
    :data:`LEROBOT_EPISODE_COLUMNS` in ``meta/episodes``. Also writes :data:`HVLA_EPISODES_PATH`
    (see :func:`write_hvla_episodes`) and a dataset card ``README.md`` (:func:`dataset_card`).

    Features come from the spec and its robot profile (module docstring): the profile decides
    whether ``observation.locomotion_command`` exists, the episodes' stored camera sizes give the
    video shapes. Every episode must follow the spec's profile (HDF5 ``profile`` attribute; none:
    the default profile). Frames are streamed one at a time (module docstring, "Bounded memory").

    Args:
        spec: the release spec (fps, cameras, joints, split, video codec, robot type, repo id,
            robot profile).
        episode_paths: HDF5 files (:mod:`hvla_platform.lib.formats.episode_h5` format 2 or 3).
        out_root: dataset root; must not exist (LeRobot's ``create`` requires a fresh directory).
        rights: the release's rights as ``Rights.to_dict()``; written into the card. ``None``
            writes a card that says no rights record was supplied.
        progress: called with a short message per episode.
        hdf5_keys: optional map ``str(local HDF5 path)`` → the file's lake key, recorded as
            ``hdf5_key`` (default: ``episodes-hdf5/<capture_day>/<robot_id>/<file name>``, where the
            processing stage publishes it). Local paths are never written into the dataset.
        episode_qa: episode id → :class:`EpisodeQA` from the release's selection (default: every
            episode ``unchecked`` without a score).
        workers: encoder threads (default: the CPUs this process may use); the files written do
            not depend on it.

    Returns:
        :class:`LeRobotBuildResult`.

    Raises:
        FileExistsError: ``out_root`` exists.
        LeRobotReleaseError: no episodes, duplicate episode ids, an episode of another robot
            profile, an episode's fps differs from ``spec.fps``, its timestamps are not ``k / fps``,
            a joint or camera is missing, a camera is a depth camera, the locomotion command the
            profile has is missing, image shapes differ between episodes, an unknown QA status, or
            a malformed ``outcome`` attribute. All are checked before anything is written.
        ProfileError: the spec's robot profile cannot be loaded.
        ValueError: LeRobot rejects ``spec.video_codec`` (``resolve_vcodec``).
    """
    out_root = Path(out_root)
    if out_root.exists():
        raise FileExistsError(f"{out_root} exists; LeRobotDataset.create needs a fresh directory")
    if not episode_paths:
        raise LeRobotReleaseError("no episodes to release")
    say = progress or (lambda _m: None)
    qa = dict(episode_qa or {})
    bad_qa = sorted({q.status for q in qa.values()} - set(QA_STATUSES))
    if bad_qa:
        raise LeRobotReleaseError(f"unknown QA status(es) {bad_qa}; expected one of {list(QA_STATUSES)}")

    profile = spec.robot_profile()
    has_loco = profile.locomotion is not None

    # Pass 1: low-dimensional data and camera descriptions only (no frame decoded) to order,
    # validate and size the release before anything is written; only a summary is kept.
    headers: list[_Header] = []
    image_shapes: dict[str, tuple[int, int, int]] | None = None
    shapes_from = ""
    for p in episode_paths:
        with EpisodeReader(p) as reader:
            ep = reader.low_dim()
            cams = dict(reader.cameras)
        ep_id = ep.episode_id
        ep_profile = ep.profile or DEFAULT_PROFILE
        if profile_name(ep_profile) != spec.profile:
            raise LeRobotReleaseError(
                f"episode {ep_id} ({p}) follows robot profile {ep_profile}, release {spec.name} follows "
                f"{spec.profile}; a release does not mix profiles (the release selection leaves such episodes "
                f"out as {OTHER_PROFILE})")
        if abs(ep.fps - spec.fps) > 1e-9:
            raise LeRobotReleaseError(
                f"episode {ep_id} ({p}) is at {ep.fps} fps but release {spec.name} is at {spec.fps} fps; "
                "resample upstream")
        missing = [c for c in spec.cameras if c not in cams]
        if missing:
            raise LeRobotReleaseError(f"episode {ep_id} ({p}) has no camera(s) {missing}")
        depth = [c for c in spec.cameras if cams[c].kind != "rgb"]
        if depth:
            raise LeRobotReleaseError(f"episode {ep_id} ({p}): camera(s) {depth} are {cams[depth[0]].kind} cameras; "
                                      "a LeRobot release carries colour cameras only")
        if ep.num_frames == 0:
            raise LeRobotReleaseError(f"episode {ep_id} ({p}) has no frames")
        expected = np.arange(ep.num_frames) / spec.fps
        err = float(np.max(np.abs(ep.timestamps - expected)))
        if err > TIMESTAMP_TOLERANCE_S:
            raise LeRobotReleaseError(
                f"episode {ep_id} ({p}): timestamps deviate from k/fps by up to {err:.6f} s")
        _select(ep.state, ep.state_names, spec.state_joints, "observation/state", ep_id)
        _select(ep.action, ep.action_names, spec.action_joints, "action", ep_id)
        if has_loco and ep.locomotion_command is None:
            raise LeRobotReleaseError(f"episode {ep_id} ({p}) has no locomotion_command, which robot profile "
                                      f"{profile.key} has")
        shapes = {c: (cams[c].height, cams[c].width, 3) for c in spec.cameras}
        if image_shapes is None:
            image_shapes, shapes_from = shapes, ep_id
        elif shapes != image_shapes:
            raise LeRobotReleaseError(
                f"episode {ep_id} ({p}) has image shapes {shapes}, episode {shapes_from} has {image_shapes}")
        headers.append(_Header(ep_id, Path(p), ep.num_frames, episode_outcome(ep), _camera_summary(ep, spec.cameras)))
        del ep
    ids = [h.episode_id for h in headers]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise LeRobotReleaseError(f"duplicate episode id(s) {dupes}")
    assert image_shapes is not None

    train_ids, held_ids = spec.split(ids)
    by_id = {h.episode_id: h for h in headers}
    headers = [by_id[e] for e in train_ids + held_ids]  # train first: each split is one index range
    held_set = set(held_ids)

    LeRobotDataset = import_lerobot_dataset()
    dataset = None
    rows: list[dict[str, Any]] = []
    total_frames = 0

    def reader_of(hdr: _Header) -> Callable[[], EpisodeFrames]:
        def read() -> EpisodeFrames:
            with EpisodeReader(hdr.path) as reader:
                ep = reader.low_dim()
            low = {STATE_KEY: _select(ep.state, ep.state_names, spec.state_joints, "observation/state", ep.episode_id),
                   ACTION_KEY: _select(ep.action, ep.action_names, spec.action_joints, "action", ep.episode_id)}
            if has_loco:
                low[LOCO_KEY] = np.ascontiguousarray(ep.locomotion_command, dtype=np.float32)
            return EpisodeFrames(path=hdr.path, num_frames=ep.num_frames, task=ep.task, low_dim=low, source=ep)
        return read

    try:
        dataset = LeRobotDataset.create(
            repo_id=spec.repo_id, fps=spec.fps, features=lerobot_features(spec, image_shapes, locomotion=has_loco),
            root=out_root, robot_type=spec.robot_type, use_videos=True, vcodec=spec.video_codec,
            video_backend=DEFAULT_VIDEO_BACKEND,
        )
        # Frames go from the HDF5 straight into LeRobot's encoder settings, several episodes and
        # cameras at a time; LeRobot's writer saves each episode in order (lerobot_writer.py).
        cameras = {IMAGE_KEY_PREFIX + cam: cam for cam in spec.cameras}
        for ep_index, item in write_episodes(dataset, [reader_of(h) for h in headers], cameras, workers=workers,
                                             new_file_at=len(train_ids) if held_ids and train_ids else None):
            ep, path = item.source, headers[ep_index].path
            ep_id = ep.episode_id
            total_frames += ep.num_frames
            rows.append(_episode_row(ep_index, ep, path, held_set, hdf5_keys, qa.get(ep_id, EpisodeQA()),
                                     headers[ep_index].outcome))
            say(f"episode {ep_index + 1}/{len(headers)} {ep_id}: {ep.num_frames} frames")
        dataset.finalize()
    except BaseException:
        if dataset is not None:
            try:
                dataset.finalize()
            except Exception:  # noqa: BLE001 - the original error is what matters
                pass
        raise

    k, n = len(train_ids), len(headers)
    splits = write_splits(out_root, k, n)
    write_train_stats(out_root, list(range(k)))
    add_episode_columns(out_root, {r["episode_index"]: {
        "hvla/episode_id": r["episode_id"], "hvla/split": r["split"], "hvla/qa_status": r["qa_status"],
        "hvla/quality_score": r["quality_score"], "hvla/success": r["success"],
        "hvla/min_distance_m": r["min_distance_m"]} for r in rows})
    cameras = _camera_sources_of(list(spec.cameras), [h.cameras for h in headers])
    write_hvla_episodes(out_root, rows, build_metadata(spec, cameras))
    info = json.loads((out_root / "meta" / "info.json").read_text())
    if info["total_episodes"] != n or info["total_frames"] != total_frames:
        raise RuntimeError(f"LeRobot wrote {info['total_episodes']} episodes / {info['total_frames']} frames, "
                           f"expected {n} / {total_frames}")
    result = LeRobotBuildResult(
        root=out_root, num_episodes=n, num_frames=total_frames,
        episode_ids=[h.episode_id for h in headers], train_episode_ids=train_ids, heldout_episode_ids=held_ids,
        features=info["features"], fps=int(info["fps"]),
        train_episode_indices=list(range(k)), heldout_episode_indices=list(range(k, n)),
        video_codec=spec.video_codec, splits=splits,
        cameras=cameras,
        profile=profile.key, robot_type=spec.robot_type,
    )
    (out_root / "README.md").write_text(dataset_card(spec, result, rows, rights))
    return result


def camera_sources(cameras: list[str], episodes: list[EpisodeData]) -> list[CameraSource]:
    """Per camera, its source rate range and repeated frames over ``episodes`` (read with or
    without images: only ``source_index`` and ``source_rate_hz`` are used)."""
    return _camera_sources_of(cameras, [_camera_summary(ep, cameras) for ep in episodes])


def write_splits(root: Path, num_train: int, num_episodes: int) -> dict[str, str]:
    """Set ``meta/info.json`` ``splits`` to ``{"train": "0:k", "test": "k:N"}`` (``"test"`` is the
    held-out split, left out when ``k == N``) with LeRobot's ``load_info``/``write_info``; returns it.
    Episodes ``0..k-1`` must be the train split (as :func:`build_lerobot_dataset` orders them).

    Raises:
        FileNotFoundError: ``root`` has no ``meta/info.json``.
    """
    import_lerobot_dataset()
    from lerobot.datasets.utils import load_info, write_info

    info = load_info(Path(root))
    splits = {"train": f"0:{num_train}"}
    if num_episodes > num_train:
        splits[LEROBOT_HELDOUT_SPLIT] = f"{num_train}:{num_episodes}"
    info["splits"] = splits
    write_info(info, Path(root))
    return splits


def episode_stats(root: Path) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """LeRobot's per-episode stats, ``{episode_index: {feature: {stat: array}}}``, read from the
    ``stats/<feature>/<stat>`` columns of ``meta/episodes/**/*.parquet`` (LeRobot's
    ``unflatten_dict`` / ``cast_stats_to_numpy``; image stats come back as (3, 1, 1) arrays).

    Raises:
        LeRobotReleaseError: the dataset has no episode metadata files.
    """
    import_lerobot_dataset()
    from lerobot.datasets.utils import cast_stats_to_numpy, unflatten_dict

    files = sorted((Path(root) / "meta" / "episodes").rglob("*.parquet"))
    if not files:
        raise LeRobotReleaseError(f"{root}/meta/episodes has no Parquet files")
    out: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for f in files:
        t = pq.read_table(f)
        names = [c for c in t.column_names if c.startswith("stats/")]
        cols = {c: t.column(c).to_pylist() for c in names}
        for i, idx in enumerate(t.column("episode_index").to_pylist()):
            flat = {c[len("stats/"):]: cols[c][i] for c in names}
            out[int(idx)] = cast_stats_to_numpy(unflatten_dict(flat))
    return out


def write_train_stats(root: Path, train_episode_indices: list[int]) -> dict[str, dict[str, np.ndarray]]:
    """Replace ``meta/stats.json`` by LeRobot's ``aggregate_stats`` of the train episodes'
    per-episode stats (:func:`episode_stats`), features in sorted order, written with LeRobot's
    ``write_stats``; returns the stats written. Without train episodes the file is removed (LeRobot
    then loads ``meta.stats`` as ``None``) and ``{}`` returned: stats of held-out data must not be
    there for anyone to normalise with.

    Raises:
        LeRobotReleaseError: a train episode has no stats in ``meta/episodes``.
    """
    import_lerobot_dataset()
    from lerobot.datasets.compute_stats import aggregate_stats
    from lerobot.datasets.utils import STATS_PATH, write_stats

    if not train_episode_indices:
        (Path(root) / STATS_PATH).unlink(missing_ok=True)
        return {}
    per_episode = episode_stats(root)
    missing = [i for i in train_episode_indices if i not in per_episode]
    if missing:
        raise LeRobotReleaseError(f"{root}: cannot compute train stats: train episodes {missing} have no "
                                  "per-episode stats in meta/episodes")
    stats = aggregate_stats([per_episode[i] for i in train_episode_indices])
    stats = {name: stats[name] for name in sorted(stats)}  # aggregate_stats iterates over a set
    write_stats(stats, Path(root))
    return stats


def add_episode_columns(root: Path, values: Mapping[int, Mapping[str, Any]]) -> None:
    """Add :data:`LEROBOT_EPISODE_COLUMNS` to every ``meta/episodes/**/*.parquet`` file (values per
    ``episode_index``; ``None`` is written as null), keeping LeRobot's columns, order and
    compression (snappy, dictionary encoding, as LeRobot's writer uses).

    Raises:
        LeRobotReleaseError: an episode of the files has no values.
    """
    for f in sorted((Path(root) / "meta" / "episodes").rglob("*.parquet")):
        t = pq.read_table(f)
        idx = [int(i) for i in t.column("episode_index").to_pylist()]
        missing = [i for i in idx if i not in values]
        if missing:
            raise LeRobotReleaseError(f"{f}: no hvla episode metadata for episode_index {missing}")
        for name, typ in LEROBOT_EPISODE_COLUMNS:
            col = pa.array([values[i].get(name) for i in idx], type=typ)
            if name in t.column_names:
                t = t.set_column(t.column_names.index(name), pa.field(name, typ), col)
            else:
                t = t.append_column(pa.field(name, typ), col)
        pq.write_table(t, f, compression="snappy", use_dictionary=True)


_HVLA_EPISODES_SCHEMA = pa.schema([
    ("episode_index", pa.int64()), ("episode_id", pa.string()), ("robot_id", pa.string()),
    ("capture_day", pa.string()), ("task", pa.string()), ("split", pa.string()),
    ("num_frames", pa.int64()), ("start_time_ns", pa.int64()), ("hdf5_key", pa.string()), ("hdf5_sha256", pa.string()),
    ("source_key", pa.string()), ("source_sha256", pa.string()), ("qa_status", pa.string()),
    ("quality_score", pa.float64()), ("qa_note", pa.string()), ("success", pa.bool_()),
    ("min_distance_m", pa.float64()),
])


def write_hvla_episodes(root: Path, rows: list[dict[str, Any]], metadata: Mapping[str, str] | None = None) -> Path:
    """Write :data:`HVLA_EPISODES_PATH` under ``root``, one row per episode in ``episode_index``
    order. Columns: ``episode_index`` int64, ``episode_id``, ``robot_id``, ``capture_day``, ``task``,
    ``split`` ("train"/"heldout"), ``num_frames`` int64, ``start_time_ns`` int64 (ROS time of frame 0,
    ns since the Unix epoch), ``hdf5_key`` (lake key of the HDF5),
    ``hdf5_sha256``, ``source_key`` (lake key of the raw MCAP), ``source_sha256``, ``qa_status``
    (:data:`~hvla_platform.lib.core.tables.QA_STATUSES`), ``quality_score`` float64 in [0, 1],
    ``qa_note``, ``success`` bool and ``min_distance_m`` float64 (metres; the recording's outcome).
    Nulls mean unknown. Keys are relative to the lake root: no local path is written.

    ``metadata`` goes into the file's schema metadata (:func:`read_hvla_metadata`): how the release
    was written, what a later version needs to reuse it (:data:`HVLA_BUILD_METADATA`)."""
    path = Path(root) / HVLA_EPISODES_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = _HVLA_EPISODES_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in (metadata or {}).items()})
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


#: Schema-metadata keys of :data:`HVLA_EPISODES_PATH`: ``hvla/image_stats_frames`` (frames per
#: episode and camera the image statistics were computed on), ``hvla/video_codec`` (the spec's
#: ``video_codec``), ``hvla/cameras`` (JSON list of :class:`CameraSource` fields over the release).
HVLA_BUILD_METADATA = ("hvla/image_stats_frames", "hvla/video_codec", "hvla/cameras")


def build_metadata(spec: ReleaseSpec, cameras: list[CameraSource]) -> dict[str, str]:
    """The :data:`HVLA_BUILD_METADATA` of a release written now with ``spec``."""
    return {"hvla/image_stats_frames": str(IMAGE_STATS_FRAMES), "hvla/video_codec": spec.video_codec,
            "hvla/cameras": json.dumps([vars(c) for c in cameras], sort_keys=True)}


def read_hvla_metadata(root: Path) -> dict[str, str]:
    """The schema metadata of :data:`HVLA_EPISODES_PATH` (``{}`` for a release written before it
    was recorded).

    Raises:
        FileNotFoundError: the dataset has no hvla episode mapping.
    """
    md = pq.read_schema(Path(root) / HVLA_EPISODES_PATH).metadata or {}
    return {k.decode(): v.decode() for k, v in md.items() if k.decode().startswith("hvla/")}


def read_hvla_episodes(root: Path) -> list[dict[str, Any]]:
    """Rows of :data:`HVLA_EPISODES_PATH`, sorted by ``episode_index`` (columns: see
    :func:`write_hvla_episodes`; a file written before a column existed lacks it).

    Raises:
        FileNotFoundError: the dataset has no hvla episode mapping.
    """
    rows = pq.read_table(Path(root) / HVLA_EPISODES_PATH).to_pylist()
    return sorted(rows, key=lambda r: r["episode_index"])


def _fmt_list(values: Any) -> str:
    if isinstance(values, (list, tuple)):
        return ", ".join(str(v) for v in values) if values else "(none)"
    return str(values)


def _fmt_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _fmt_outcome(success: bool | None) -> str:
    return "unknown" if success is None else ("success" if success else "miss")


def _fmt_rate(cam: CameraSource) -> str:
    if cam.rate_min_hz is None or cam.rate_max_hz is None:
        return "source rate not recorded"
    lo, hi = f"{cam.rate_min_hz:.1f}", f"{cam.rate_max_hz:.1f}"
    return f"recorded at {lo} Hz" if lo == hi else f"recorded at {lo}–{hi} Hz (per episode)"


def _camera_lines(result: LeRobotBuildResult) -> list[str]:
    lines = []
    for cam in result.cameras:
        line = f"- `{IMAGE_KEY_PREFIX}{cam.camera}`: {_fmt_rate(cam)}"
        if cam.repeated_fraction is None:
            line += "; which source frames the dataset frames show was not recorded (HDF5 format version 1)."
        else:
            how = ("upsampled to the dataset's" if cam.rate_max_hz is not None and cam.rate_max_hz < result.fps
                   else "resampled to the dataset's")
            line += (f", {how} {result.fps} fps by showing the nearest source frame at each frame time "
                     f"(no interpolation): {cam.repeated_frames} of {cam.frames} frames "
                     f"({cam.repeated_fraction:.1%}) repeat the previous frame exactly.")
            if cam.episodes_unknown:
                line += f" ({cam.episodes_unknown} episode(s) without recorded source frames not counted.)"
        lines.append(line)
    return lines


def _index_range(first: int, last: int) -> str:
    return f"{first}" if first == last else f"{first}–{last}"


def _episodes_arg(indices: list[int]) -> str:
    if len(indices) <= 64:
        return "[" + ",".join(str(i) for i in indices) + "]"
    return f"[{indices[0]},{indices[1]},…,{indices[-1]}]"


_STATUS_WORD = {"passed": "passed", "failed": "**warning**", "not_judged": "not judged"}


def _coverage_lines(qa: ReleaseQA) -> list[str]:
    """The card's "Coverage and balance" section, from the ``task_coverage`` and
    ``action_chunk_fit`` findings (so the card and the asset checks say the same)."""
    cov, fit, th = qa.check("task_coverage"), qa.check("action_chunk_fit"), qa.thresholds
    tasks = cov.values.get("tasks", {})
    lines = ["## Coverage and balance",
             "Per task, the train split (what a policy learns from) and the held-out split:", "",
             "| task | train episodes | train frames | share of train frames | held-out episodes | held-out frames |",
             "|---|---|---|---|---|---|"]
    for task, t in tasks.items():
        share = "–" if t["train_frame_share"] is None else f"{t['train_frame_share']:.1%}"
        lines.append(f"| {task} | {t['train_episodes']} | {t['train_frames']} | {share} | {t['heldout_episodes']} | "
                     f"{t['heldout_frames']} |")
    lines.append("")
    if "imbalance" in cov.values:
        lines.append(f"- Task imbalance (largest / smallest train episode count): {cov.values['imbalance']:.1f} "
                     f"(warning above {th.max_task_imbalance:g}); tasks with fewer than {th.min_episodes_per_task} "
                     f"train episodes: {_fmt_list(cov.values['too_few'])}.")
    else:
        lines.append(f"- Task balance: {cov.detail}.")
    if "short" in fit.values:
        short = fit.values["short"]
        lines.append(f"- Train episodes shorter than the action horizon ({th.action_horizon} frames, a policy's "
                     "action chunk; openpi's default `action_horizon` unless the release spec's `qa` sets it): "
                     + (", ".join(f"{e} ({n} frames)" for e, n in short.items()) if short else
                        f"none (shortest {fit.values['shortest_train_frames']} frames)") + ".")
    else:
        lines.append(f"- Action chunks: {fit.detail}.")
    return lines


def _release_check_lines(qa: ReleaseQA) -> list[str]:
    """The card's "Release checks" section: one line per check."""
    return ["## Release checks",
            "Warnings, never blocking and never excluding an episode (thresholds: the release spec's `qa`; "
            "the same findings are the `lerobot_dataset` asset checks and the release manifest's `release_checks`):",
            *[f"- `{c.check}`: {_STATUS_WORD[c.status]} — {c.detail}" for c in qa.checks]]


def dataset_card(spec: ReleaseSpec, result: LeRobotBuildResult, rows: list[dict[str, Any]],
                 rights: dict | None) -> str:
    """Markdown dataset card (``README.md``): source, robot and its robot profile
    (``<name>@<version>``), the features with their shapes, cameras with their source rates and
    repeated frames, action space, fps, counts, the splits as LeRobot's metadata states them, QA
    status / quality score / outcome per episode, and the data rights. With
    ``result.release_checks`` (a release build sets it), also "Coverage and balance" (per task:
    train / held-out episodes and frames, share of train frames; task imbalance; train episodes
    shorter than the action horizon) and "Release checks" (one line per check), both rendered from
    those findings.

    ``rows`` are the :data:`HVLA_EPISODES_PATH` rows. The card is a function of its inputs only (no
    build time), so rebuilding the same release gives the same bytes.

    Raises:
        ProfileError: the spec's robot profile cannot be loaded (its depth cameras are named on the
            card; the profile key is ``result.profile``, or the profile's own when that is empty).
    """
    profile = spec.robot_profile()
    profile_key = result.profile or profile.key
    depth = [c for c in profile.depth_cameras if c not in spec.cameras]
    feats = result.features or {}
    has_loco = LOCO_KEY in feats if feats else profile.locomotion is not None
    feature_lines = [f"  - `{name}`: {ft['dtype']} {tuple(ft['shape'])}" for name, ft in sorted(feats.items())
                     if name in (STATE_KEY, ACTION_KEY, LOCO_KEY) or name.startswith(IMAGE_KEY_PREFIX)]
    robots = sorted({r["robot_id"] for r in rows})
    days = sorted({r["capture_day"] for r in rows})
    tasks = sorted({r["task"] for r in rows})
    n_train = sum(r["num_frames"] for r in rows if r["split"] == "train")
    n_held = sum(r["num_frames"] for r in rows if r["split"] == "heldout")
    k = len(result.train_episode_ids)
    split_json = json.dumps(result.splits or {"train": f"0:{k}"})
    statuses = {s: sum(r["qa_status"] == s for r in rows) for s in QA_STATUSES}
    scores = sorted(r["quality_score"] for r in rows if r["quality_score"] is not None)
    outcomes = [r["success"] for r in rows]
    lines = [
        "---",
        f"license: {_fmt_list(sorted(rights['licenses'])) if rights else 'unknown'}",
        f"tags: [LeRobot, hvla-platform, {spec.robot_type.replace('_', '-')}]",
        "---",
        f"# {spec.repo_id} (release `{spec.name}`)",
        "",
        spec.description or f"Teleoperation episodes of a `{spec.robot_type}` robot for VLA training.",
        "",
        "## Source",
        f"- Built by hvla-platform from {result.num_episodes} processed episodes (HDF5, recorded as MCAP).",
        f"- Capture days: {_fmt_list(days)}; robots: {_fmt_list(robots)}.",
        f"- Release version `{spec.name}`: version {spec.version} of release spec `{spec.spec_name}` (digest "
        f"`{spec.digest()[:16]}`). A version never changes: a rebuild whose episodes, QA decisions or spec "
        "differ is published as the next version. The card states no build time: rebuilding the same "
        "version from the same episodes gives byte-identical files.",
        f"- Episode mapping (LeRobot episode_index → hvla episode id, split, QA, outcome, lake keys of the "
        f"HDF5 and raw MCAP): `{HVLA_EPISODES_PATH}`.",
        "",
        "## Robot and data",
        f"- Robot type: `{spec.robot_type}`; robot profile `{profile_key}` (every episode follows it; episodes "
        f"of other profiles are left out); LeRobot codebase v3.0; {result.fps} fps.",
        "- Features:",
        *feature_lines,
        f"- Cameras: {_fmt_list(list(spec.cameras))} (video, codec `{spec.video_codec}`)."
        + (f" Depth camera(s) of the profile ({_fmt_list(depth)}) stay in the HDF5 layer: a LeRobot video is "
           "colour." if depth else ""),
        f"- `observation.state` ({len(spec.state_joints)}, float32, rad): {_fmt_list(list(spec.state_joints))}.",
        f"- Action space `action` ({len(spec.action_joints)}, float32, joint position targets in rad): "
        f"{_fmt_list(list(spec.action_joints))}.",
        (f"- `observation.locomotion_command` (4, float32): {_fmt_list(LOCOMOTION_COMMAND_NAMES)}." if has_loco
         else f"- No `observation.locomotion_command`: robot profile `{profile_key}` has none."),
        f"- Tasks: {_fmt_list(tasks)}.",
        "",
        "## Cameras and frame rates",
        *_camera_lines(result),
        "",
        "## Size and splits",
        f"- Episodes: {result.num_episodes}; frames: {result.num_frames}.",
        (f"- Train: {k} episodes ({n_train} frames), `episode_index` {_index_range(0, k - 1)}." if k else
         "- Train: 0 episodes: an evaluation-only release."),
    ]
    if result.heldout_episode_ids:
        lines.append(f"- Held-out: {len(result.heldout_episode_ids)} episodes ({n_held} frames), `episode_index` "
                     f"{_index_range(k, result.num_episodes - 1)}: {_fmt_list(result.heldout_episode_ids)}.")
    else:
        lines.append("- Held-out: 0 episodes.")
    lines += [
        f"- `meta/info.json` `splits`: `{split_json}`. LeRobot's `{LEROBOT_HELDOUT_SPLIT}` split **is the "
        "held-out split**: never train or tune on it.",
        ("- `meta/stats.json` (the normalisation statistics LeRobot loads) is aggregated from the train "
         "episodes' per-episode statistics only; its `count` is the number of train frames." if k else
         "- No `meta/stats.json`: statistics are computed from train episodes only, and there are none."),
        (f"- Image statistics (`{IMAGE_KEY_PREFIX}*` in `meta/stats.json` and per episode in `meta/episodes`) "
         f"are computed on a sample: LeRobot's `get_feature_stats` over up to {IMAGE_STATS_FRAMES} evenly spaced "
         "frames per episode and camera (LeRobot's `sample_indices` spacing; each frame downsampled like LeRobot's "
         "`auto_downsample_height_width`), scaled to [0, 1]; their `count` is the number of sampled frames. "
         "(LeRobot's own writer samples max(100, T^0.75) frames per episode.) State and action statistics use "
         "every frame."),
        (f"- `lerobot-train` reads every episode unless told otherwise: train on the train split with "
         f"`--dataset.episodes='{_episodes_arg(result.train_episode_indices)}'`." if k else
         "- Nothing here is for training (`lerobot-train` would train on held-out data)."),
        "",
        *([*_coverage_lines(result.release_checks), ""] if result.release_checks is not None else []),
        "## QA and outcome",
        f"- QA status: {statuses['passed']} passed (quality score ≥ `min_quality` {spec.min_quality} and no QA "
        f"gate failed), {statuses['approved']} approved by a supervisor despite failing, "
        f"{statuses['unchecked']} unchecked.",
        (f"- Quality score: min {scores[0]:.3f}, median {scores[len(scores) // 2]:.3f}, max {scores[-1]:.3f}."
         if scores else "- Quality score: none recorded."),
        f"- Recorded outcome: {sum(o is True for o in outcomes)} success, {sum(o is False for o in outcomes)} "
        f"miss, {sum(o is None for o in outcomes)} unknown (the recording's own `metadata.yaml`).",
        "- Per episode (also in LeRobot's episode metadata, `meta/episodes` columns "
        f"{', '.join(f'`{n}`' for n, _ in LEROBOT_EPISODE_COLUMNS)}):",
        "",
        "| episode_index | episode id | split | QA status | quality score | outcome | min distance (m) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        dist = "–" if r["min_distance_m"] is None else f"{r['min_distance_m']:.4f}"
        lines.append(f"| {r['episode_index']} | {r['episode_id']} | {r['split']} | {r['qa_status']} | "
                     f"{_fmt_score(r['quality_score'])} | {_fmt_outcome(r['success'])} | {dist} |")
    notes = [r for r in rows if r.get("qa_note")]
    if notes:
        lines += ["", "Supervisor approvals:"]
        lines += [f"- {r['episode_id']}: {r['qa_note']}" for r in notes]
    if result.release_checks is not None:
        lines += ["", *_release_check_lines(result.release_checks)]
    lines += [
        "",
        "## Data rights",
    ]
    if rights is None:
        lines.append("- **No rights record was supplied for this build.** Do not use until one is attached.")
    else:
        lines += [
            f"- License: {_fmt_list(rights.get('licenses', []))}",
            f"- Allowed uses: {_fmt_list(rights.get('allowed_uses', []))}",
            f"- Data owners: {_fmt_list(rights.get('data_owners', []))}",
            f"- Sites: {_fmt_list(rights.get('sites', []))}",
            f"- Customers: {_fmt_list(rights.get('customers', []))}",
            f"- Consent references: {_fmt_list(rights.get('consent_refs', []))}",
            f"- Retention until: {rights.get('retention_until', 'unknown')}",
            f"- Contains human video: {rights.get('contains_human_video', 'unknown')}",
            f"- Contains customer environment: {rights.get('contains_customer_environment', 'unknown')}",
        ]
    lines += [
        "",
        "## Deletion and consent withdrawal",
        "- The raw recordings behind every episode are kept write-once in the platform's raw layer "
        "(their sha256 is in `meta/hvla_episodes.parquet` and the release manifest) until their "
        "retention date; this release is derived and can be rebuilt from them.",
        "- A deletion request or consent withdrawal goes to the data owner(s) above. The platform finds "
        "every artifact containing the affected episodes with `hvla lineage downstream consent:<id>` (or "
        "`customer:<name>`, or an episode id), leaves them out of every later release, and rebuilds "
        "this release as a new version without them; caches and checkpoints derived from it are "
        "flagged for rebuild/retraining rather than kept in service silently.",
        "- Episodes past their retention date never enter a new release.",
    ]
    return "\n".join(lines) + "\n"


def load_and_probe(root: Path, repo_id: str, video_backend: str = DEFAULT_VIDEO_BACKEND) -> dict[str, Any]:
    """Load the dataset with ``LeRobotDataset(repo_id, root=root, video_backend=...)`` and decode frames.

    Decodes the first and the last frame of the dataset (all cameras), i.e. through LeRobot's own
    ``__getitem__`` (Parquet row + video seek via the episode's from_timestamp).

    Returns:
        ``{"num_episodes", "num_frames", "fps", "video_backend", "cameras": {key: [C, H, W]},
        "frame_dtype", "frame_min", "frame_max", "state_shape", "action_shape", "robot_type"}``;
        decoded frames are float32 in [0, 1], channel-first (LeRobot's convention).

    Raises:
        whatever LeRobot raises when the dataset cannot be read or a frame cannot be decoded
        (e.g. ``FrameTimestampError``).
    """
    LeRobotDataset = import_lerobot_dataset()
    ds = LeRobotDataset(repo_id, root=Path(root), video_backend=video_backend)
    first, last = ds[0], ds[len(ds) - 1]
    cams = list(ds.meta.video_keys)
    lo = min(float(first[c].min()) for c in cams) if cams else None
    hi = max(float(first[c].max()) for c in cams) if cams else None
    for c in cams:
        if tuple(first[c].shape) != tuple(last[c].shape):
            raise RuntimeError(f"{c}: first and last decoded frames differ in shape")
    return {
        "num_episodes": int(ds.num_episodes),
        "num_frames": int(ds.num_frames),
        "fps": int(ds.fps),
        "video_backend": video_backend,
        "cameras": {c: list(first[c].shape) for c in cams},
        "frame_dtype": str(first[cams[0]].dtype) if cams else None,
        "frame_min": lo,
        "frame_max": hi,
        "state_shape": list(first[STATE_KEY].shape),
        "action_shape": list(first[ACTION_KEY].shape),
        "robot_type": ds.meta.robot_type,
    }


def feature_schema(info: dict[str, Any]) -> dict[str, Any]:
    """The comparable schema of a release from its ``meta/info.json`` dict.

    Returns:
        ``{"fps": int, "features": {name: {"dtype": str, "shape": [int], "names": list | None}}}``
        -- encoding details (``info`` of video features: codec, pix_fmt...) are not part of it.
    """
    feats = {}
    for name, ft in sorted(info["features"].items()):
        names = ft.get("names")
        feats[name] = {"dtype": str(ft["dtype"]), "shape": [int(x) for x in ft["shape"]],
                       "names": list(names) if isinstance(names, (list, tuple)) else names}
    return {"fps": int(info["fps"]), "features": feats}


def read_info(root: Path) -> dict[str, Any]:
    """``meta/info.json`` of a LeRobot dataset as a dict."""
    return json.loads((Path(root) / "meta" / "info.json").read_text())


def schema_diff(prev: dict[str, Any], cur: dict[str, Any]) -> list[str]:
    """Human-readable differences between two :func:`feature_schema` results (empty = stable)."""
    out: list[str] = []
    if prev["fps"] != cur["fps"]:
        out.append(f"fps changed: {prev['fps']} -> {cur['fps']}")
    pf, cf = prev["features"], cur["features"]
    for name in sorted(set(pf) - set(cf)):
        out.append(f"feature removed: {name}")
    for name in sorted(set(cf) - set(pf)):
        out.append(f"feature added: {name} ({cf[name]['dtype']} {cf[name]['shape']})")
    for name in sorted(set(pf) & set(cf)):
        a, b = pf[name], cf[name]
        for key in ("dtype", "shape"):
            if a[key] != b[key]:
                out.append(f"{name}: {key} changed: {a[key]} -> {b[key]}")
        if a.get("names") != b.get("names"):
            an, bn = a.get("names"), b.get("names")
            if isinstance(an, list) and isinstance(bn, list) and len(an) == len(bn):
                moved = [f"[{i}] {x} -> {y}" for i, (x, y) in enumerate(zip(an, bn)) if x != y]
                out.append(f"{name}: names changed: {'; '.join(moved)}")
            else:
                out.append(f"{name}: names changed: {an} -> {bn}")
    return out


