"""openpi normalization statistics computed column-wise from a LeRobot v3.0 dataset's Parquet files.

Output format (openpi ``src/openpi/shared/normalize.py``: ``NormStats`` with fields ``mean``,
``std``, ``q01``, ``q99``; serialised as ``{"norm_stats": {key: NormStats}}``)::

    {"norm_stats": {"state":   {"mean": [D], "std": [D], "q01": [D], "q99": [D]},
                    "actions": {"mean": [A], "std": [A], "q01": [A], "q99": [A]}}}

``state`` comes from LeRobot's ``observation.state`` and ``actions`` from ``action``, in the
units of the dataset (radians).

Method (see docs/norm_stats.md):

* only frames of the **train** episodes (filtered on ``episode_index``); held-out episodes never
  contribute;
* the columns are read with pyarrow (only ``episode_index`` and the two vector columns) in record
  batches, in memory independent of the number of frames
  (:mod:`~hvla_platform.lib.formats.norm_stats_stream`); the fixed-size-list columns are turned
  into ``(n, D)`` numpy arrays without a per-frame loop; no video is decoded;
* ``mean`` and ``std`` per dimension in float64; ``std`` is the **population** standard deviation
  (ddof = 0), as openpi's ``RunningStats`` (``sqrt(E[x^2] - mean^2)``) computes it -- here with the
  numerically better two-pass formula per batch, merged across batches with Chan et al.'s update;
* ``q01`` / ``q99`` are **exact** per-dimension quantiles under openpi's definition -- the smallest
  x with F(x) >= q, ``np.quantile(..., method="inverted_cdf")`` -- found by a radix select over the
  float bit patterns (2 reads of float32 columns), where openpi approximates the same quantity with
  a 5000-bin histogram over [min, max] per dimension; against one such histogram the two agree
  within one bin width ``(max - min) / 5000`` (see docs/norm_stats.md for the measured drift of
  openpi's streaming re-binning).

:func:`compute_norm_stats_in_memory` is the former whole-column implementation, kept as the
reference the streaming one is tested against.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hvla_platform.lib.core import features
from hvla_platform.lib.formats.norm_stats_stream import (
    DEFAULT_BATCH_ROWS, NormStatsError, data_files_and_train, fixed_list_to_numpy, stream_train_stats)

#: openpi norm-stats key → LeRobot feature key.
NORM_STATS_KEYS: dict[str, str] = features.NORM_STATS_KEYS
STAT_FIELDS = ("mean", "std", "q01", "q99")


@dataclass
class NormStatsResult:
    """Norm stats of one dataset (train split).

    Attributes:
        stats: ``{"state" | "actions": {"mean" | "std" | "q01" | "q99": (D,) float64}}``.
        names: joint names per key (from ``meta/info.json``), ``None`` if unnamed.
        num_frames: number of train frames the stats were computed from.
        train_episode_indices: the LeRobot episode indices used.
        files: Parquet files read (relative to the dataset root).
    """

    stats: dict[str, dict[str, np.ndarray]]
    names: dict[str, list[str] | None] = field(default_factory=dict)
    num_frames: int = 0
    train_episode_indices: list[int] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def to_openpi(self) -> dict[str, Any]:
        """The openpi JSON document (``{"norm_stats": {...}}``) with plain float lists."""
        return {"norm_stats": {k: {f: [float(x) for x in v[f]] for f in STAT_FIELDS}
                               for k, v in self.stats.items()}}


def load_train_columns(
    dataset_root: Path, train_episode_indices: list[int], keys: Mapping[str, str] = NORM_STATS_KEYS,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read the ``keys`` columns of the train rows of every ``data/**/*.parquet`` file, whole, into
    memory (N x D x 8 bytes per key: the in-memory reference of :func:`compute_norm_stats_in_memory`;
    :func:`compute_norm_stats` streams instead).

    Returns:
        (``{openpi key: (N, D) float64}``, relative file paths read).

    Raises:
        NormStatsError: no data files, a column is missing, or a requested episode has no rows.
    """
    root = Path(dataset_root)
    files, wanted = data_files_and_train(root, train_episode_indices)
    cols = ["episode_index", *keys.values()]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    seen: set[int] = set()
    for f in files:
        table = pq.read_table(f, columns=cols)
        ep = table.column("episode_index").to_numpy()
        mask = np.isin(ep, wanted)
        if not mask.any():
            continue
        seen.update(np.unique(ep[mask]).tolist())
        sub = table.filter(pa.array(mask))
        for k, col in keys.items():
            parts[k].append(fixed_list_to_numpy(sub.column(col), col))
    missing = sorted(set(wanted.tolist()) - seen)
    if missing:
        raise NormStatsError(f"train episode(s) {missing} have no rows in {root}/data")
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}, [f.relative_to(root).as_posix() for f in files]


def stats_of(x: np.ndarray) -> dict[str, np.ndarray]:
    """mean, population std, exact q01/q99 per column of ``x`` (N, D) → each (D,) float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise NormStatsError(f"need a non-empty (N, D) array, got shape {x.shape}")
    q = np.quantile(x, [0.01, 0.99], axis=0, method="inverted_cdf")
    return {"mean": x.mean(axis=0), "std": x.std(axis=0, ddof=0), "q01": q[0], "q99": q[1]}


def _names(root: Path, dims: Mapping[str, int]) -> dict[str, list[str] | None]:
    """Joint names per key from ``meta/info.json`` features, ``None`` when absent or of another length."""
    names: dict[str, list[str] | None] = {k: None for k in NORM_STATS_KEYS}
    info_path = root / "meta" / "info.json"
    if info_path.exists():
        feats = json.loads(info_path.read_text()).get("features", {})
        for k, col in NORM_STATS_KEYS.items():
            n = feats.get(col, {}).get("names")
            names[k] = list(n) if isinstance(n, list) and len(n) == dims[k] else None
    return names


def compute_norm_stats(
    dataset_root: Path, *, train_episode_indices: list[int], workers: int = 1,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> NormStatsResult:
    """openpi norm stats of ``observation.state`` ("state") and ``action`` ("actions"), train split
    only, streamed over record batches in memory independent of the number of frames.

    The numbers are those of :func:`compute_norm_stats_in_memory` (quantiles bit-identical, mean and
    std within float64 rounding of the summation order); method in
    :mod:`hvla_platform.lib.formats.norm_stats_stream` and docs/norm_stats.md.

    Args:
        dataset_root: a LeRobot v3.0 dataset root (``data/**/*.parquet``, ``meta/info.json``).
        train_episode_indices: LeRobot episode indices of the train split; rows of any other
            episode (the held-out split) are excluded.
        workers: threads reading the files (1: the calling thread; the numbers do not depend on it).
        batch_rows: rows per record batch (bounds the working set, ~ rows x D x 40 bytes).

    Returns:
        :class:`NormStatsResult` (float64 arrays; see the module docstring for the method).

    Raises:
        NormStatsError: no data files or train episodes, a train episode without rows, a column
            missing, not a float vector, with nulls or ragged.
    """
    root = Path(dataset_root)
    out = stream_train_stats(root, train_episode_indices, NORM_STATS_KEYS, workers=workers, batch_rows=batch_rows)
    return NormStatsResult(
        stats=out.stats,
        names=_names(root, {k: v["mean"].shape[0] for k, v in out.stats.items()}),
        num_frames=out.num_frames,
        train_episode_indices=sorted(set(int(i) for i in train_episode_indices)),
        files=[f.relative_to(root).as_posix() for f in out.files],
    )


def compute_norm_stats_in_memory(dataset_root: Path, *, train_episode_indices: list[int]) -> NormStatsResult:
    """The same statistics as :func:`compute_norm_stats`, from whole columns loaded in memory
    (:func:`load_train_columns`, then :func:`stats_of`): the reference implementation the streaming
    one is tested and benchmarked against. Memory ~ 3 x frames x D x 8 bytes; small releases only.

    Raises:
        NormStatsError: see :func:`load_train_columns`.
    """
    root = Path(dataset_root)
    cols, files = load_train_columns(root, train_episode_indices)
    return NormStatsResult(
        stats={k: stats_of(v) for k, v in cols.items()},
        names=_names(root, {k: v.shape[1] for k, v in cols.items()}),
        num_frames=int(next(iter(cols.values())).shape[0]),
        train_episode_indices=sorted(set(int(i) for i in train_episode_indices)),
        files=files,
    )


def write_norm_stats_json(stats: NormStatsResult | Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write openpi's ``norm_stats.json`` (``{"norm_stats": {...}}``, indent 2).

    Args:
        stats: a :class:`NormStatsResult`, or a mapping ``{key: {field: array}}`` (with or without
            the outer ``"norm_stats"``).

    Raises:
        NormStatsError: a key lacks one of mean/std/q01/q99.
    """
    if isinstance(stats, NormStatsResult):
        doc = stats.to_openpi()
    else:
        inner = stats.get("norm_stats", stats)
        doc = {"norm_stats": {}}
        for k, v in inner.items():
            missing = [f for f in STAT_FIELDS if f not in v]
            if missing:
                raise NormStatsError(f"norm stats {k!r} lack {missing}")
            doc["norm_stats"][k] = {f: [float(x) for x in np.asarray(v[f]).reshape(-1)] for f in STAT_FIELDS}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def read_norm_stats_json(path: str | os.PathLike[str]) -> dict[str, dict[str, np.ndarray]]:
    """Read an openpi ``norm_stats.json`` → ``{key: {"mean" | "std" | "q01" | "q99": (D,) float64}}``.

    ``q01``/``q99`` are optional in openpi and are omitted from the result when absent or null.

    Raises:
        NormStatsError: no ``"norm_stats"`` object, or a key lacks mean/std.
    """
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("norm_stats"), dict):
        raise NormStatsError(f"{path} has no 'norm_stats' object")
    out: dict[str, dict[str, np.ndarray]] = {}
    for k, v in doc["norm_stats"].items():
        if "mean" not in v or "std" not in v:
            raise NormStatsError(f"{path}: norm stats {k!r} lack mean/std")
        out[k] = {f: np.asarray(v[f], dtype=np.float64) for f in STAT_FIELDS if v.get(f) is not None}
    return out


def check_norm_stats(
    stats: NormStatsResult | Mapping[str, Any],
    *,
    min_std: float = 1e-4,
    names: Mapping[str, list[str] | None] | None = None,
    required_keys: tuple[str, ...] = tuple(NORM_STATS_KEYS),
) -> list[str]:
    """Problems that would make normalization unsafe; empty list = OK.

    Reports: a missing required key or field, fields of different lengths, non-finite values
    (per field, with dim indices), dims with ``std < min_std`` (normalising by them blows values
    up; named ``key[dim] (joint)``), and ``q01 > q99``.

    Args:
        stats: a :class:`NormStatsResult` (its joint names are used) or ``{key: {field: array}}``
            (optionally wrapped in ``"norm_stats"``), e.g. from :func:`read_norm_stats_json`.
        min_std: smallest acceptable std, in the data's units.
        names: joint names per key, overriding those of a :class:`NormStatsResult`.
    """
    if isinstance(stats, NormStatsResult):
        inner: Mapping[str, Any] = stats.stats
        known = dict(stats.names)
    else:
        inner = stats.get("norm_stats", stats)
        known = {}
    if names:
        known.update(names)
    problems: list[str] = []

    def label(key: str, i: int) -> str:
        n = known.get(key)
        return f"{key}[{i}] ({n[i]})" if n and i < len(n) else f"{key}[{i}]"

    for key in required_keys:
        if key not in inner:
            problems.append(f"missing key {key!r}")
    for key, block in inner.items():
        arrays = {}
        for f in STAT_FIELDS:
            if f not in block or block[f] is None:
                problems.append(f"{key}: missing {f}")
                continue
            arrays[f] = np.asarray(block[f], dtype=np.float64).reshape(-1)
        lengths = {f: a.shape[0] for f, a in arrays.items()}
        if len(set(lengths.values())) > 1:
            problems.append(f"{key}: fields have different lengths {lengths}")
            continue
        for f, a in arrays.items():
            bad = np.flatnonzero(~np.isfinite(a))
            if bad.size:
                problems.append(f"{key}: non-finite {f} at " + ", ".join(label(key, int(i)) for i in bad))
        if "std" in arrays:
            s = arrays["std"]
            low = np.flatnonzero(np.isfinite(s) & (s < min_std))
            for i in low:
                problems.append(f"{key}: std {s[i]:.3g} < {min_std:g} at {label(key, int(i))}")
        if "q01" in arrays and "q99" in arrays:
            inv = np.flatnonzero(arrays["q01"] > arrays["q99"])
            for i in inv:
                problems.append(f"{key}: q01 > q99 at {label(key, int(i))}")
    return problems
