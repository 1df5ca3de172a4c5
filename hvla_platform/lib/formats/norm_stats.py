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
* the columns are read with pyarrow (only ``episode_index`` and the two vector columns) and the
  fixed-size-list columns are turned into ``(N, D)`` numpy arrays without a per-frame loop; no
  video is decoded;
* ``mean`` and ``std`` per dimension in float64; ``std`` is the **population** standard deviation
  (ddof = 0), as openpi's ``RunningStats`` (``sqrt(E[x^2] - mean^2)``) computes it -- here with the
  numerically better two-pass formula;
* ``q01`` / ``q99`` are **exact** per-dimension quantiles under openpi's definition -- the smallest
  x with F(x) >= q, ``np.quantile(..., method="inverted_cdf")`` -- where openpi approximates the same
  quantity with a 5000-bin histogram over [min, max] per dimension; against one such histogram the
  two agree within one bin width ``(max - min) / 5000`` (see docs/norm_stats.md for the measured
  drift of openpi's streaming re-binning).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hvla_platform.lib.core import features

#: openpi norm-stats key → LeRobot feature key.
NORM_STATS_KEYS: dict[str, str] = features.NORM_STATS_KEYS
STAT_FIELDS = ("mean", "std", "q01", "q99")


class NormStatsError(ValueError):
    """The dataset cannot produce norm stats (no rows, missing column, nulls, ragged vectors...)."""


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


def _fixed_list_to_numpy(col: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """A (fixed-size-)list column → (N, D) float64, vectorised; raises on nulls or ragged rows."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if arr.null_count:
        raise NormStatsError(f"column {name!r} has {arr.null_count} null rows")
    n = len(arr)
    if pa.types.is_fixed_size_list(arr.type):
        d = arr.type.list_size
        values = arr.flatten()
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if n and (lengths.min() != lengths.max()):
            raise NormStatsError(f"column {name!r} has rows of different lengths "
                                 f"({int(lengths.min())}..{int(lengths.max())})")
        d = int(lengths[0]) if n else 0
        values = arr.flatten()
    else:
        raise NormStatsError(f"column {name!r} has type {arr.type}, expected a list of floats")
    if values.null_count:
        raise NormStatsError(f"column {name!r} has {values.null_count} null elements")
    flat = values.to_numpy(zero_copy_only=False)
    return flat.astype(np.float64, copy=False).reshape(n, d)


def load_train_columns(
    dataset_root: Path, train_episode_indices: list[int], keys: Mapping[str, str] = NORM_STATS_KEYS,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read the ``keys`` columns of the train rows of every ``data/**/*.parquet`` file.

    Returns:
        (``{openpi key: (N, D) float64}``, relative file paths read).

    Raises:
        NormStatsError: no data files, a column is missing, or a requested episode has no rows.
    """
    root = Path(dataset_root)
    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise NormStatsError(f"{root}/data has no Parquet files")
    wanted = np.asarray(sorted(set(int(i) for i in train_episode_indices)), dtype=np.int64)
    if wanted.size == 0:
        raise NormStatsError("no train episodes given")
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
            parts[k].append(_fixed_list_to_numpy(sub.column(col), col))
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


def compute_norm_stats(dataset_root: Path, *, train_episode_indices: list[int]) -> NormStatsResult:
    """openpi norm stats of ``observation.state`` ("state") and ``action`` ("actions"), train split only.

    Args:
        dataset_root: a LeRobot v3.0 dataset root (``data/**/*.parquet``, ``meta/info.json``).
        train_episode_indices: LeRobot episode indices of the train split; rows of any other
            episode (the held-out split) are excluded.

    Returns:
        :class:`NormStatsResult` (float64 arrays; see the module docstring for the method).

    Raises:
        NormStatsError: see :func:`load_train_columns`, or a column is not a float vector.
    """
    root = Path(dataset_root)
    cols, files = load_train_columns(root, train_episode_indices)
    names: dict[str, list[str] | None] = {k: None for k in NORM_STATS_KEYS}
    info_path = root / "meta" / "info.json"
    if info_path.exists():
        feats = json.loads(info_path.read_text()).get("features", {})
        for k, col in NORM_STATS_KEYS.items():
            n = feats.get(col, {}).get("names")
            names[k] = list(n) if isinstance(n, list) and len(n) == cols[k].shape[1] else None
    return NormStatsResult(
        stats={k: stats_of(v) for k, v in cols.items()},
        names=names,
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
