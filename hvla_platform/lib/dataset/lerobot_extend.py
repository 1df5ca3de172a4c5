"""A new release version from the previous one plus the new episodes (incremental build).

A nightly snapshot of a growing spec holds yesterday's episodes and a few new ones. Rebuilding it
from scratch re-encodes every episode; here the previous version's encoded videos and per-episode
statistics are reused and only the new episodes are encoded, so the cost of a version is about
proportional to what is new.

**When the previous version is reused** (:func:`reuse_problem`; otherwise a full build, and the
reason is returned and reported): same LeRobot features (names, shapes, dtypes), fps and robot
type; same video codec and same image-statistics sampling (recorded in the previous version's
``meta/hvla_episodes.parquet`` schema metadata, :data:`~.lerobot_release.HVLA_BUILD_METADATA`:
a version written before it was recorded is rebuilt in full once); every previous episode still
selected (none withdrawn, rejected, expired or removed) with the same HDF5 content (sha256); and
every previous episode still in the same split.

**Split and order.** The held-out split is drawn per episode (a salted hash of its id, or the
spec's explicit list), so adding episodes never moves an old one between splits. The invariant
stays: train episodes first, then held-out ones, each split one contiguous ``episode_index``
range (``splits`` in ``meta/info.json``). Within a split, the previous version's episodes keep
their order and the new ones follow, sorted by id:
``[old train][new train][old held-out][new held-out]``. So a train episode keeps its
``episode_index`` forever; a held-out episode's index moves up by the number of new train
episodes. A from-scratch build of the same selection orders each split by id instead, so the two
can number episodes differently; they hold the same episodes with the same frames, videos and
statistics (checked by the tests, per episode id).

**What is written** (LeRobot v3.0 layout; LeRobot's ``update_chunk_file_indices``,
``write_info``, ``write_tasks``, ``aggregate_stats``/``write_stats`` through
:func:`~.lerobot_release.write_train_stats`):

- the new episodes are first written with LeRobot's writer into a scratch dataset
  (:func:`~.lerobot_release.build_lerobot_dataset`, the fast path);
- ``videos/``: every previous video file is hard-linked (copied across file systems) unchanged —
  the rows of reused episodes keep their file and from/to timestamps — and the new episodes'
  video files are linked in after them with the next file indices;
- ``data/``: a previous data file holding only train episodes is linked unchanged (their
  ``index`` and ``episode_index`` do not change: a full build starts the held-out episodes in a
  new data file for this); the other rows (new episodes, and the previous held-out episodes,
  whose ``episode_index`` and ``index`` move) are rewritten with pyarrow, LeRobot's Parquet
  settings (snappy, dictionary) and schema, in final order — so this part still grows with the
  held-out split's frames (low-dimensional columns only);
- ``meta/episodes`` (one row per episode, with the per-episode statistics LeRobot computed when
  the episode was first written), ``meta/tasks.parquet`` (previous task indices kept, new tasks
  appended), ``meta/info.json``, ``meta/stats.json`` (aggregate of the train episodes),
  ``meta/hvla_episodes.parquet`` and the card are rewritten: metadata, a few KB per episode.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.dataset.episode_video import IMAGE_STATS_FRAMES
from hvla_platform.lib.dataset.lerobot_release import (
    IMAGE_KEY_PREFIX, LEROBOT_EPISODE_COLUMNS, CameraSource, EpisodeQA, LeRobotBuildResult, build_lerobot_dataset,
    build_metadata, dataset_card, lerobot_features, read_hvla_episodes, read_hvla_metadata, read_info, write_hvla_episodes,
    write_splits, write_train_stats)
from hvla_platform.lib.dataset.spec import ReleaseSpec


@dataclass
class ExtendResult:
    """What :func:`extend_lerobot_dataset` did.

    Attributes:
        result: the written release (:class:`~.lerobot_release.LeRobotBuildResult`).
        how: ``incremental`` (previous version reused) or ``full`` (built from scratch).
        reason: why the previous version could not be reused (empty when incremental).
        reused, new: episodes taken from the previous version / written now.
    """

    result: LeRobotBuildResult
    how: str
    reason: str
    reused: int
    new: int


def _episode_id(path: Path) -> str:
    with h5py.File(path, "r") as f:
        value = f.attrs["episode_id"]
    return value.decode() if isinstance(value, bytes) else str(value)


#: LeRobot's default features (every dataset has them; not part of the spec).
_LEROBOT_DEFAULT_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def _features_comparable(features: Mapping[str, Any]) -> dict[str, Any]:
    return {k: {"dtype": v["dtype"], "shape": [int(x) for x in v["shape"]], "names": list(v.get("names") or [])}
            for k, v in features.items() if k not in _LEROBOT_DEFAULT_FEATURES}


def reuse_problem(spec: ReleaseSpec, previous_root: Path, ids: list[str], hdf5_sha256: Mapping[str, str]) -> str:
    """Why the release at ``previous_root`` cannot be the base of a version of ``spec`` holding
    episodes ``ids`` (with those HDF5 sha256), or ``""`` when it can (module docstring).

    Raises:
        FileNotFoundError: ``previous_root`` is not a release written by this platform.
    """
    info = read_info(previous_root)
    meta = read_hvla_metadata(previous_root)
    if meta.get("hvla/image_stats_frames") is None:
        return "the previous version predates incremental builds (no build metadata)"
    if meta["hvla/image_stats_frames"] != str(IMAGE_STATS_FRAMES):
        return (f"the previous version's image statistics used {meta['hvla/image_stats_frames']} frames per episode, "
                f"this build uses {IMAGE_STATS_FRAMES}")
    if meta.get("hvla/video_codec") != spec.video_codec:
        return f"video codec changed: {meta.get('hvla/video_codec')} -> {spec.video_codec}"
    if int(info["fps"]) != spec.fps or info.get("robot_type") != spec.robot_type or info.get("codebase_version") != "v3.0":
        return "fps, robot type or LeRobot codebase version changed"
    shapes = {k[len(IMAGE_KEY_PREFIX):]: tuple(v["shape"]) for k, v in info["features"].items() if v["dtype"] == "video"}
    if set(shapes) != set(spec.cameras):
        return f"cameras changed: {sorted(shapes)} -> {sorted(spec.cameras)}"
    if _features_comparable(lerobot_features(spec, shapes)) != _features_comparable(info["features"]):
        return "features changed (names, shapes or dtypes)"
    rows = read_hvla_episodes(previous_root)
    current = set(ids)
    gone = [r["episode_id"] for r in rows if r["episode_id"] not in current]
    if gone:
        return f"{len(gone)} previous episode(s) no longer selected (withdrawn, rejected, expired or removed): {gone[:5]}"
    changed = [r["episode_id"] for r in rows if hdf5_sha256.get(r["episode_id"], r["hdf5_sha256"]) != r["hdf5_sha256"]]
    if changed:
        return f"{len(changed)} previous episode(s) were re-converted (HDF5 changed): {changed[:5]}"
    train, held = spec.split(sorted(current))
    split = {e: "train" for e in train} | {e: "heldout" for e in held}
    moved = [r["episode_id"] for r in rows if split[r["episode_id"]] != r["split"]]
    if moved:
        return f"{len(moved)} previous episode(s) changed split: {moved[:5]}"
    return ""


def extend_lerobot_dataset(
    spec: ReleaseSpec,
    previous_root: Path,
    episode_paths: list[Path],
    out_root: Path,
    *,
    episode_ids: Mapping[str, str] | None = None,
    hdf5_sha256: Mapping[str, str] | None = None,
    rights: dict | None = None,
    progress: Callable[[str], None] | None = None,
    hdf5_keys: Mapping[str, str] | None = None,
    episode_qa: Mapping[str, EpisodeQA] | None = None,
    workers: int | None = None,
) -> ExtendResult:
    """Write the release of ``episode_paths`` at ``out_root``, reusing the previous version at
    ``previous_root`` when :func:`reuse_problem` allows it, else with
    :func:`~.lerobot_release.build_lerobot_dataset` (module docstring).

    Args:
        spec, out_root, rights, progress, hdf5_keys, episode_qa, workers: as for
            :func:`~.lerobot_release.build_lerobot_dataset`. ``episode_qa`` also updates the QA
            columns of reused episodes (a supervisor's later decision).
        previous_root: the previous version's dataset directory (read only; files are hard-linked).
        episode_paths: every episode of the new version (previous ones and new ones).
        episode_ids: ``str(path)`` → episode id (default: read from each HDF5's attributes).
        hdf5_sha256: episode id → sha256 of its HDF5 as selected now (default: assumed unchanged).

    Returns:
        :class:`ExtendResult`.

    Raises:
        FileExistsError: ``out_root`` exists.
        LeRobotReleaseError: see :func:`~.lerobot_release.build_lerobot_dataset` (new episodes).
    """
    out_root, previous_root = Path(out_root), Path(previous_root)
    if out_root.exists():
        raise FileExistsError(f"{out_root} exists")
    say = progress or (lambda _m: None)
    ids_of = {str(p): (episode_ids or {}).get(str(p)) or _episode_id(Path(p)) for p in episode_paths}
    ids = list(ids_of.values())
    problem = reuse_problem(spec, previous_root, ids, hdf5_sha256 or {})
    if problem:
        say(f"full build: previous version not reusable: {problem}")
        res = build_lerobot_dataset(spec, episode_paths, out_root, rights=rights, progress=progress,
                                    hdf5_keys=hdf5_keys, episode_qa=episode_qa, workers=workers)
        return ExtendResult(res, "full", problem, 0, res.num_episodes)
    prev_rows = read_hvla_episodes(previous_root)
    known = {r["episode_id"] for r in prev_rows}
    new_paths = [Path(p) for p in episode_paths if ids_of[str(p)] not in known]
    say(f"incremental build: {len(prev_rows)} episode(s) reused from the previous version, {len(new_paths)} new")
    out_root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".hvla-new-", dir=out_root.parent) as tmp:
        new_root = Path(tmp) / "new"
        new_rows: list[dict[str, Any]] = []
        new_cams: list[CameraSource] = []
        if new_paths:
            new_res = build_lerobot_dataset(spec, new_paths, new_root, rights=rights, progress=progress,
                                            hdf5_keys=hdf5_keys, episode_qa=episode_qa, workers=workers)
            new_rows, new_cams = read_hvla_episodes(new_root), new_res.cameras
        result = _merge(spec, previous_root, new_root if new_paths else None, out_root, prev_rows, new_rows,
                        new_cams, episode_qa or {})
    (out_root / "README.md").write_text(dataset_card(spec, result, read_hvla_episodes(out_root), rights))
    return ExtendResult(result, "incremental", "", len(prev_rows), len(new_paths))


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def _episodes_table(root: Path) -> pa.Table:
    files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    t = pa.concat_tables([pq.read_table(f) for f in files])
    return t.take(pc.sort_indices(t, [("episode_index", "ascending")]))


def _merged_cameras(cams: list[str], a: list[dict[str, Any]], b: list[CameraSource]) -> list[CameraSource]:
    prev = {c["camera"]: c for c in a}
    new = {c.camera: c for c in b}
    out = []
    for cam in cams:
        parts = [CameraSource(**prev[cam])] if cam in prev else []
        parts += [new[cam]] if cam in new else []
        lo = [p.rate_min_hz for p in parts if p.rate_min_hz is not None]
        hi = [p.rate_max_hz for p in parts if p.rate_max_hz is not None]
        out.append(CameraSource(cam, min(lo) if lo else None, max(hi) if hi else None,
                                sum(p.repeated_frames for p in parts), sum(p.frames for p in parts),
                                sum(p.episodes_unknown for p in parts)))
    return out


def _merge(spec: ReleaseSpec, prev_root: Path, new_root: Path | None, out_root: Path, prev_rows: list[dict[str, Any]],
           new_rows: list[dict[str, Any]], new_cams: list[CameraSource],
           episode_qa: Mapping[str, EpisodeQA]) -> LeRobotBuildResult:
    """Write ``out_root`` from the previous release and the scratch release of the new episodes
    (module docstring, "What is written")."""
    import_lerobot_dataset()
    from lerobot.datasets.utils import load_tasks, update_chunk_file_indices, write_info, write_tasks  # deferred: LeRobot import is slow

    info = read_info(prev_root)
    chunks = int(info["chunks_size"])
    video_keys = [k for k, v in info["features"].items() if v["dtype"] == "video"]
    prev_eps = _episodes_table(prev_root)
    new_eps = _episodes_table(new_root) if new_root is not None else None

    # final order: [old train][new train][old held-out][new held-out]; (source, old episode_index)
    order = ([("prev", r["episode_index"]) for r in prev_rows if r["split"] == "train"]
             + [("new", r["episode_index"]) for r in new_rows if r["split"] == "train"]
             + [("prev", r["episode_index"]) for r in prev_rows if r["split"] == "heldout"]
             + [("new", r["episode_index"]) for r in new_rows if r["split"] == "heldout"])
    rows_of = {("prev", r["episode_index"]): r for r in prev_rows} | {("new", r["episode_index"]): r for r in new_rows}
    tables = {"prev": prev_eps, "new": new_eps}
    length = {k: int(tables[k[0]]["length"][k[1]].as_py()) for k in order}
    final_index = {k: i for i, k in enumerate(order)}
    start, acc = {}, 0
    for k in order:
        start[k] = acc
        acc += length[k]
    total_frames = acc

    # tasks: previous indices kept, new ones appended
    tasks = load_tasks(prev_root)
    task_map_new: dict[int, int] = {}
    if new_root is not None:
        new_tasks = load_tasks(new_root)
        for task, idx in zip(new_tasks.index, new_tasks["task_index"]):
            if task not in tasks.index:
                tasks.loc[task] = len(tasks)
            task_map_new[int(idx)] = int(tasks.loc[task, "task_index"])
    write_tasks(tasks, out_root)

    # videos: previous files linked as they are, new ones after them with the next indices
    video_file: dict[tuple[str, str, int, int], tuple[int, int]] = {}
    for key in video_keys:
        last = (0, -1)
        for f in sorted((prev_root / "videos" / key).rglob("*.mp4")):
            c, i = int(f.parent.name.split("-")[1]), int(f.stem.split("-")[1])
            _link(f, out_root / info["video_path"].format(video_key=key, chunk_index=c, file_index=i))
            video_file[("prev", key, c, i)] = (c, i)
            last = max(last, (c, i))
        if new_root is not None:
            for f in sorted((new_root / "videos" / key).rglob("*.mp4")):
                c, i = int(f.parent.name.split("-")[1]), int(f.stem.split("-")[1])
                last = update_chunk_file_indices(last[0], last[1], chunks) if last[1] >= 0 else (0, 0)
                _link(f, out_root / info["video_path"].format(video_key=key, chunk_index=last[0], file_index=last[1]))
                video_file[("new", key, c, i)] = last

    # data: previous train-only files linked; every other row rewritten in final order
    data_file: dict[tuple[str, int], tuple[int, int]] = {}  # episode → its (chunk, file) in out_root
    prev_files: dict[tuple[int, int], list[int]] = {}
    for ep, c, i in zip(prev_eps["episode_index"].to_pylist(), prev_eps["data/chunk_index"].to_pylist(),
                        prev_eps["data/file_index"].to_pylist()):
        prev_files.setdefault((c, i), []).append(ep)
    last = (0, -1)
    kept: set[tuple[str, int]] = set()
    for (c, i), eps in sorted(prev_files.items()):
        if all(final_index[("prev", e)] == e and rows_of[("prev", e)]["split"] == "train" for e in eps):
            _link(prev_root / info["data_path"].format(chunk_index=c, file_index=i),
                  out_root / info["data_path"].format(chunk_index=c, file_index=i))
            for e in eps:
                data_file[("prev", e)] = (c, i)
                kept.add(("prev", e))
            last = max(last, (c, i))
        else:
            break  # train-only files are a prefix of a release's files
    rest = [k for k in order if k not in kept]

    def source_files(src: str) -> list[tuple[Path, list[int]]]:
        root, t = (prev_root, prev_eps) if src == "prev" else (new_root, new_eps)
        files: dict[tuple[int, int], list[int]] = {}
        for ep, c, i in zip(t["episode_index"].to_pylist(), t["data/chunk_index"].to_pylist(),
                            t["data/file_index"].to_pylist()):
            files.setdefault((c, i), []).append(ep)
        return [(root / info["data_path"].format(chunk_index=c, file_index=i), eps) for (c, i), eps in sorted(files.items())]

    segments: list[tuple[str, list[tuple[str, int]]]] = []  # consecutive runs of `rest` from one source
    for k in rest:
        if segments and segments[-1][0] == k[0]:
            segments[-1][1].append(k)
        else:
            segments.append((k[0], [k]))
    cache: dict[str, list[tuple[Path, list[int]]]] = {}
    for src, keys in segments:
        wanted = {e for _s, e in keys}
        for path, eps in cache.setdefault(src, source_files(src)):
            take = [e for e in eps if e in wanted]
            if not take:
                continue
            t = pq.read_table(path)
            ep_col = t["episode_index"].to_numpy()
            t = t.filter(pa.array(np.isin(ep_col, take)))
            ep_col = t["episode_index"].to_numpy()
            idx_col = t["index"].to_numpy()
            first_of = {e: int(idx_col[ep_col == e].min()) for e in take}
            new_ep = np.array([final_index[(src, int(e))] for e in ep_col], dtype=np.int64)
            new_idx = np.array([start[(src, int(e))] + int(i) - first_of[int(e)] for e, i in zip(ep_col, idx_col)],
                               dtype=np.int64)
            t = t.set_column(t.schema.get_field_index("episode_index"), t.schema.field("episode_index"), pa.array(new_ep))
            t = t.set_column(t.schema.get_field_index("index"), t.schema.field("index"), pa.array(new_idx))
            if src == "new":
                ti = np.array([task_map_new[int(x)] for x in t["task_index"].to_numpy()], dtype=np.int64)
                t = t.set_column(t.schema.get_field_index("task_index"), t.schema.field("task_index"), pa.array(ti))
            order_rows = np.argsort(new_idx, kind="stable")
            t = t.take(pa.array(order_rows))
            last = update_chunk_file_indices(last[0], last[1], chunks) if last[1] >= 0 else (0, 0)
            dst = out_root / info["data_path"].format(chunk_index=last[0], file_index=last[1])
            dst.parent.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(dst, schema=t.schema, compression="snappy", use_dictionary=True) as w:
                w.write_table(t)
            for e in take:
                data_file[(src, e)] = last

    # meta/episodes: one row per episode in final order
    hvla_rows: list[dict[str, Any]] = []
    parts = []
    for k in order:
        t = tables[k[0]]
        parts.append(t.slice(k[1], 1) if int(t["episode_index"][k[1]].as_py()) == k[1] else
                     t.filter(pc.equal(t["episode_index"], k[1])))
        r = dict(rows_of[k])
        r["episode_index"] = final_index[k]
        q = episode_qa.get(r["episode_id"])
        if q is not None:
            r["qa_status"], r["quality_score"], r["qa_note"] = q.status, q.quality_score, q.note
        hvla_rows.append(r)
    schema = prev_eps.schema
    meta = pa.concat_tables([p.cast(schema) if p.schema != schema else p for p in parts])
    n = len(order)
    cols: dict[str, list[Any]] = {
        "episode_index": list(range(n)),
        "dataset_from_index": [start[k] for k in order],
        "dataset_to_index": [start[k] + length[k] for k in order],
        "data/chunk_index": [data_file[k][0] for k in order],
        "data/file_index": [data_file[k][1] for k in order],
        "meta/episodes/chunk_index": [0] * n, "meta/episodes/file_index": [0] * n,
    }
    for key in video_keys:
        cs, fs = meta[f"videos/{key}/chunk_index"].to_pylist(), meta[f"videos/{key}/file_index"].to_pylist()
        mapped = [video_file[(k[0], key, c, f)] for k, c, f in zip(order, cs, fs)]
        cols[f"videos/{key}/chunk_index"] = [m[0] for m in mapped]
        cols[f"videos/{key}/file_index"] = [m[1] for m in mapped]
    hv = {"hvla/episode_id": "episode_id", "hvla/split": "split", "hvla/qa_status": "qa_status",
          "hvla/quality_score": "quality_score", "hvla/success": "success", "hvla/min_distance_m": "min_distance_m"}
    for name, typ in LEROBOT_EPISODE_COLUMNS:
        cols[name] = [r[hv[name]] for r in hvla_rows]
    for name, values in cols.items():
        j = meta.schema.get_field_index(name)
        meta = meta.set_column(j, meta.schema.field(name), pa.array(values, type=meta.schema.field(name).type))
    ep_path = out_root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(meta, ep_path, compression="snappy", use_dictionary=True)

    k_train = sum(r["split"] == "train" for r in hvla_rows)
    info.update(total_episodes=n, total_frames=total_frames, total_tasks=len(tasks))
    write_info(info, out_root)
    splits = write_splits(out_root, k_train, n)
    write_train_stats(out_root, list(range(k_train)))
    cams = _merged_cameras(list(spec.cameras), json.loads(read_hvla_metadata(prev_root)["hvla/cameras"]), new_cams)
    write_hvla_episodes(out_root, hvla_rows, build_metadata(spec, cams))
    ids = [r["episode_id"] for r in hvla_rows]
    return LeRobotBuildResult(
        root=out_root, num_episodes=n, num_frames=total_frames, episode_ids=ids,
        train_episode_ids=sorted(ids[:k_train]), heldout_episode_ids=sorted(ids[k_train:]),
        features=info["features"], fps=int(info["fps"]),
        train_episode_indices=list(range(k_train)), heldout_episode_indices=list(range(k_train, n)),
        video_codec=spec.video_codec, splits=splits, cameras=cams, profile=spec.robot_profile().key,
        robot_type=spec.robot_type)
