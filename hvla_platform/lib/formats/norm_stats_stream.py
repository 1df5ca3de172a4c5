"""Streaming, bounded-memory norm stats (mean, population std, exact inverted-CDF q01/q99) of the
train rows of a LeRobot v3.0 dataset's Parquet files.

Memory does not grow with the number of frames: the columns are read in record batches of
``batch_rows`` rows (``pyarrow.parquet.ParquetFile.iter_batches``); what is kept between batches is
O(D) moments and O(D x 65536) counts per key (about 22 MB for a 43-dim state).

* **mean / std**: per batch, float64 mean and sum of squared deviations (numpy's two-pass formula),
  merged across batches with Chan, Golub & LeVeque's pairwise update ("Updating formulae and a
  pairwise algorithm for computing sample variances", 1979):
  ``n = na + nb; d = mb - ma; mean = ma + d nb / n; M2 = M2a + M2b + d^2 na nb / n``;
  ``std = sqrt(M2 / n)`` (population std, ddof = 0, as openpi's ``RunningStats``).
* **q01 / q99**: exact, the same sample numpy returns for ``np.quantile(x, q, axis=0,
  method="inverted_cdf")`` (openpi's quantile definition: the smallest x with F(x) >= q), by a
  radix select on the IEEE-754 bit patterns. A float's bits ``u`` map to an unsigned key that sorts
  like the float (``u ^ 0x80..0`` if the sign bit is clear, ``~u`` if set); the key is split into
  16-bit digits. The first read counts the top digit of every value (65536 bins per dimension) and
  finds the bin holding the wanted rank; each further read counts the next digit of only the values
  whose leading digits match, until every bit is known. float32 columns (LeRobot's) need 2 reads of
  the columns, float64 columns 4; the result is a sample of the data, bit-exact, including on heavy
  ties or a constant dimension (where a value histogram would hold one bin).
* **NaN / inf**, as numpy: a dimension holding a NaN gets NaN for all four statistics; one holding
  +inf or -inf gets mean +inf / -inf (NaN if both), std NaN, and exact quantiles (which may be inf).

Work is split into units (consecutive row groups of one file, up to about ``UNIT_ROWS`` rows: one
unit per 100 MB LeRobot file) and run on ``workers`` threads (pyarrow's decoding and numpy's large
array operations release the GIL); partial results are merged in unit order, so the numbers do not
depend on the number of workers. The default is 1 worker: on the shared 2-core project machine a
second worker did not pay (docs/norm_stats.md, "Fleet scale").
"""

from __future__ import annotations

import math
import os
import sys
from collections import deque
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: quantiles computed, as openpi's ``NormStats`` ``q01`` / ``q99``.
QUANTILES: tuple[float, float] = (0.01, 0.99)
#: bits per radix-select digit; 2**16 bins per dimension and pass.
DIGIT_BITS = 16
NBINS = 1 << DIGIT_BITS
#: rows per record batch (bounds the per-batch working set: ~ rows x D x 40 bytes).
DEFAULT_BATCH_ROWS = 65536
#: target rows per work unit handed to one worker (a file's row groups are grouped up to this).
UNIT_ROWS = 1_000_000


class NormStatsError(ValueError):
    """The dataset cannot produce norm stats (no rows, missing column, nulls, ragged vectors...)."""


def fixed_list_to_numpy(col: pa.ChunkedArray | pa.Array, name: str, dtype: np.dtype | None = np.float64) -> np.ndarray:
    """A (fixed-size-)list column → (N, D) array, vectorised, without a per-row loop.

    Args:
        col: list<float> or fixed_size_list<float> column of N rows.
        name: column name, for the error messages.
        dtype: output dtype; ``None`` keeps the stored element type.

    Raises:
        NormStatsError: null rows or elements, rows of different lengths, not a list column.
    """
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
    if dtype is not None:
        flat = flat.astype(dtype, copy=False)
    return flat.reshape(n, d)


def inverted_cdf_index(n: int, q: float) -> int:
    """0-based rank numpy's ``np.quantile(..., method="inverted_cdf")`` takes from ``n`` sorted values.

    Same float64 arithmetic as numpy 2.x (``_inverted_cdf``: virtual index ``n q - 1``, take its
    floor if it is integral, else floor + 1, clipped to ``[0, n - 1]``).
    """
    v = np.float64(n) * np.float64(q) - 1.0
    prev = math.floor(v)
    idx = prev if v - prev == 0 else prev + 1
    return int(min(max(idx, 0), n - 1))


# ----------------------------------------------------------------------------- sortable keys

def _key_dtypes(itemsize: int) -> tuple[type, type, int]:
    if itemsize == 4:
        return np.float32, np.uint32, 32
    return np.float64, np.uint64, 64


def sortable_keys(x: np.ndarray) -> np.ndarray:
    """float32 / float64 array → uint32 / uint64 keys whose unsigned order is the float order
    (-NaN < -inf < ... < -0.0 < +0.0 < ... < +inf < +NaN)."""
    _, utype, width = _key_dtypes(x.dtype.itemsize)
    u = np.ascontiguousarray(x).view(utype)
    top = utype(1 << (width - 1))
    sign = u >> utype(width - 1)
    return u ^ ((np.negative(sign)) | top)


def top_digit(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The leading 16 bits of :func:`sortable_keys` of ``x`` (n, D) float32/float64, as (n, D)
    uint16 (written into ``out`` if given); reads the high half-word in place on little-endian
    machines (no full-width key array)."""
    half = x.dtype.itemsize // 2
    if sys.byteorder == "little" and x.dtype.isnative and x.flags.c_contiguous:
        hi = x.view(np.uint16)[..., half - 1::half]
    else:
        _, utype, width = _key_dtypes(x.dtype.itemsize)
        hi = (np.ascontiguousarray(x).view(utype) >> utype(width - DIGIT_BITS)).astype(np.uint16)
    flip = np.right_shift(hi, np.uint16(15), out=out)  # sign bit: 1 → xor 0xFFFF (~), 0 → xor 0x8000
    flip *= np.uint16(0x7FFF)
    flip |= np.uint16(0x8000)
    flip ^= hi
    return flip


def key_to_float(key: np.ndarray, width: int) -> np.ndarray:
    """Inverse of :func:`sortable_keys`: keys (uint32 / uint64) → float64 values."""
    ftype, utype, _ = _key_dtypes(width // 8)
    key = np.asarray(key, dtype=utype)
    top = utype(1 << (width - 1))
    u = np.where(key & top, key ^ top, ~key).astype(utype)
    return u.view(ftype).astype(np.float64)


# ----------------------------------------------------------------------------- partial results

@dataclass
class Moments:
    """Streaming moments of one (N, D) column: count, float64 mean and M2 (sum of squared
    deviations), and per-dimension counts of NaN, +inf and -inf (excluded from mean/M2)."""

    n: int
    mean: np.ndarray
    m2: np.ndarray
    nan: np.ndarray
    posinf: np.ndarray
    neginf: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, scratch: np.ndarray | None = None) -> "Moments":
        """Moments of a batch ``x`` (n, D), any float dtype, accumulated in float64 (``scratch``:
        an optional (n, D) float64 buffer for the deviations)."""
        n, d = x.shape
        if np.isfinite(x).all():
            nan = posinf = neginf = np.zeros(d, np.int64)
        else:
            nan = np.isnan(x).sum(0)
            posinf = (x == np.inf).sum(0)
            neginf = (x == -np.inf).sum(0)
            x = np.where(np.isfinite(x), x, 0)  # those dims' mean/std are replaced in mean_std()
        with np.errstate(over="ignore", invalid="ignore"):  # |x| ~ 1e154+: inf, as numpy's std gives
            mean = x.sum(0, dtype=np.float64) / n
            dev = np.subtract(x, mean, out=scratch, dtype=np.float64)
            m2 = np.einsum("ij,ij->j", dev, dev)
        return cls(n, mean, m2, nan, posinf, neginf)

    def merge(self, other: "Moments") -> "Moments":
        """Chan et al.'s pairwise merge (see the module docstring)."""
        if self.n == 0:
            return other
        if other.n == 0:
            return self
        n = self.n + other.n
        with np.errstate(over="ignore", invalid="ignore"):  # |x| ~ 1e154+: inf, as numpy's std gives
            delta = other.mean - self.mean
            mean = self.mean + delta * (other.n / n)
            m2 = self.m2 + other.m2 + delta * delta * (self.n * other.n / n)
        return Moments(n, mean, m2, self.nan + other.nan, self.posinf + other.posinf, self.neginf + other.neginf)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, population std), each (D,) float64, with numpy's NaN/inf semantics."""
        mean = self.mean.copy()
        std = np.sqrt(self.m2 / self.n)
        pos, neg = self.posinf > 0, self.neginf > 0
        mean[pos & ~neg] = np.inf
        mean[neg & ~pos] = -np.inf
        mean[pos & neg] = np.nan
        std[pos | neg] = np.nan
        bad = self.nan > 0
        mean[bad] = np.nan
        std[bad] = np.nan
        return mean, std


@dataclass
class _UnitResult:
    """One unit's contribution to one pass."""

    rows: int = 0
    seen: np.ndarray | None = None  # (len(wanted),) bool, pass 0 only
    moments: dict[str, Moments] = field(default_factory=dict)  # pass 0 only
    #: flat counts: pass 0 (D * NBINS), later passes (2 * D * NBINS)
    hist: dict[str, np.ndarray] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Unit:
    """Consecutive row groups of one file (footers are not kept between units: their size grows
    with the number of row groups, i.e. with the data)."""

    path: str
    row_groups: tuple[int, ...]
    rows: int


# ----------------------------------------------------------------------------- reading

def _train_batches(unit: _Unit, wanted: np.ndarray, keys: Mapping[str, str], dtypes: Mapping[str, np.dtype],
                   batch_rows: int, seen: np.ndarray | None) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``{key: (n, D) array of dtypes[key]}`` of the unit's train rows, batch by batch.
    (``pre_buffer=False``: pyarrow's default pre-buffering holds all selected column chunks of the
    row groups at once -- ~120 MB for a 100 MB LeRobot file -- and measured slower here.)"""
    pf = pq.ParquetFile(unit.path, pre_buffer=False)
    cols = ["episode_index", *keys.values()]
    for rb in pf.iter_batches(batch_size=batch_rows, row_groups=list(unit.row_groups), columns=cols,
                              use_threads=False):
        ep = rb.column(0).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
        pos = np.searchsorted(wanted, ep)
        np.minimum(pos, wanted.size - 1, out=pos)
        hit = wanted[pos] == ep
        if seen is not None:
            seen[pos[hit]] = True
        if not hit.any():
            continue
        if not hit.all():
            rb = rb.filter(pa.array(hit))
        yield {k: fixed_list_to_numpy(rb.column(i + 1), col, dtypes[k]) for i, (k, col) in enumerate(keys.items())}


def _scan(unit: _Unit, wanted: np.ndarray, keys: Mapping[str, str], dtypes: Mapping[str, np.dtype],
          batch_rows: int, pass_no: int, prefixes: Mapping[str, np.ndarray] | None) -> _UnitResult:
    """One pass over one unit. Pass 0: moments + top-digit histograms (D, NBINS). Pass p >= 1: for
    each quantile j and dimension d, histogram (2, D, NBINS) of digit p of the values whose leading
    p digits equal ``prefixes[key][j, d]`` ((2, D) unsigned)."""
    out = _UnitResult(seen=np.zeros(wanted.size, bool) if pass_no == 0 else None)
    dense: dict[str, np.ndarray] = {}
    scratch: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # reused: no page faults per batch
    for batch in _train_batches(unit, wanted, keys, dtypes, batch_rows, out.seen):
        for k, x in batch.items():
            n, d = x.shape
            if k in out.dims and out.dims[k] != d:
                raise NormStatsError(f"column {keys[k]!r} has rows of different lengths ({out.dims[k]}..{d})")
            if k not in out.dims:
                out.dims[k] = d
                dense[k] = np.zeros((1 if pass_no == 0 else 2) * d * NBINS, np.int64)
                rows_max = min(batch_rows, unit.rows)
                scratch[k] = (np.empty((rows_max, d), np.float64), np.empty((rows_max, d), np.intp),
                              np.empty((rows_max, d), np.uint16))
            width = x.dtype.itemsize * 8
            offsets = np.arange(d, dtype=np.intp) * NBINS
            if pass_no == 0:
                f64, idx, u16 = (a[:n] for a in scratch[k])
                m = Moments.of(x, f64)
                out.moments[k] = out.moments[k].merge(m) if k in out.moments else m
                np.add(top_digit(x, u16), offsets, out=idx)
                np.add.at(dense[k], idx.reshape(-1), 1)
                continue
            assert prefixes is not None
            if pass_no == 1:
                lead = top_digit(x, scratch[k][2][:n])
            else:
                key = sortable_keys(x)
                lead = key >> key.dtype.type(width - DIGIT_BITS * pass_no)
            for j in range(2):
                rows, cols = np.nonzero(lead == prefixes[k][j].astype(lead.dtype)[None, :])
                if rows.size:
                    key = sortable_keys(x[rows, cols])
                    utype = key.dtype.type
                    digit = ((key >> utype(width - DIGIT_BITS * (pass_no + 1))) & utype(NBINS - 1)).astype(np.intp)
                    np.add.at(dense[k], digit + offsets[cols] + j * d * NBINS, 1)
        out.rows += next(iter(batch.values())).shape[0]
    out.hist = dense
    return out


def _scan_star(args: tuple) -> _UnitResult:
    return _scan(*args)


def _plan(files: list[Path], keys: Mapping[str, str]) -> tuple[list[_Unit], dict[str, np.dtype]]:
    """Work units (consecutive row groups of one file, about UNIT_ROWS rows) and the element
    dtype per key (float32 if every file stores float32/float16, else float64)."""
    units: list[_Unit] = []
    wide: set[str] = set()
    for f in files:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
        for k, col in [("episode_index", "episode_index"), *keys.items()]:
            if schema.get_field_index(col) < 0:
                raise NormStatsError(f"{f} has no column {col!r}")
            if k == "episode_index":
                continue
            t = schema.field(col).type
            if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
                raise NormStatsError(f"column {col!r} has type {t}, expected a list of floats")
            if not (pa.types.is_float32(t.value_type) or pa.types.is_float16(t.value_type)):
                wide.add(k)
        md = pf.metadata
        group: list[int] = []
        rows = 0
        for rg in range(md.num_row_groups):
            group.append(rg)
            rows += md.row_group(rg).num_rows
            if rows >= UNIT_ROWS:
                units.append(_Unit(str(f), tuple(group), rows))
                group, rows = [], 0
        if group:
            units.append(_Unit(str(f), tuple(group), rows))
    dtypes = {k: np.dtype(np.float64 if k in wide else np.float32) for k in keys}
    return units, dtypes


@dataclass
class StreamedStats:
    """Result of :func:`stream_train_stats`.

    Attributes:
        stats: ``{key: {"mean" | "std" | "q01" | "q99": (D,) float64}}``.
        num_frames: train rows the stats were computed from.
        files: the Parquet files read (absolute paths, sorted).
        passes: reads of the columns made (1 + digits after the first; 2 for float32 columns).
        workers: threads used (1: the calling thread only).
    """

    stats: dict[str, dict[str, np.ndarray]]
    num_frames: int
    files: list[Path]
    passes: int
    workers: int


def _run_units(pool: Executor | None, workers: int, args: list[tuple],
               merge: Callable[[_UnitResult], None]) -> None:
    """Run :func:`_scan` over ``args`` and ``merge`` each result **in unit order**, with at most
    ``workers + 1`` results pending (memory bounded whatever the number of units)."""
    if pool is None:
        for a in args:
            merge(_scan_star(a))
        return
    pending: deque[Future] = deque()
    for a in args:
        pending.append(pool.submit(_scan_star, a))
        if len(pending) > workers:
            merge(pending.popleft().result())
    while pending:
        merge(pending.popleft().result())


def data_files_and_train(dataset_root: str | os.PathLike[str] | Path,
                         train_episode_indices: Iterable[int]) -> tuple[list[Path], np.ndarray]:
    """The release's ``data/**/*.parquet`` files (sorted) and the train episode indices as a sorted
    (E,) int64 array.

    Raises:
        NormStatsError: no data files, or no train episodes given.
    """
    root = Path(dataset_root)
    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise NormStatsError(f"{root}/data has no Parquet files")
    wanted = np.asarray(sorted(set(int(i) for i in train_episode_indices)), dtype=np.int64)
    if wanted.size == 0:
        raise NormStatsError("no train episodes given")
    return files, wanted


def stream_train_stats(
    dataset_root: Path, train_episode_indices: list[int], keys: Mapping[str, str], *,
    workers: int = 1, batch_rows: int = DEFAULT_BATCH_ROWS,
) -> StreamedStats:
    """mean, population std and exact q01/q99 of the ``keys`` columns over the train rows of every
    ``data/**/*.parquet`` file, in memory independent of the number of rows.

    Args:
        dataset_root: LeRobot v3.0 dataset root.
        train_episode_indices: episode indices whose rows count; all other rows are skipped.
        keys: ``{stats key: Parquet list<float> column}``.
        workers: threads (1: the calling thread). Fewer are used when there are fewer work units
            (about ``UNIT_ROWS`` rows each); results do not depend on it.
        batch_rows: rows per record batch.

    Raises:
        NormStatsError: no data files, no train episodes, a column missing / not a float list /
            with nulls / ragged, or a train episode without rows.
    """
    files, wanted = data_files_and_train(dataset_root, train_episode_indices)
    keys = dict(keys)
    units, dtypes = _plan(files, keys)
    width = {k: dtypes[k].itemsize * 8 for k in keys}
    workers = min(max(1, int(workers)), len(units))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="norm-stats") if workers > 1 else None

    seen = np.zeros(wanted.size, bool)
    moments: dict[str, Moments] = {}
    hist: dict[str, np.ndarray] = {}
    dims: dict[str, int] = {}
    num_frames = 0

    def merge_first(r: _UnitResult) -> None:
        nonlocal num_frames
        seen[:] |= r.seen
        num_frames += r.rows
        for k, d in r.dims.items():
            if k in dims and dims[k] != d:
                raise NormStatsError(f"column {keys[k]!r} has rows of different lengths ({dims[k]}..{d})")
            if k not in dims:
                dims[k] = d
                hist[k] = np.zeros(d * NBINS, np.int64)
            moments[k] = moments[k].merge(r.moments[k]) if k in moments else r.moments[k]
            hist[k] += r.hist[k]

    def merge_next(r: _UnitResult) -> None:
        for k, h in r.hist.items():
            hist[k] += h

    try:
        _run_units(pool, workers, [(u, wanted, keys, dtypes, batch_rows, 0, None) for u in units], merge_first)
        missing = wanted[~seen].tolist()
        if missing:
            raise NormStatsError(f"train episode(s) {missing} have no rows in {Path(dataset_root)}/data")
        ranks = np.asarray([inverted_cdf_index(num_frames, q) for q in QUANTILES], np.int64)
        # per key: (2, D) remaining rank within the chosen prefix, and the prefix (leading digits) so far
        rank = {k: np.tile(ranks[:, None], (1, dims[k])) for k in keys}
        prefix = {k: np.zeros((2, dims[k]), np.uint64) for k in keys}

        def descend(k: str, h: np.ndarray) -> None:  # h: (2, D, NBINS) counts of the next digit
            cum = np.cumsum(h, axis=2)
            for j in range(2):
                for d in range(dims[k]):
                    b = int(np.searchsorted(cum[j, d], rank[k][j, d], side="right"))
                    rank[k][j, d] -= int(cum[j, d, b - 1]) if b else 0
                    prefix[k][j, d] = (int(prefix[k][j, d]) << DIGIT_BITS) | b

        for k in keys:
            h0 = hist[k].reshape(dims[k], NBINS)
            descend(k, np.broadcast_to(h0, (2, *h0.shape)))
        passes = max(width.values()) // DIGIT_BITS
        for p in range(1, passes):
            todo = {k: prefix[k].astype(np.uint32 if width[k] == 32 else np.uint64)
                    for k in keys if p < width[k] // DIGIT_BITS}
            for k in todo:
                hist[k] = np.zeros(2 * dims[k] * NBINS, np.int64)
            cols = {k: keys[k] for k in todo}
            _run_units(pool, workers, [(u, wanted, cols, dtypes, batch_rows, p, todo) for u in units], merge_next)
            for k in todo:
                descend(k, hist[k].reshape(2, dims[k], NBINS))
    finally:
        if pool is not None:
            pool.shutdown()
    stats: dict[str, dict[str, np.ndarray]] = {}
    for k in keys:
        mean, std = moments[k].mean_std()
        q = key_to_float(prefix[k], width[k])
        q[:, moments[k].nan > 0] = np.nan
        stats[k] = {"mean": mean, "std": std, "q01": q[0], "q99": q[1]}
    return StreamedStats(stats=stats, num_frames=num_frames, files=files, passes=passes, workers=workers)
