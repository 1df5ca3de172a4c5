"""Schemas of the tables one pipeline stage hands to another, checked on write and on read.

Four tables cross a stage boundary. Each has **one** schema here, checked by its producer before
the table is written and by its consumers when they read it: a :mod:`pandera` schema (polars
backend) for three of them, plain column checks for the lineage index (read on every lineage
query's process start, where importing pandera would cost more than the query; see
:func:`lineage_index_schema`):

=======================  ===============================================  ==============================
table                    where it lives                                   schema / check function
=======================  ===============================================  ==============================
partition index          ``raw-mcap/<day>/<robot>/_partition.json``       :func:`partition_index_schema`
                                                                          / :func:`check_partition_index`
Robo-DM cache manifest   ``robodm-cache/<release>/manifest.parquet``      :func:`robodm_manifest_schema`
                                                                          / :func:`check_robodm_manifest`,
                                                                          :func:`read_robodm_manifest`
QA results               ``conversions`` of the ``episodes-hdf5/<day>/``  :func:`qa_results_schema`
                         ``<robot>/`` manifest                            / :func:`check_qa_results`
lineage index            ``<lake>/_index/lineage/v5/<shard>.json``        :func:`lineage_index_schema`
                                                                          / :func:`check_lineage_index`
                                                                          (plain checks, no pandera)
=======================  ===============================================  ==============================

The Parquet manifest is read with polars and validated as it is. The three JSON tables are
validated as a polars DataFrame of their rows, nested fields flattened to dotted columns
(``checks.readable.passed``); the frame is built with each column's declared dtype and falls back
to the inferred type (or text) when a value does not fit, so a wrong type is reported as a wrong
dtype of that column rather than a crash.

A table that does not match raises :class:`TableError`, **one line** naming the table, where it is
(lake URI or path) and the offending columns and rows::

    QA results file:///lake/episodes-hdf5/2026-11-10/g1-001/_hvla_manifest.json (conversions) does
    not match its schema: column 'quality_score' fails in_range(0.0, 1.0) at row 1 (episode_id
    'ep-2'): 1.7

polars and pandera are imported on first use (together ~0.4 s, pandera pulls in pandas), so only
a process that validates a table pays for them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

if TYPE_CHECKING:
    import pandera.polars as pa
    import polars as pl

PARTITION_INDEX_TABLE = "partition index"
ROBODM_MANIFEST_TABLE = "Robo-DM cache manifest"
QA_RESULTS_TABLE = "QA results"
LINEAGE_INDEX_TABLE = "lineage index"

#: Raw checks every partition-index row reports (``ingest.raw.RAW_CHECKS``; the tests keep them equal).
RAW_CHECK_NAMES = ("readable", "required_topics", "monotonic", "rights")
#: Processing checks every QA-results row reports (``processing.build.PROCESSING_CHECKS``; ditto).
PROCESSING_CHECK_NAMES = ("camera_coverage", "alignment_skew", "no_nan")
EPISODE_STATUSES = ("published", "cached", "quarantined", "conflict")
CONVERSION_STATUSES = ("converted", "failed")
SPLITS = ("train", "heldout")
#: QA status of an episode in a release: ``passed`` (score ≥ the spec's ``min_quality``, no QA gate
#: failed), ``approved`` (it failed one of those and a supervisor approved it), ``unchecked`` (built
#: without QA results: a dataset written outside the release build).
QA_STATUSES = ("passed", "approved", "unchecked")
#: A safe id, as :func:`hvla_platform.lib.core.keys.check_id` accepts it.
SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SHA256 = r"^[0-9a-f]{64}$"
SHA256_OR_EMPTY = r"^(?:[0-9a-f]{64})?$"
ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
ISO_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
#: Fields of one lineage-index entry, in their stored order (``lineage.graph._encode_index``).
LINEAGE_FIELDS = ("size", "mtime_ns", "type", "manifest_sha256", "code_version", "config",
                  "rights", "episode_ids", "info", "files", "inputs")
#: At most this many problems are listed in one message (the rest are counted).
MAX_PROBLEMS = 6
_MAX_ROWS = 3
_MAX_VALUE = 60


class TableError(ValueError):
    """A table handed between stages does not match its schema.

    Attributes:
        table: the table's name (``"QA results"``).
        where: its lake URI or path.
        problems: one phrase per problem (column, check, rows, values).
        columns: the offending columns (sorted).
    """

    def __init__(self, table: str, where: str, problems: list[str], columns: Iterable[str] = ()):
        self.table, self.where, self.problems = table, where, list(problems)
        self.columns = sorted(set(columns))
        shown = "; ".join(self.problems[:MAX_PROBLEMS])
        more = len(self.problems) - MAX_PROBLEMS
        super().__init__(f"{table} {where} does not match its schema: {shown}"
                         + (f"; … and {more} more problem(s)" if more > 0 else ""))


# ---- the libraries, on first use --------------------------------------------------------------
def _pl():
    # deferred: polars + pandera take ~0.4 s to import (pandera pulls in pandas); every `hvla`
    # command imports this module, only the ones that validate a table should pay for them
    import polars

    return polars


def _pa():
    # deferred: see _pl
    import pandera.polars

    return pandera.polars


def _rows_satisfy(name: str, expr: Callable[[], pl.Expr]) -> pa.Check:
    """A dataframe-level check: ``expr()`` must be true on every row (``name`` is its message)."""
    pa = _pa()
    return pa.Check(lambda data: data.lazyframe.select(expr()), name=name, error=name)


# ---- the schemas ------------------------------------------------------------------------------
@functools.cache
def partition_index_schema() -> pa.DataFrameSchema:
    """**Partition index**, ``raw-mcap/<capture_day>/<robot_id>/_partition.json``.

    Producer: ingest (:func:`hvla_platform.lib.ingest.raw.ingest_partition`), after every episode
    of the partition was checked. Consumers: processing (``convert_partition`` converts the
    ``convertible`` episodes from their ``mcap_key``), dataset (``select_episodes`` takes each
    episode's rights, metadata and raw MCAP key/sha256) via ``read_partition_index``; the ingest backlog
    reads only its episode ids (unvalidated: it runs on every sensor tick).

    The JSON is ``{"capture_day", "robot_id", "episodes": [EpisodeOutcome.to_dict(), ...]}``; the
    document's day and robot must be the key's, and its episodes are validated one row each:
    ``episode_id`` (safe id, unique), ``status`` (published / cached / quarantined / conflict),
    ``convertible`` (bool), ``sha256`` (hex or empty: unreadable file), ``mcap_key`` (the MCAP's
    lake key, relative: ``raw-mcap/<day>/<robot>/<episode>/<file>.mcap``, or empty),
    ``checks.<raw check>.passed`` (bool, each of :data:`RAW_CHECK_NAMES`),
    ``rights.retention_until`` (ISO date, null without valid rights). Rows: ``convertible`` is
    exactly "status published or cached and every raw check passed"; a convertible episode has
    an MCAP key, a sha256 and rights. (Indexes written before keys hold ``mcap_uri``;
    ``read_partition_index`` maps it to ``mcap_key`` before checking.)
    """
    pl, pa = _pl(), _pa()
    published = pl.col("status").is_in(["published", "cached"])
    all_passed = lambda: pl.all_horizontal([pl.col(f"checks.{n}.passed") for n in RAW_CHECK_NAMES])  # noqa: E731
    return pa.DataFrameSchema(
        {
            "episode_id": pa.Column(pl.String, pa.Check.str_matches(SAFE_ID), unique=True),
            "status": pa.Column(pl.String, pa.Check.isin(list(EPISODE_STATUSES))),
            "convertible": pa.Column(pl.Boolean),
            "sha256": pa.Column(pl.String, pa.Check.str_matches(SHA256_OR_EMPTY)),
            "mcap_key": pa.Column(pl.String, pa.Check.str_matches(r"^(?:[^/:][^:]*)?$")),
            **{f"checks.{n}.passed": pa.Column(pl.Boolean) for n in RAW_CHECK_NAMES},
            "rights.retention_until": pa.Column(pl.String, pa.Check.str_matches(ISO_DATE), nullable=True),
        },
        checks=[
            _rows_satisfy("convertible must equal (status published/cached and every checks.*.passed)",
                          lambda: pl.col("convertible") == (published & all_passed())),
            _rows_satisfy("a convertible episode needs mcap_key, sha256 and rights",
                          lambda: ~pl.col("convertible") | (
                              (pl.col("mcap_key") != "") & (pl.col("sha256") != "")
                              & pl.col("rights.retention_until").is_not_null())),
        ],
        strict=True, name=PARTITION_INDEX_TABLE)


@functools.cache
def robodm_manifest_schema() -> pa.DataFrameSchema:
    """**Robo-DM cache manifest**, ``robodm-cache/<release>/manifest.parquet``, one row per ``.vla``.

    Producer: dataset (:func:`hvla_platform.lib.dataset.robodm_cache.write_manifest`, called by
    ``build_robodm_cache``). Consumers: training (``lib.training.data.read_manifest`` → ``load_split``:
    training reads the ``train`` rows, offline evaluation the ``heldout`` ones) and the cache's own
    structural check (``robodm_cache.check_cache``).

    Columns (exactly these, ``MANIFEST_COLUMNS``): ``vla_path`` (``….vla``, unique),
    ``source_repo_id``, ``source_dataset_version`` (non-empty), ``source_episode_index`` (int64 ≥ 0,
    unique), ``source_episode_length`` (int64 > 0), ``task`` (text), ``robot_id`` (safe id),
    ``converter_version`` (non-empty), ``created_at`` (ISO 8601 text), ``qa_status`` (one of
    :data:`QA_STATUSES`), ``episode_id`` (safe id, unique), ``split`` (train / heldout),
    ``video_codec`` (non-empty), ``bytes`` (int64 > 0), no nulls in these; and, null when unknown:
    ``quality_score`` (float64 in [0, 1]), ``success`` (bool, the recording's own outcome) and
    ``min_distance_m`` (float64 ≥ 0, metres).
    """
    pl, pa = _pl(), _pa()
    text = lambda *checks, **kw: pa.Column(pl.String, list(checks), **kw)  # noqa: E731
    non_empty = pa.Check.str_length(min_value=1)
    return pa.DataFrameSchema(
        {
            "vla_path": text(pa.Check.str_matches(r"^.+\.vla$"), unique=True),
            "source_repo_id": text(non_empty),
            "source_dataset_version": text(non_empty),
            "source_episode_index": pa.Column(pl.Int64, pa.Check.ge(0), unique=True),
            "source_episode_length": pa.Column(pl.Int64, pa.Check.gt(0)),
            "task": text(),
            "robot_id": text(pa.Check.str_matches(SAFE_ID)),
            "converter_version": text(non_empty),
            "created_at": text(pa.Check.str_matches(ISO_DATETIME)),
            "qa_status": text(pa.Check.isin(list(QA_STATUSES))),
            "episode_id": text(pa.Check.str_matches(SAFE_ID), unique=True),
            "split": text(pa.Check.isin(list(SPLITS))),
            "video_codec": text(non_empty),
            "bytes": pa.Column(pl.Int64, pa.Check.gt(0)),
            "quality_score": pa.Column(pl.Float64, pa.Check.in_range(0.0, 1.0), nullable=True),
            "success": pa.Column(pl.Boolean, nullable=True),
            "min_distance_m": pa.Column(pl.Float64, pa.Check.ge(0.0), nullable=True),
        },
        strict=True, name=ROBODM_MANIFEST_TABLE)


@functools.cache
def qa_results_schema() -> pa.DataFrameSchema:
    """**QA results**: the ``conversions`` list of an ``episodes-hdf5/<day>/<robot>/`` manifest, one
    row per raw episode the partition's conversion attempted (``EpisodeConversion`` as a dict).

    Producer: processing (:func:`hvla_platform.lib.processing.build.convert_partition`, checked
    before the manifest is built; a cached conversion re-reads and re-checks it). Consumers: dataset
    (``select_episodes``: status, file, sha256, quality score and QA gates decide what a release
    takes), the ``hvla qa list`` command, the processing asset's checks and MLflow QA log.

    Columns: ``episode_id`` (safe id, unique), ``status`` (converted / failed), ``reason`` (text),
    ``num_frames`` (int64 ≥ 0), ``duration_s`` (float ≥ 0), ``file``, ``sha256`` (hex or empty),
    ``task`` (text), ``quality_score`` (float in [0, 1], null when QA could not score),
    ``checks.<processing check>.passed`` (bool, each of :data:`PROCESSING_CHECK_NAMES`),
    ``qa_checks.<QA check>.passed`` (bool, null when that check did not run; any number of them),
    ``outcome.success`` (bool) and ``outcome.min_distance_m`` (float ≥ 0, metres): the recording's
    own outcome from its ``metadata.yaml``, null when it states none.
    Rows: ``converted`` exactly when every processing check passed; a converted episode has the
    file ``<episode_id>.h5``, its sha256, frames and a quality score; a failed one a reason.
    """
    pl, pa = _pl(), _pa()
    converted = lambda: pl.col("status") == "converted"  # noqa: E731
    return pa.DataFrameSchema(
        {
            "episode_id": pa.Column(pl.String, pa.Check.str_matches(SAFE_ID), unique=True),
            "status": pa.Column(pl.String, pa.Check.isin(list(CONVERSION_STATUSES))),
            "reason": pa.Column(pl.String),
            "num_frames": pa.Column(pl.Int64, pa.Check.ge(0)),
            "duration_s": pa.Column(pl.Float64, pa.Check.ge(0), coerce=True),
            "file": pa.Column(pl.String),
            "sha256": pa.Column(pl.String, pa.Check.str_matches(SHA256_OR_EMPTY)),
            "task": pa.Column(pl.String),
            "quality_score": pa.Column(pl.Float64, pa.Check.in_range(0.0, 1.0), nullable=True, coerce=True),
            **{f"checks.{n}.passed": pa.Column(pl.Boolean) for n in PROCESSING_CHECK_NAMES},
            r"^qa_checks\..+\.passed$": pa.Column(pl.Boolean, nullable=True, regex=True, required=False),
            "outcome.success": pa.Column(pl.Boolean, nullable=True),
            "outcome.min_distance_m": pa.Column(pl.Float64, pa.Check.ge(0.0), nullable=True),
        },
        checks=[
            _rows_satisfy("status must be 'converted' exactly when every checks.*.passed",
                          lambda: converted() == pl.all_horizontal(
                              [pl.col(f"checks.{n}.passed") for n in PROCESSING_CHECK_NAMES])),
            _rows_satisfy("a converted episode needs file '<episode_id>.h5', sha256, num_frames > 0 and a "
                          "quality_score",
                          lambda: ~converted() | ((pl.col("file") == pl.col("episode_id") + ".h5")
                                                  & (pl.col("sha256") != "") & (pl.col("num_frames") > 0)
                                                  & pl.col("quality_score").is_not_null())),
            _rows_satisfy("a failed episode needs a reason",
                          lambda: converted() | (pl.col("reason") != "")),
        ],
        strict=True, name=QA_RESULTS_TABLE)


# ---- building frames and reporting ------------------------------------------------------------
def _declared_dtype(schema: pa.DataFrameSchema, name: str) -> Any:
    col = schema.columns.get(name)
    if col is None:
        col = next((c for n, c in schema.columns.items() if c.regex and re.match(n, name)), None)
    return None if col is None or col.dtype is None else col.dtype.type


_Misfits = dict[str, list[tuple[int, Any]]]


def _series(name: str, values: list[Any], dtype: Any, misfits: _Misfits) -> pl.Series:
    """``values`` as a Series of the declared ``dtype`` if they all fit, else of the inferred type,
    else as text: the schema then reports the column's wrong dtype. The first values that do not
    fit go to ``misfits[name]`` as ``(row, value)``, so the message can name them."""
    pl = _pl()
    errors = (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError)

    def fits(v: Any) -> bool:
        if dtype.is_integer() and (v is True or v is False):
            return False  # polars would take a bool as 0/1
        try:
            pl.Series(name, [v], dtype=dtype, strict=True)
            return True
        except errors:
            return False

    if dtype is not None:
        if not (dtype.is_integer() and any(v is True or v is False for v in values)):
            try:
                return pl.Series(name, values, dtype=dtype, strict=True)
            except errors:
                pass
        bad = misfits.setdefault(name, [])
        for i, v in enumerate(values):
            if v is not None and not fits(v):
                bad.append((i, v))
                if len(bad) == _MAX_ROWS:
                    break
    try:
        s = pl.Series(name, values, strict=True)
        if not (dtype is not None and s.dtype == dtype):  # a bool in an int column: keep the mismatch visible
            return s
    except errors:
        pass
    return pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.String)


def _frame(schema: pa.DataFrameSchema, columns: Mapping[str, list[Any]],
           height: int) -> tuple[pl.DataFrame, _Misfits]:
    pl = _pl()
    misfits: _Misfits = {}
    series = [_series(n, v, _declared_dtype(schema, n), misfits) for n, v in columns.items()]
    return (pl.DataFrame(series, height=height) if series else pl.DataFrame(height=height)), misfits


def _short(value: Any) -> str:
    s = repr(value).replace("\n", " ")
    return s if len(s) <= _MAX_VALUE else s[: _MAX_VALUE - 1] + "…"


def _short_text(value: Any) -> str:
    """A failure case as pandera reports it (already text), quoted only when empty."""
    if isinstance(value, str) and value:
        return _short(value)[1:-1]
    return _short(value)


def _rows(frame: pl.DataFrame, id_column: str | None, indices: list[int]) -> str:
    idx = sorted(set(indices))
    shown = idx[:_MAX_ROWS]
    ids = ""
    if id_column and id_column in frame.columns:
        col = frame.get_column(id_column)
        ids = f" ({id_column} {', '.join(_short(col[i]) for i in shown if i < len(col))})"
    more = f" and {len(idx) - _MAX_ROWS} more" if len(idx) > _MAX_ROWS else ""
    return f"{'row' if len(idx) == 1 else 'rows'} {', '.join(map(str, shown))}{more}{ids}"


def _problems_from(exc: Exception, frame: pl.DataFrame, id_column: str | None,
                   misfits: _Misfits) -> tuple[list[str], list[str]]:
    """One phrase per (column, check) of a pandera ``SchemaErrors``/``SchemaError``, and the columns."""
    cases = getattr(exc, "failure_cases", None)
    if cases is None or not hasattr(cases, "to_dicts"):
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [first[:200]], []
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in cases.to_dicts():
        key = (str(row.get("schema_context")), str(row.get("column")), str(row.get("check")))
        groups.setdefault(key, []).append(row)
    # a missing column or one of the wrong dtype: its value checks and the row checks cannot mean anything
    broken = ({str(r["failure_case"]) for (_, _, chk), rs in groups.items() if chk == "column_in_dataframe"
               for r in rs} | {col for (_, col, chk) in groups if chk.startswith("dtype(")})
    problems, columns = [], []
    for (context, column, check), rs in groups.items():
        indices = [int(r["index"]) for r in rs if r.get("index") is not None]
        values = [r.get("failure_case") for r in rs]
        structural = check in ("column_in_dataframe", "column_in_schema") or check.startswith("dtype(")
        if broken and not structural and (context == "DataFrameSchema" or column in broken):
            continue
        if check == "column_in_dataframe":
            problems += [f"column {v!r} is missing" for v in values]
            columns += [str(v) for v in values]
        elif check == "column_in_schema":
            problems += [f"unexpected column {v!r}" for v in values]
            columns += [str(v) for v in values]
        elif check.startswith("dtype("):
            want = check[len("dtype("):-1].strip("'\"")
            bad = misfits.get(column) or []
            at = (f" at {_rows(frame, id_column, [i for i, _ in bad])}: "
                  f"{', '.join(_short(v) for _, v in bad)}" if bad else "")
            problems.append(f"column {column!r} has dtype {values[0]}, expected {want}{at}")
            columns.append(column)
        elif check == "not_nullable":
            problems.append(f"column {column!r} is null at {_rows(frame, id_column, indices)}")
            columns.append(column)
        elif check == "field_uniqueness":
            dups = sorted({str(v) for v in values})
            problems.append(f"column {column!r} has duplicate value(s) "
                            f"{', '.join(map(_short, dups[:_MAX_ROWS]))} "
                            f"at {_rows(frame, id_column, indices)}")
            columns.append(column)
        elif context == "DataFrameSchema":
            if not indices:
                problems.append(f"check {check!r} could not run: {_short(values[0])}")
            else:
                problems.append(f"{check} at {_rows(frame, id_column, indices)}")
                columns += [c for c in frame.columns if c in check]
        else:
            shown = ", ".join(_short_text(v) for v in values[:_MAX_ROWS])
            where = f" at {_rows(frame, id_column, indices)}" if indices else ""
            problems.append(f"column {column!r} fails {check}{where}: {shown}")
            columns.append(column)
    return problems, columns


def _validate(schema: pa.DataFrameSchema, frame: pl.DataFrame, *, table: str, where: str,
              id_column: str | None, problems: list[str] | None = None,
              columns: list[str] | None = None, misfits: _Misfits | None = None) -> pl.DataFrame:
    """``schema.validate(frame)`` (all problems collected), plus ``problems`` found before; raises
    :class:`TableError` if there is any."""
    pa = _pa()
    problems, columns = list(problems or []), list(columns or [])
    try:
        frame = schema.validate(frame, lazy=True)
    except (pa.errors.SchemaErrors, pa.errors.SchemaError) as exc:
        p, c = _problems_from(exc, frame, id_column, misfits or {})
        problems += p
        columns += c
    if problems:
        raise TableError(table, where, problems, columns)
    return frame


def _dotted(rows: list[Any], field: str, names: Iterable[str], leaf: str = "passed") -> dict[str, list[Any]]:
    """``{f"{field}.{name}.{leaf}": [row[field][name][leaf], ...]}`` for each name (None where the
    row has no such entry). An entry that is not a mapping with ``leaf`` becomes a text marker, so
    the column gets a wrong dtype and the schema names it."""
    out: dict[str, list[Any]] = {f"{field}.{n}.{leaf}": [] for n in names}
    for r in rows:
        sub = r.get(field) if isinstance(r, Mapping) else None
        sub = sub if isinstance(sub, Mapping) else {}
        for n in names:
            v = sub.get(n)
            if isinstance(v, Mapping) and leaf in v:
                v = v[leaf]
            elif v is not None:
                v = f"<{type(v).__name__} without {leaf!r}>"
            out[f"{field}.{n}.{leaf}"].append(v)
    return out


def _nested(rows: list[Any], field: str, names: Iterable[str]) -> dict[str, list[Any]]:
    """``{f"{field}.{name}": [row[field][name], ...]}``: None where the row's ``field`` is absent or
    null (an optional block); a ``field`` that is not a mapping becomes a text marker, so the
    column gets a wrong dtype and the schema names it."""
    out: dict[str, list[Any]] = {f"{field}.{n}": [] for n in names}
    for r in rows:
        sub = r.get(field) if isinstance(r, Mapping) else None
        for n in names:
            if sub is None:
                v = None
            elif isinstance(sub, Mapping):
                v = sub.get(n)
            else:
                v = f"<{type(sub).__name__}, not a mapping>"
            out[f"{field}.{n}"].append(v)
    return out


def _plain(rows: list[Any], names: Iterable[str]) -> dict[str, list[Any]]:
    """Top-level fields as columns; a field absent from every row is left out (→ "column missing")."""
    out = {}
    for n in names:
        vals = [r.get(n) if isinstance(r, Mapping) else None for r in rows]
        if any(isinstance(r, Mapping) and n in r for r in rows) or not rows:
            out[n] = vals
    return out


def _row_list(value: Any, what: str) -> tuple[list[Any], list[str]]:
    if not isinstance(value, list):
        return [], [f"{what} is {type(value).__name__}, not a list of rows"]
    bad = [i for i, r in enumerate(value) if not isinstance(r, Mapping)]
    return value, ([f"{what} row(s) {bad[:_MAX_ROWS]} are not objects"] if bad else [])


# ---- partition index --------------------------------------------------------------------------
_PARTITION_COLUMNS = ("episode_id", "status", "convertible", "sha256", "mcap_key")


def check_partition_index(doc: Any, *, where: str, capture_day: str | None = None,
                          robot_id: str | None = None) -> dict[str, Any]:
    """Validate a partition index document (:func:`partition_index_schema`); returns ``doc``.

    ``capture_day``/``robot_id``: the partition the key names; the document must say the same.

    Raises:
        TableError: naming ``where``, the columns and the rows (episode ids) at fault.
    """
    schema = partition_index_schema()
    if not isinstance(doc, Mapping):
        raise TableError(PARTITION_INDEX_TABLE, where,
                         [f"the document is {type(doc).__name__}, not an object"])
    problems, columns = [], []
    for field, want in (("capture_day", capture_day), ("robot_id", robot_id)):
        if not isinstance(doc.get(field), str) or (want is not None and doc.get(field) != want):
            expected = _short(want) if want else "text"
            problems.append(f"{field} is {_short(doc.get(field))}, expected {expected}")
            columns.append(field)
    rows, p = _row_list(doc.get("episodes"), "episodes")
    problems += p
    cols = _plain(rows, _PARTITION_COLUMNS)
    cols.update(_dotted(rows, "checks", RAW_CHECK_NAMES))
    rights = [r.get("rights") if isinstance(r, Mapping) else None for r in rows]
    cols["rights.retention_until"] = [x.get("retention_until") if isinstance(x, Mapping) else x
                                      for x in rights]
    frame, misfits = _frame(schema, cols, len(rows))
    _validate(schema, frame, table=PARTITION_INDEX_TABLE, where=where, id_column="episode_id",
              problems=problems, columns=columns, misfits=misfits)
    return dict(doc)


# ---- Robo-DM cache manifest -------------------------------------------------------------------
def check_robodm_manifest(table: Any, *, where: str) -> pl.DataFrame:
    """Validate a Robo-DM cache manifest given as a polars DataFrame or a pyarrow Table (converted
    without copying); returns it as a polars DataFrame.

    Raises:
        TableError: naming ``where``, the columns and the rows (episode ids) at fault.
    """
    pl = _pl()
    frame = table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)
    return _validate(robodm_manifest_schema(), frame, table=ROBODM_MANIFEST_TABLE, where=where,
                     id_column="episode_id")


def read_robodm_manifest(path: str | Path) -> list[dict[str, Any]]:
    """Read ``manifest.parquet`` with polars, validate it, and return its rows as dicts (file order).

    Raises:
        FileNotFoundError: there is no such file.
        TableError: the file is not Parquet or does not match :func:`robodm_manifest_schema`.
    """
    pl = _pl()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{ROBODM_MANIFEST_TABLE} {path} does not exist")
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TableError(ROBODM_MANIFEST_TABLE, str(path),
                         [f"not readable as Parquet: {_short(first)}"]) from exc
    return check_robodm_manifest(frame, where=str(path)).to_dicts()


# ---- QA results -------------------------------------------------------------------------------
_QA_COLUMNS = ("episode_id", "status", "reason", "num_frames", "duration_s", "file", "sha256", "task",
               "quality_score")


def check_qa_results(rows: Any, *, where: str) -> list[dict[str, Any]]:
    """Validate the QA results (``conversions`` rows, :func:`qa_results_schema`); returns ``rows``.

    Raises:
        TableError: naming ``where``, the columns and the rows (episode ids) at fault.
    """
    schema = qa_results_schema()
    rows, problems = _row_list(rows, "conversions")
    cols = _plain(rows, _QA_COLUMNS)
    if "quality_score" not in cols:  # nullable: an absent score is a null score
        cols["quality_score"] = [None] * len(rows)
    cols.update(_dotted(rows, "checks", PROCESSING_CHECK_NAMES))
    qa_names = sorted({n for r in rows if isinstance(r, Mapping) and isinstance(r.get("qa_checks"), Mapping)
                       for n in r["qa_checks"]})
    cols.update(_dotted(rows, "qa_checks", qa_names))
    cols.update(_nested(rows, "outcome", ("success", "min_distance_m")))
    frame, misfits = _frame(schema, cols, len(rows))
    _validate(schema, frame, table=QA_RESULTS_TABLE, where=where, id_column="episode_id", problems=problems,
              misfits=misfits)
    return rows


# ---- lineage index (plain checks: see lineage_index_schema) -----------------------------------
@dataclass(frozen=True)
class PlainColumn:
    """One column of a table checked without pandera (:func:`lineage_index_schema`).

    ``column_ok`` judges the whole column at C speed (``set(map(type, values))``, ``min``...) and
    may raise false alarms, never miss a bad value; only when it fails is ``value_ok`` run per
    value, which decides and names the rows.
    """

    name: str
    rule: str
    column_ok: Callable[[list[Any]], bool]
    value_ok: Callable[[Any], bool]


def _types(values: Iterable[Any]) -> set[type]:
    return set(map(type, values))


def _ints_in(lo: int, hi: int | None = None) -> tuple[Callable[[list[Any]], bool], Callable[[Any], bool]]:
    def column_ok(vs: list[Any]) -> bool:
        return not vs or (_types(vs) == {int} and min(vs) >= lo and (hi is None or max(vs) < hi))

    def value_ok(v: Any) -> bool:
        return type(v) is int and v >= lo and (hi is None or v < hi)

    return column_ok, value_ok


def _texts(non_empty: bool = False) -> tuple[Callable[[list[Any]], bool], Callable[[Any], bool]]:
    def column_ok(vs: list[Any]) -> bool:
        return not vs or (_types(vs) == {str} and (not non_empty or min(map(len, vs)) > 0))

    def value_ok(v: Any) -> bool:
        return type(v) is str and (not non_empty or v != "")

    return column_ok, value_ok


_HEX64_RUN = re.compile(r"[0-9a-f]*")
_SEP = "\x00"


def _sha256s() -> tuple[Callable[[list[Any]], bool], Callable[[Any], bool]]:
    one = re.compile(SHA256)

    def column_ok(vs: list[Any]) -> bool:
        return not vs or (_types(vs) == {str} and set(map(len, vs)) == {64}
                          and _HEX64_RUN.fullmatch("".join(vs)) is not None)

    return column_ok, lambda v: type(v) is str and one.match(v) is not None


def _key_ok(k: Any) -> bool:
    return type(k) is str and k != "" and k[0] != "/" and k[-1] != "/"


def _keys_column_ok(vs: list[Any]) -> bool:
    if not vs:
        return True
    if not _all_non_empty_text([vs]):
        return False
    joined = _SEP.join(vs)
    return joined[0] != "/" and joined[-1] != "/" and f"{_SEP}/" not in joined and f"/{_SEP}" not in joined


def _edge_ok(e: Any, id_lists: frozenset[int]) -> bool:
    return (type(e) is list and len(e) == 5 and (e[0] is None or type(e[0]) is str)
            and type(e[1]) is str and type(e[2]) is str and type(e[3]) is str
            and type(e[4]) is int and e[4] in id_lists)


def _all_non_empty_text(lists: Iterable[list[Any]]) -> bool:
    """Every element of every list is non-empty text, judged at C speed: ``join`` refuses anything
    but text, and an empty element leaves two separators side by side (text that contains the
    separator is a false alarm, which the value-by-value check then clears)."""
    lists = list(lists)
    if not sum(map(len, lists)):
        return True
    try:
        joined = _SEP.join(chain.from_iterable(lists))
    except TypeError:
        return False
    return bool(joined) and joined[0] != _SEP and joined[-1] != _SEP and _SEP * 2 not in joined


def _id_list_column(id_lists: frozenset[int]) -> tuple[Callable[[list[Any]], bool], Callable[[Any], bool]]:
    def column_ok(vs: list[Any]) -> bool:
        return not vs or (_types(vs) == {int} and set(vs) <= id_lists)

    return column_ok, lambda v: type(v) is int and v in id_lists


def _inputs_column_ok(id_lists: frozenset[int]) -> Callable[[list[Any]], bool]:
    def column_ok(vs: list[Any]) -> bool:
        if _types(vs) - {list}:
            return False
        edges = list(chain.from_iterable(vs))
        if not edges:
            return True
        if _types(edges) != {list} or set(map(len, edges)) != {5}:
            return False
        keys, uris, shas, kinds, ids = zip(*edges)
        return (_types(keys) <= {str, type(None)} and _types(uris) == {str} and _types(shas) == {str}
                and _types(kinds) == {str} and _types(ids) == {int} and set(ids) <= id_lists)

    return column_ok


def id_list_positions(table: list[Any]) -> frozenset[int]:
    """Positions of ``table`` (a lineage shard's shared table) holding a list of non-empty text:
    the positions an input edge may name as its episode ids."""
    return frozenset(i for i, v in enumerate(table) if type(v) is list and _all_non_empty_text([v]))


def lineage_index_schema(table_size: int, id_lists: frozenset[int] = frozenset()) -> tuple[PlainColumn, ...]:
    """**Lineage index**, one shard per key group, ``<lake>/_index/lineage/v5/<shard>.json`` (the
    table is the shard object's ``doc``; :mod:`hvla_platform.lib.lineage.shards`): one compact record
    per committed artifact, ``{"format", "table": [shared dicts and episode-id lists], "entries": {key: [fields]}}`` (no
    URI or absolute path: a copied lake's index stays true).

    Producer and consumer: lineage (:func:`hvla_platform.lib.lineage.graph.load_index`): checked
    before a shard is persisted (after a (re)build) and when a process loads one whose bytes do not
    match the CRC-32 written with them -- not per query, decoded shards are memoised per object
    stamp. Its users (the ``hvla lineage`` commands, the lineage tests) go through ``load_index``; a
    rejected shard is rebuilt, the reason
    in ``index.stats["rejected_index"]``.

    Checked in plain Python, not pandera (docs/decisions.md "Tables between stages": importing
    pandera + polars made a fresh ``hvla lineage`` process ~0.5 s slower, for a 25-50 ms warm
    query). Columns (:data:`LINEAGE_FIELDS`, after the ``key``): ``key`` (lake prefix: non-empty,
    no leading/trailing ``/``; unique, as a JSON object's keys), ``size``, ``mtime_ns`` (int ≥ 0,
    of the manifest; 0 on S3, whose ETags are in the shard's ``etags``), ``type`` (non-empty text),
    ``code_version`` (text),
    ``manifest_sha256`` (64 hex digits), ``config`` and ``rights`` (int positions in ``table``,
    ``0 ≤ i < table_size``), ``episode_ids`` (the position in ``table`` of the
    artifact's episode-id list, one of ``id_lists``), ``info``, ``files``
    (objects), ``inputs`` (list of ``[key or null, uri, sha256, kind, ids]``: ``uri`` is
    empty unless ``key`` is null, for an input a version-1 manifest names outside its lake; ``ids``
    is the position in ``table`` of the edge's episode-id list, one of ``id_lists``
    (:func:`id_list_positions`: lists of non-empty text) -- a checkpoint, its cache, its norm stats
    and their edges repeat the same 10^5-id train list, stored once per shard). No nulls.
    """
    objects = (lambda vs: not vs or _types(vs) == {dict}, lambda v: type(v) is dict)
    return (
        PlainColumn("key", "is not a lake prefix (non-empty text, no leading or trailing '/')",
                    _keys_column_ok, _key_ok),
        PlainColumn("size", "is not an int >= 0", *_ints_in(0)),
        PlainColumn("mtime_ns", "is not an int >= 0", *_ints_in(0)),
        PlainColumn("type", "is not non-empty text", *_texts(non_empty=True)),
        PlainColumn("manifest_sha256", "is not 64 lowercase hex digits", *_sha256s()),
        PlainColumn("code_version", "is not text", *_texts()),
        PlainColumn("config", f"is not a position in the shared table (int, 0 <= i < {table_size})",
                    *_ints_in(0, table_size)),
        PlainColumn("rights", f"is not a position in the shared table (int, 0 <= i < {table_size})",
                    *_ints_in(0, table_size)),
        PlainColumn("episode_ids", "is not the position of a list of non-empty text in the table",
                    *_id_list_column(id_lists)),
        PlainColumn("info", "is not an object", *objects),
        PlainColumn("files", "is not an object", *objects),
        PlainColumn("inputs", "is not a list of [key or null, uri, sha256, kind, position of an episode-id "
                    "list in the table] edges",
                    _inputs_column_ok(id_lists), lambda v: type(v) is list and all(_edge_ok(e, id_lists) for e in v)),
    )


def check_lineage_index(doc: Any, *, where: str) -> None:
    """Validate a lineage index document, the form written to disk (:func:`lineage_index_schema`).

    Raises:
        TableError: naming ``where``, the columns and the artifact keys at fault.
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("entries"), Mapping) or not isinstance(
            doc.get("table"), list):
        raise TableError(LINEAGE_INDEX_TABLE, where, ["the document is not {format, table: [...], "
                                                      "entries: {key: [fields]}}"])
    entries = doc["entries"]
    keys = list(entries)
    values = list(entries.values())
    n = len(LINEAGE_FIELDS)
    if values and (_types(values) != {list} or set(map(len, values)) != {n}):
        bad = [k for k, v in zip(keys, values) if type(v) is not list or len(v) != n]
        raise TableError(LINEAGE_INDEX_TABLE, where, [
            f"entries at key(s) {', '.join(map(_short, bad[:_MAX_ROWS]))} do not have the {n} fields "
            f"{list(LINEAGE_FIELDS)}"], ["entries"])
    columns = {"key": keys, **dict(zip(LINEAGE_FIELDS, zip(*values)))} if values else {}
    problems, names = [], []
    for col in lineage_index_schema(len(doc["table"]), id_list_positions(doc["table"])):
        vs = columns.get(col.name, [])
        if col.column_ok(vs):
            continue
        bad = [(k, v) for k, v in zip(keys, vs) if not col.value_ok(v)]
        if not bad:
            continue  # a false alarm of the fast column check
        more = f" and {len(bad) - _MAX_ROWS} more" if len(bad) > _MAX_ROWS else ""
        shown = ", ".join(_short(k) if col.name == "key" else f"{_short(k)}: {_short(v)}"
                          for k, v in bad[:_MAX_ROWS])
        problems.append(f"column {col.name!r} {col.rule} at key(s) {shown}{more}")
        names.append(col.name)
    if problems:
        raise TableError(LINEAGE_INDEX_TABLE, where, problems, names)


# ---- Mixture sampling weights ------------------------------------------------------------------
MIXTURE_WEIGHTS_TABLE = "mixture sampling weights"
#: Roles of a mixture's sources (lib/dataset/mixture.py ``ROLES``; the tests keep them equal).
MIXTURE_ROLES = ("robot_teleop", "simulation", "human_video", "rollout")
#: |Σ episode_weight − 1| a weights table may show (float64 rounding over many rows).
WEIGHT_SUM_TOLERANCE = 1e-9


@functools.cache
def mixture_weights_schema() -> pa.DataFrameSchema:
    """**Mixture sampling weights**, ``mixtures/<name>/<mixture id>/sampling_weights.parquet``, one
    row per episode a mixture samples.

    Producer: dataset (:func:`hvla_platform.lib.dataset.mixture.build_mixture`). Consumers: the
    trainer's reader (:class:`hvla_platform.lib.dataset.mixture.MixtureSampler`), the
    ``mixture_release`` asset's checks and the dataset card.

    Columns (exactly these): ``source`` (the spec's source name, non-empty), ``release`` (the
    component release's version id), ``role`` (one of :data:`MIXTURE_ROLES`), ``episode_index``
    (int64 ≥ 0: LeRobot's index in the component dataset), ``episode_id`` (the platform's episode
    id, null for a dataset without one), ``split`` (train / heldout), ``num_frames`` (int64 > 0),
    ``dataset_from_index`` (int64 ≥ 0: LeRobot's global index of the episode's first frame, so
    frame ``f`` is item ``dataset_from_index + f`` of the component ``LeRobotDataset``),
    ``episode_weight`` (float64 in (0, 1]: probability that a draw lands in this episode),
    ``frame_weight`` (float64 > 0: probability of each of its frames, = episode_weight /
    num_frames), ``action_free`` (bool: the source has no action feature). Rows: ``(source,
    episode_index)`` unique; Σ ``episode_weight`` = 1 within :data:`WEIGHT_SUM_TOLERANCE`.
    """
    pl, pa = _pl(), _pa()
    return pa.DataFrameSchema(
        {
            "source": pa.Column(pl.String, pa.Check.str_length(min_value=1)),
            "release": pa.Column(pl.String, pa.Check.str_length(min_value=1)),
            "role": pa.Column(pl.String, pa.Check.isin(list(MIXTURE_ROLES))),
            "episode_index": pa.Column(pl.Int64, pa.Check.ge(0)),
            "episode_id": pa.Column(pl.String, nullable=True),
            "split": pa.Column(pl.String, pa.Check.isin(list(SPLITS))),
            "num_frames": pa.Column(pl.Int64, pa.Check.gt(0)),
            "dataset_from_index": pa.Column(pl.Int64, pa.Check.ge(0)),
            "episode_weight": pa.Column(pl.Float64, [pa.Check.gt(0.0), pa.Check.le(1.0)]),
            "frame_weight": pa.Column(pl.Float64, pa.Check.gt(0.0)),
            "action_free": pa.Column(pl.Boolean),
        },
        unique=["source", "episode_index"],
        checks=[
            _rows_satisfy(f"episode_weight must sum to 1 (within {WEIGHT_SUM_TOLERANCE:g})",
                          lambda: (pl.col("episode_weight").sum() - 1.0).abs() <= WEIGHT_SUM_TOLERANCE),
            _rows_satisfy("frame_weight must equal episode_weight / num_frames",
                          lambda: ((pl.col("frame_weight") * pl.col("num_frames") - pl.col("episode_weight")).abs()
                                   <= 1e-12)),
        ],
        strict=True, name=MIXTURE_WEIGHTS_TABLE)


def check_mixture_weights(table: Any, *, where: str) -> pl.DataFrame:
    """Validate a mixture's sampling-weights table given as a polars DataFrame or a pyarrow Table;
    returns it as a polars DataFrame.

    Raises:
        TableError: naming ``where``, the columns and the rows (sources) at fault.
    """
    pl = _pl()
    frame = table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)
    return _validate(mixture_weights_schema(), frame, table=MIXTURE_WEIGHTS_TABLE, where=where, id_column="source")


def read_mixture_weights(path: str | Path) -> pl.DataFrame:
    """Read a mixture's ``sampling_weights.parquet`` with polars and validate it.

    Raises:
        FileNotFoundError: there is no such file.
        TableError: the file is not Parquet or does not match :func:`mixture_weights_schema`.
    """
    return read_parquet_table(path, MIXTURE_WEIGHTS_TABLE, check_mixture_weights)


def read_parquet_table(path: str | Path, table: str, check: Callable[..., pl.DataFrame]) -> pl.DataFrame:
    """Read a Parquet table handed between stages with polars and validate it with ``check(frame,
    where=<path>)`` (one of the ``check_*`` functions above); returns the validated frame.

    Raises:
        FileNotFoundError: there is no such file (the message names ``table``).
        TableError: the file is not Parquet, or whatever ``check`` raises.
    """
    pl = _pl()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{table} {path} does not exist")
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TableError(table, str(path), [f"not readable as Parquet: {_short(first)}"]) from exc
    return check(frame, where=str(path))
