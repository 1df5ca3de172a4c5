"""Write a LeRobot dataset in format **v2.1** from episodes of a LeRobot v3.0 release.

openpi's pinned LeRobot (and LeRobot 0.3.3, the newest PyPI release) read format v2.1 only; our
releases are v3.0 (LeRobot 0.4.4's writer), and LeRobot converts v2.1 → v3.0 only. This module
writes the other direction, for a chosen subset of the release's episodes, renumbered ``0..E-1`` in
the order given (layout of LeRobot 0.3.3 ``lerobot/datasets/utils.py``; the inverse of LeRobot
0.4.4's ``convert_dataset_v21_to_v30.py``)::

    <root>/meta/info.json            codebase_version "v2.1", v2.1 path templates, totals
                                     (episodes, frames, tasks, videos, chunks), chunks_size 1000,
                                     splits {<split>: "0:E"}, the release's features
    <root>/meta/episodes.jsonl       {"episode_index", "tasks": [instruction], "length"}
    <root>/meta/tasks.jsonl          {"task_index", "task"}: the episodes' instructions renumbered
                                     0..K-1 in order of first use
    <root>/meta/episodes_stats.jsonl {"episode_index", "stats": {feature: {min, max, mean, std, count}}}
    <root>/meta/stats.json           the same aggregated over the dataset's episodes (:func:`aggregate_stats`)
    <root>/data/chunk-{c:03d}/episode_{e:06d}.parquet           the episode's frame rows
    <root>/videos/chunk-{c:03d}/<video_key>/episode_{e:06d}.mp4  one MP4 per episode and camera

Frame rows are the release's rows with ``episode_index``, ``index`` (global, contiguous from 0)
and ``task_index`` rewritten; ``timestamp`` (s from the episode start) and ``frame_index`` are
kept. The release's Parquet schema metadata (``huggingface`` features in the datasets 4.x
spelling, which datasets ≤ 3.6 used by LeRobot 0.3.3 cannot parse) is dropped: the reader infers
the features from the Arrow types. Per-episode stats: min/max/mean/std (population)/count of every
non-video column computed from the rows written (float64), and the release's own per-episode image
statistics (``meta/episodes`` ``stats/<camera>/*``, computed by the release build on sampled source
frames; shape (3, 1, 1) in [0, 1]). Videos are cut by :mod:`hvla_platform.lib.dataset.openpi_video`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hvla_platform.lib.dataset.openpi_video import EpisodeCut, cut_episode_videos

V21 = "v2.1"
#: LeRobot 0.3.3 ``DEFAULT_CHUNK_SIZE``: episodes per chunk directory.
CHUNKS_SIZE = 1000
V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
#: v3.0-only keys of ``meta/info.json`` (LeRobot 0.4.4 ``convert_info`` adds them).
V30_ONLY_INFO_KEYS = ("data_files_size_in_mb", "video_files_size_in_mb")
#: The stats a v2.1 ``episodes_stats.jsonl`` holds per feature (LeRobot 0.3.3 ``compute_episode_stats``).
V21_STATS = ("min", "max", "mean", "std", "count")


class V21ExportError(ValueError):
    """The release cannot be written as v2.1 (unknown episode, missing file or column...)."""


@dataclass
class V21Dataset:
    """What :func:`write_v21_dataset` wrote.

    Attributes:
        root: the dataset directory.
        episodes: per exported episode, in export order: ``{"episode_index": new index,
            "release_episode_index": index in the release, "length": frames, "task": instruction}``.
        tasks: instructions by new ``task_index``.
        num_frames: rows written.
        video_keys: camera features written as per-episode MP4s.
    """

    root: Path
    episodes: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    num_frames: int = 0
    video_keys: list[str] = field(default_factory=list)


def read_release_episodes(release_root: Path) -> dict[int, dict[str, Any]]:
    """The v3.0 release's ``meta/episodes/**/*.parquet`` rows by ``episode_index`` (plain Python values).

    Raises:
        V21ExportError: no episode metadata.
    """
    files = sorted((Path(release_root) / "meta" / "episodes").rglob("*.parquet"))
    if not files:
        raise V21ExportError(f"{release_root}/meta/episodes has no Parquet files: not a LeRobot v3.0 dataset")
    out: dict[int, dict[str, Any]] = {}
    for f in files:
        for row in pq.read_table(f).to_pylist():
            out[int(row["episode_index"])] = row
    return out


def _column_stats(col: pa.ChunkedArray) -> dict[str, list]:
    """v2.1 stats of one numeric column of n rows: scalars → shape (1,), vectors → (D,)."""
    arr = col.combine_chunks()
    if pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type):
        x = np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=np.float64).reshape(len(arr), -1)
    else:
        x = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64).reshape(len(arr), 1)
    return {"min": x.min(0).tolist(), "max": x.max(0).tolist(), "mean": x.mean(0).tolist(),
            "std": x.std(0).tolist(), "count": [int(x.shape[0])]}


def aggregate_stats(per_episode: list[dict[str, dict[str, list]]]) -> dict[str, dict[str, list]]:
    """Dataset stats from per-episode stats, with LeRobot 0.3.3's ``aggregate_feature_stats``
    formulas: min of mins, max of maxes, count-weighted mean, pooled population variance
    ``sum(n_i (var_i + (mean_i - mean)^2)) / sum(n_i)``, summed count (what v2.1's
    ``meta/stats.json`` holds; LeRobot 0.3.3 itself recomputes it from ``episodes_stats.jsonl``)."""
    out: dict[str, dict[str, list]] = {}
    for key in per_episode[0]:
        s = [e[key] for e in per_episode]
        n = np.asarray([x["count"] for x in s], np.float64)  # (E, 1)
        means = np.stack([np.asarray(x["mean"], np.float64) for x in s])
        var = np.stack([np.asarray(x["std"], np.float64) ** 2 for x in s])
        w = n.reshape(n.shape[0], *([1] * (means.ndim - 1)))
        total = w.sum(0)
        mean = (means * w).sum(0) / total
        variance = ((var + (means - mean) ** 2) * w).sum(0) / total
        out[key] = {"min": np.min(np.stack([np.asarray(x["min"]) for x in s]), 0).tolist(),
                    "max": np.max(np.stack([np.asarray(x["max"]) for x in s]), 0).tolist(),
                    "mean": mean.tolist(), "std": np.sqrt(variance).tolist(), "count": [int(n.sum())]}
    return out


def _v21_info(v3_info: dict[str, Any], *, episodes: int, frames: int, tasks: int, split: str) -> dict[str, Any]:
    info = {k: v for k, v in v3_info.items() if k not in V30_ONLY_INFO_KEYS}
    video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
    info.update({
        "codebase_version": V21, "total_episodes": episodes, "total_frames": frames, "total_tasks": tasks,
        "total_videos": episodes * len(video_keys), "total_chunks": max(1, math.ceil(episodes / CHUNKS_SIZE)),
        "chunks_size": CHUNKS_SIZE, "splits": {split: f"0:{episodes}"}, "data_path": V21_DATA_PATH,
        "video_path": V21_VIDEO_PATH if video_keys else None,
    })
    features = {}
    for k, ft in info["features"].items():  # v3.0 may add a per-feature "fps" (LeRobot's converter does)
        features[k] = {kk: vv for kk, vv in ft.items() if not (kk == "fps" and ft.get("dtype") != "video")}
    info["features"] = features
    # the order LeRobot 0.3.3's create() writes
    order = ["codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "total_videos",
             "total_chunks", "chunks_size", "fps", "splits", "data_path", "video_path", "features"]
    return {k: info[k] for k in order if k in info} | {k: v for k, v in info.items() if k not in order}


def write_v21_dataset(release_root: str | Path, out_root: str | Path, release_episode_indices: list[int], *,
                      split: str, vcodec: str) -> V21Dataset:
    """Write the release's episodes ``release_episode_indices`` (in that order, renumbered
    ``0..E-1``) as a LeRobot v2.1 dataset at ``out_root`` (layout in the module docstring).

    Args:
        release_root: a LeRobot v3.0 dataset directory (a release).
        out_root: the new dataset's directory (created; must not hold a dataset already).
        release_episode_indices: release ``episode_index`` values to export, in export order.
        split: the name of the one split in ``info.json`` ``splits`` (``train`` or ``test``).
        vcodec: PyAV encoder for the per-episode MP4s (the release's ``video_codec``).

    Returns:
        :class:`V21Dataset`.

    Raises:
        V21ExportError: no episodes, an index the release lacks, a data file without the
            episode's rows or with another number of rows than its ``length``.
        VideoCutError: a source video does not hold the episode's frames.
    """
    src, out = Path(release_root), Path(out_root)
    if not release_episode_indices:
        raise V21ExportError("no episodes to export")
    if (out / "meta" / "info.json").exists():
        raise V21ExportError(f"{out} already holds a dataset")
    v3_info = json.loads((src / "meta" / "info.json").read_text())
    fps = int(v3_info["fps"])
    meta = read_release_episodes(src)
    missing = [i for i in release_episode_indices if i not in meta]
    if missing:
        raise V21ExportError(f"episode index(es) {missing} are not in the release ({sorted(meta)})")
    video_keys = [k for k, ft in v3_info["features"].items() if ft.get("dtype") == "video"]
    result = V21Dataset(root=out, video_keys=video_keys)
    task_index: dict[str, int] = {}
    (out / "meta").mkdir(parents=True, exist_ok=True)
    cuts: dict[Path, list[EpisodeCut]] = {}
    all_stats: list[dict[str, dict[str, list]]] = []
    with open(out / "meta" / "episodes.jsonl", "w") as ep_f, open(out / "meta" / "episodes_stats.jsonl", "w") as st_f:
        for new, old in enumerate(release_episode_indices):
            m = meta[old]
            tasks = list(m["tasks"])
            if len(tasks) != 1:
                raise V21ExportError(f"release episode {old} has {len(tasks)} tasks; one instruction per episode expected")
            task = tasks[0]
            if task not in task_index:
                task_index[task] = len(task_index)
                result.tasks.append(task)
            data_file = src / v3_info["data_path"].format(chunk_index=m["data/chunk_index"], file_index=m["data/file_index"])
            table = pq.read_table(data_file, filters=[("episode_index", "=", old)])
            n = table.num_rows
            if n != int(m["length"]) or n == 0:
                raise V21ExportError(f"{data_file} has {n} rows of episode {old}; its metadata says {m['length']}")
            table = table.sort_by("frame_index").replace_schema_metadata(None)
            start = result.num_frames
            for name, values in (("episode_index", np.full(n, new, np.int64)),
                                 ("index", np.arange(start, start + n, dtype=np.int64)),
                                 ("task_index", np.full(n, task_index[task], np.int64))):
                table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, pa.int64()))
            chunk = new // CHUNKS_SIZE
            path = out / V21_DATA_PATH.format(episode_chunk=chunk, episode_index=new)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
            stats = {name: _column_stats(table.column(name)) for name in table.column_names}
            for key in video_keys:
                stats[key] = {s: m[f"stats/{key}/{s}"] for s in V21_STATS}
                source = src / v3_info["video_path"].format(video_key=key, chunk_index=m[f"videos/{key}/chunk_index"],
                                                            file_index=m[f"videos/{key}/file_index"])
                first = int(round(float(m[f"videos/{key}/from_timestamp"]) * fps))
                cuts.setdefault(source, []).append(EpisodeCut(
                    first, n, out / V21_VIDEO_PATH.format(episode_chunk=chunk, video_key=key, episode_index=new)))
            ep_f.write(json.dumps({"episode_index": new, "tasks": [task], "length": n}) + "\n")
            st_f.write(json.dumps({"episode_index": new, "stats": stats}) + "\n")
            all_stats.append(stats)
            result.episodes.append({"episode_index": new, "release_episode_index": int(old), "length": n, "task": task})
            result.num_frames += n
    for source, todo in sorted(cuts.items()):
        cut_episode_videos(source, todo, fps=fps, vcodec=vcodec)
    with open(out / "meta" / "tasks.jsonl", "w") as f:
        for i, t in enumerate(result.tasks):
            f.write(json.dumps({"task_index": i, "task": t}) + "\n")
    (out / "meta" / "stats.json").write_text(json.dumps(aggregate_stats(all_stats), indent=4))
    info = _v21_info(v3_info, episodes=len(release_episode_indices), frames=result.num_frames,
                     tasks=len(result.tasks), split=split)
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return result


__all__ = ["CHUNKS_SIZE", "V21", "V21Dataset", "V21ExportError", "V21_DATA_PATH", "V21_VIDEO_PATH",
           "aggregate_stats", "read_release_episodes", "write_v21_dataset"]
