"""openpi-format normalization statistics and the two normalizations the policy can use.

The norm stats JSON follows openpi's ``src/openpi/shared/normalize.py`` ``NormStats`` layout::

    {"norm_stats": {"state":   {"mean": [...], "std": [...], "q01": [...], "q99": [...]},
                    "actions": {"mean": [...], "std": [...], "q01": [...], "q99": [...]}}}

Formulas (the same as openpi's ``transforms.Normalize`` / ``Unnormalize``; written from the
formulas, not copied):

* ``quantile`` (what pi0.5 uses): ``y = (x - q01) / (q99 - q01 + 1e-6) * 2 - 1`` maps the 1st..99th
  percentile range to [-1, 1]; inverse ``x = (y + 1) / 2 * (q99 - q01 + 1e-6) + q01``.
* ``zscore``: ``y = (x - mean) / (std + 1e-6)``; inverse ``x = y * (std + 1e-6) + mean``.

Everything here is plain numpy / jax.numpy arithmetic and works on either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

#: openpi's epsilon in both normalizations.
EPS = 1e-6
NORMALIZATIONS = ("quantile", "zscore")
_FIELDS = ("mean", "std", "q01", "q99")


@dataclass(frozen=True)
class KeyStats:
    """Statistics of one key (``state`` or ``actions``): four float32 vectors of the same length."""

    mean: np.ndarray
    std: np.ndarray
    q01: np.ndarray
    q99: np.ndarray

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        return int(self.mean.shape[0])

    def to_dict(self) -> dict[str, list[float]]:
        """JSON form (lists of floats)."""
        return {f: [float(v) for v in getattr(self, f)] for f in _FIELDS}


@dataclass(frozen=True)
class NormStats:
    """Parsed openpi norm stats for ``state`` and ``actions``."""

    state: KeyStats
    actions: KeyStats

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "NormStats":
        """Parse ``{"norm_stats": {"state": {...}, "actions": {...}}}`` (the outer ``norm_stats``
        wrapper may be omitted).

        Raises:
            ValueError: a key or field is missing, vectors of one key differ in length, a value is
                not finite, ``std`` is negative or ``q99 < q01``.
        """
        if not isinstance(data, Mapping):
            raise ValueError("norm stats must be a mapping")
        inner = data.get("norm_stats", data)
        if not isinstance(inner, Mapping):
            raise ValueError("'norm_stats' must be a mapping")
        out = {}
        for key in ("state", "actions"):
            if key not in inner:
                raise ValueError(f"norm stats have no '{key}' entry (have: {sorted(inner)})")
            block = inner[key]
            if not isinstance(block, Mapping):
                raise ValueError(f"norm stats '{key}' must be a mapping")
            arrays = {}
            for f in _FIELDS:
                if f not in block:
                    raise ValueError(f"norm stats '{key}' has no '{f}'")
                arr = np.asarray(block[f], dtype=np.float64)
                if arr.ndim != 1 or arr.size == 0:
                    raise ValueError(f"norm stats '{key}.{f}' must be a non-empty list of numbers")
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"norm stats '{key}.{f}' contains non-finite values")
                arrays[f] = arr.astype(np.float32)
            dims = {f: a.shape[0] for f, a in arrays.items()}
            if len(set(dims.values())) != 1:
                raise ValueError(f"norm stats '{key}' vectors differ in length: {dims}")
            if np.any(arrays["std"] < 0):
                raise ValueError(f"norm stats '{key}.std' has negative entries")
            if np.any(arrays["q99"] < arrays["q01"]):
                raise ValueError(f"norm stats '{key}' has q99 < q01")
            out[key] = KeyStats(**arrays)
        return cls(state=out["state"], actions=out["actions"])

    @classmethod
    def load(cls, path: str | Path) -> "NormStats":
        """Read a ``norm_stats.json`` file. Raises ValueError (see :meth:`from_dict`)."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict[str, Any]:
        """The openpi JSON form, with the ``norm_stats`` wrapper."""
        return {"norm_stats": {"state": self.state.to_dict(), "actions": self.actions.to_dict()}}


def check_normalization(kind: str) -> str:
    """Return ``kind`` if it is one of :data:`NORMALIZATIONS`, else raise ValueError."""
    if kind not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")
    return kind


def normalize(x, stats: KeyStats, kind: str):
    """Normalize raw values ``x`` (..., dim) with ``stats`` (formulas in the module docstring).

    Works on numpy and jax arrays; returns the same array type, float32 for float32 input.
    """
    if kind == "quantile":
        return (x - stats.q01) / (stats.q99 - stats.q01 + EPS) * 2.0 - 1.0
    if kind == "zscore":
        return (x - stats.mean) / (stats.std + EPS)
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")


def unnormalize(y, stats: KeyStats, kind: str):
    """Inverse of :func:`normalize`: map normalized ``y`` (..., dim) back to raw units."""
    if kind == "quantile":
        return (y + 1.0) / 2.0 * (stats.q99 - stats.q01 + EPS) + stats.q01
    if kind == "zscore":
        return y * (stats.std + EPS) + stats.mean
    raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")
