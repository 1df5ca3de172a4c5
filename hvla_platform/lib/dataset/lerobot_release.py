"""Build a LeRobotDataset v3.0 release from processed-episode HDF5 files.

The dataset is written with LeRobot's own writer (``LeRobotDataset.create`` → ``add_frame`` per
frame → ``save_episode`` per episode → ``finalize``), so its layout is whatever lerobot 0.4.4
produces for codebase version v3.0::

    <root>/meta/info.json                          schema, fps, totals (LeRobot)
    <root>/meta/tasks.parquet, meta/stats.json     (LeRobot)
    <root>/meta/episodes/chunk-*/file-*.parquet    per-episode index + video from/to timestamps
    <root>/data/chunk-*/file-*.parquet             frame rows (several episodes per file)
    <root>/videos/<video_key>/chunk-*/file-*.mp4   one video file holds several episodes
    <root>/meta/hvla_episodes.parquet              ours: episode_index → hvla episode id, split
    <root>/README.md                               ours: dataset card with the data rights

Features (names are part of the release schema, see :func:`feature_schema`):

==================================  =========  ==========  ======================================
key                                 dtype      shape       meaning
==================================  =========  ==========  ======================================
``observation.state``               float32    (D,)        ``spec.state_joints`` positions, rad
``action``                          float32    (A,)        ``spec.action_joints`` targets, rad
``observation.locomotion_command``  float32    (4,)        forward/lateral/yaw flag, stance h (m)
``observation.images.<camera>``     video      (H, W, 3)   RGB, encoded with ``spec.video_codec``
==================================  =========  ==========  ======================================

plus LeRobot's default ``timestamp`` (s, = frame_index / fps), ``frame_index``, ``episode_index``,
``index`` and ``task_index``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.formats.episode_h5 import EpisodeData, read_episode_h5
from hvla_platform.lib.formats.recording.contract import LOCOMOTION_COMMAND_NAMES
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.core import features
from hvla_platform.lib.core.lake import sha256_file

STATE_KEY, ACTION_KEY, LOCO_KEY, IMAGE_KEY_PREFIX = features.STATE, features.ACTION, features.LOCOMOTION_COMMAND, features.IMAGE_PREFIX
#: Our episode mapping file, relative to the dataset root. LeRobot 0.4.4 only reads
#: ``meta/info.json``, ``meta/stats.json``, ``meta/tasks.parquet`` and ``meta/episodes/**``, so an
#: extra file directly under ``meta/`` is left alone (checked by reloading in the tests).
HVLA_EPISODES_PATH = "meta/hvla_episodes.parquet"
#: Default video decoding backend: LeRobot's "pyav" backend calls ``torchvision.io.VideoReader``,
#: which torchvision 0.28 removed; torchcodec 0.13 works with Debian's FFmpeg 5.1.
DEFAULT_VIDEO_BACKEND = "torchcodec"
#: Max |HDF5 timestamp - k/fps| accepted, seconds (LeRobot's own default tolerance is 1e-4 s).
TIMESTAMP_TOLERANCE_S = 1e-4


class LeRobotReleaseError(ValueError):
    """The episodes cannot be made into the requested release (the message names the episode)."""


@dataclass
class LeRobotBuildResult:
    """What :func:`build_lerobot_dataset` wrote.

    Attributes:
        root: dataset root directory.
        num_episodes, num_frames: totals.
        episode_ids: hvla episode ids in LeRobot ``episode_index`` order (index = position).
        train_episode_ids, heldout_episode_ids: the split (sorted ids).
        train_episode_indices, heldout_episode_indices: the same split as LeRobot episode indices.
        features: the ``features`` block of ``meta/info.json`` (LeRobot's format).
        fps: frames per second.
        video_codec: the LeRobot ``vcodec`` used.
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


def _select(values: np.ndarray, names: list[str], wanted: tuple[str, ...], what: str, ep_id: str) -> np.ndarray:
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in wanted if j not in index]
    if missing:
        raise LeRobotReleaseError(f"episode {ep_id}: {what} has no joint(s) {missing} (it has {names})")
    return np.ascontiguousarray(values[:, [index[j] for j in wanted]], dtype=np.float32)


def lerobot_features(spec: ReleaseSpec, image_shapes: Mapping[str, tuple[int, int, int]]) -> dict[str, dict]:
    """The LeRobot ``features`` argument of ``LeRobotDataset.create`` for ``spec``.

    Args:
        image_shapes: camera → (H, W, 3).
    """
    feats: dict[str, dict] = {
        STATE_KEY: {"dtype": "float32", "shape": (len(spec.state_joints),), "names": list(spec.state_joints)},
        ACTION_KEY: {"dtype": "float32", "shape": (len(spec.action_joints),), "names": list(spec.action_joints)},
        LOCO_KEY: {"dtype": "float32", "shape": (4,), "names": list(LOCOMOTION_COMMAND_NAMES)},
    }
    for cam in spec.cameras:
        feats[IMAGE_KEY_PREFIX + cam] = {
            "dtype": "video", "shape": tuple(image_shapes[cam]), "names": ["height", "width", "channels"],
        }
    return feats


def build_lerobot_dataset(
    spec: ReleaseSpec,
    episode_paths: list[Path],
    out_root: Path,
    *,
    rights: dict | None = None,
    progress: Callable[[str], None] | None = None,
    source_uris: Mapping[str, str] | None = None,
) -> LeRobotBuildResult:
    """Write a LeRobot v3.0 dataset from processed-episode HDF5 files.

    Episodes are added in sorted ``episode_id`` order (LeRobot ``episode_index`` 0..N-1), every
    frame with ``task`` = the episode's task. Timestamps are LeRobot's ``frame_index / fps``
    (the HDF5 ``timestamps`` must already equal ``k / fps``). Also writes
    :data:`HVLA_EPISODES_PATH` (columns ``episode_index`` int64, ``episode_id``, ``robot_id``,
    ``capture_day``, ``task``, ``split`` ("train"/"heldout"), ``num_frames`` int64, ``hdf5_uri``,
    ``hdf5_sha256``, ``source_uri``, ``source_sha256``) and a dataset card ``README.md``.

    Args:
        spec: the release spec (fps, cameras, joints, split, video codec, robot type, repo id).
        episode_paths: HDF5 files (:mod:`hvla_platform.lib.formats.episode_h5` format).
        out_root: dataset root; must not exist (LeRobot's ``create`` requires a fresh directory).
        rights: the release's rights as ``Rights.to_dict()``; written into the card. ``None``
            writes a card that says no rights record was supplied.
        progress: called with a short message per episode.
        source_uris: optional map ``str(local HDF5 path)`` → lake URI recorded as ``hdf5_uri``
            (default: the local path).

    Returns:
        :class:`LeRobotBuildResult`.

    Raises:
        FileExistsError: ``out_root`` exists.
        LeRobotReleaseError: no episodes, duplicate episode ids, an episode's fps differs from
            ``spec.fps``, its timestamps are not ``k / fps``, a joint or camera is missing, or image
            shapes differ between episodes.
        ValueError: LeRobot rejects ``spec.video_codec`` (``resolve_vcodec``).
    """
    out_root = Path(out_root)
    if out_root.exists():
        raise FileExistsError(f"{out_root} exists; LeRobotDataset.create needs a fresh directory")
    if not episode_paths:
        raise LeRobotReleaseError("no episodes to release")
    say = progress or (lambda _m: None)

    # Pass 1: metadata only (no images) to order, validate and size the release.
    headers: list[tuple[str, Path, EpisodeData]] = []
    for p in episode_paths:
        ep = read_episode_h5(p, load_images=False)
        headers.append((ep.episode_id, Path(p), ep))
    ids = [h[0] for h in headers]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise LeRobotReleaseError(f"duplicate episode id(s) {dupes}")
    headers.sort(key=lambda h: h[0])
    for ep_id, p, ep in headers:
        if abs(ep.fps - spec.fps) > 1e-9:
            raise LeRobotReleaseError(
                f"episode {ep_id} ({p}) is at {ep.fps} fps but release {spec.name} is at {spec.fps} fps; "
                "resample upstream")
        missing = [c for c in spec.cameras if c not in ep.skew]
        if missing:
            raise LeRobotReleaseError(f"episode {ep_id} ({p}) has no camera(s) {missing}")
        expected = np.arange(ep.num_frames) / spec.fps
        if ep.num_frames == 0:
            raise LeRobotReleaseError(f"episode {ep_id} ({p}) has no frames")
        err = float(np.max(np.abs(ep.timestamps - expected)))
        if err > TIMESTAMP_TOLERANCE_S:
            raise LeRobotReleaseError(
                f"episode {ep_id} ({p}): timestamps deviate from k/fps by up to {err:.6f} s")
        _select(ep.state, ep.state_names, spec.state_joints, "observation/state", ep_id)
        _select(ep.action, ep.action_names, spec.action_joints, "action", ep_id)

    train_ids, held_ids = spec.split([h[0] for h in headers])
    held_set = set(held_ids)

    LeRobotDataset = import_lerobot_dataset()
    dataset = None
    image_shapes: dict[str, tuple[int, int, int]] | None = None
    rows: list[dict[str, Any]] = []
    total_frames = 0
    try:
        for ep_index, (ep_id, path, _hdr) in enumerate(headers):
            ep = read_episode_h5(path)
            shapes = {c: tuple(int(x) for x in ep.images[c].shape[1:]) for c in spec.cameras}
            if image_shapes is None:
                image_shapes = shapes
                features = lerobot_features(spec, image_shapes)
                dataset = LeRobotDataset.create(
                    repo_id=spec.repo_id, fps=spec.fps, features=features, root=out_root,
                    robot_type=spec.robot_type, use_videos=True, vcodec=spec.video_codec,
                    video_backend=DEFAULT_VIDEO_BACKEND,
                )
            elif shapes != image_shapes:
                raise LeRobotReleaseError(
                    f"episode {ep_id} ({path}) has image shapes {shapes}, release has {image_shapes}")
            state = _select(ep.state, ep.state_names, spec.state_joints, "observation/state", ep_id)
            action = _select(ep.action, ep.action_names, spec.action_joints, "action", ep_id)
            loco = np.ascontiguousarray(ep.locomotion_command, dtype=np.float32)
            for k in range(ep.num_frames):
                frame: dict[str, Any] = {STATE_KEY: state[k], ACTION_KEY: action[k], LOCO_KEY: loco[k],
                                         "task": ep.task}
                for cam in spec.cameras:
                    frame[IMAGE_KEY_PREFIX + cam] = ep.images[cam][k]
                dataset.add_frame(frame)
            # Sequential encoding: LeRobot's parallel path forks a process pool per episode, which
            # buys nothing for small frames on 2 cores and is fragile inside threaded hosts.
            dataset.save_episode(parallel_encoding=False)
            total_frames += ep.num_frames
            rows.append({
                "episode_index": ep_index, "episode_id": ep_id, "robot_id": ep.robot_id,
                "capture_day": ep.capture_day, "task": ep.task,
                "split": "heldout" if ep_id in held_set else "train", "num_frames": ep.num_frames,
                "hdf5_uri": (source_uris or {}).get(str(path), str(path)), "hdf5_sha256": sha256_file(path),
                "source_uri": str(ep.attrs.get("source_uri", "")),
                "source_sha256": str(ep.attrs.get("source_sha256", "")),
            })
            say(f"episode {ep_index + 1}/{len(headers)} {ep_id}: {ep.num_frames} frames")
        assert dataset is not None
        dataset.finalize()
    except BaseException:
        if dataset is not None:
            try:
                dataset.finalize()
            except Exception:  # noqa: BLE001 - the original error is what matters
                pass
        raise

    write_hvla_episodes(out_root, rows)
    info = json.loads((out_root / "meta" / "info.json").read_text())
    if info["total_episodes"] != len(headers) or info["total_frames"] != total_frames:
        raise RuntimeError(f"LeRobot wrote {info['total_episodes']} episodes / {info['total_frames']} frames, "
                           f"expected {len(headers)} / {total_frames}")
    index_of = {r["episode_id"]: r["episode_index"] for r in rows}
    result = LeRobotBuildResult(
        root=out_root, num_episodes=len(headers), num_frames=total_frames,
        episode_ids=[h[0] for h in headers], train_episode_ids=train_ids, heldout_episode_ids=held_ids,
        features=info["features"], fps=int(info["fps"]),
        train_episode_indices=sorted(index_of[e] for e in train_ids),
        heldout_episode_indices=sorted(index_of[e] for e in held_ids),
        video_codec=spec.video_codec,
    )
    (out_root / "README.md").write_text(dataset_card(spec, result, rows, rights))
    return result


_HVLA_EPISODES_SCHEMA = pa.schema([
    ("episode_index", pa.int64()), ("episode_id", pa.string()), ("robot_id", pa.string()),
    ("capture_day", pa.string()), ("task", pa.string()), ("split", pa.string()),
    ("num_frames", pa.int64()), ("hdf5_uri", pa.string()), ("hdf5_sha256", pa.string()),
    ("source_uri", pa.string()), ("source_sha256", pa.string()),
])


def write_hvla_episodes(root: Path, rows: list[dict[str, Any]]) -> Path:
    """Write :data:`HVLA_EPISODES_PATH` under ``root`` (schema: see :func:`build_lerobot_dataset`)."""
    path = Path(root) / HVLA_EPISODES_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=_HVLA_EPISODES_SCHEMA), path)
    return path


def read_hvla_episodes(root: Path) -> list[dict[str, Any]]:
    """Rows of :data:`HVLA_EPISODES_PATH`, sorted by ``episode_index``.

    Raises:
        FileNotFoundError: the dataset has no hvla episode mapping.
    """
    rows = pq.read_table(Path(root) / HVLA_EPISODES_PATH).to_pylist()
    return sorted(rows, key=lambda r: r["episode_index"])


def _fmt_list(values: Any) -> str:
    if isinstance(values, (list, tuple)):
        return ", ".join(str(v) for v in values) if values else "(none)"
    return str(values)


def dataset_card(spec: ReleaseSpec, result: LeRobotBuildResult, rows: list[dict[str, Any]],
                 rights: dict | None) -> str:
    """Markdown dataset card: source, robot, cameras, action space, fps, counts, split and rights."""
    robots = sorted({r["robot_id"] for r in rows})
    days = sorted({r["capture_day"] for r in rows})
    tasks = sorted({r["task"] for r in rows})
    n_train = sum(r["num_frames"] for r in rows if r["split"] == "train")
    n_held = sum(r["num_frames"] for r in rows if r["split"] == "heldout")
    lines = [
        "---",
        f"license: {_fmt_list(sorted(rights['licenses'])) if rights else 'unknown'}",
        "tags: [LeRobot, hvla-platform, humanoid, unitree-g1]",
        "---",
        f"# {spec.repo_id} (release `{spec.name}`)",
        "",
        spec.description or "Humanoid whole-body teleoperation episodes for VLA training.",
        "",
        "## Source",
        f"- Built by hvla-platform from {result.num_episodes} processed episodes (HDF5, recorded as MCAP).",
        f"- Capture days: {_fmt_list(days)}; robots: {_fmt_list(robots)}.",
        f"- Built at {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}; "
        f"spec digest `{spec.digest()[:16]}`.",
        f"- Episode mapping (LeRobot episode_index → hvla episode id, split, source): `{HVLA_EPISODES_PATH}`.",
        "",
        "## Robot and data",
        f"- Robot type: `{spec.robot_type}`; LeRobot codebase v3.0; {result.fps} fps.",
        f"- Cameras: {_fmt_list(list(spec.cameras))} (video, codec `{spec.video_codec}`).",
        f"- `observation.state` ({len(spec.state_joints)}, float32, rad): {_fmt_list(list(spec.state_joints))}.",
        f"- Action space `action` ({len(spec.action_joints)}, float32, joint position targets in rad): "
        f"{_fmt_list(list(spec.action_joints))}.",
        f"- `observation.locomotion_command` (4, float32): {_fmt_list(LOCOMOTION_COMMAND_NAMES)}.",
        f"- Tasks: {_fmt_list(tasks)}.",
        "",
        "## Size and split",
        f"- Episodes: {result.num_episodes}; frames: {result.num_frames}.",
        f"- Train: {len(result.train_episode_ids)} episodes ({n_train} frames).",
        f"- Held-out: {len(result.heldout_episode_ids)} episodes ({n_held} frames): "
        f"{_fmt_list(result.heldout_episode_ids)}.",
        "- Normalization statistics for training must be computed on the train split only.",
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
        "frame_dtype", "frame_min", "frame_max", "state_shape", "action_shape"}``; decoded frames are
        float32 in [0, 1], channel-first (LeRobot's convention).

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


