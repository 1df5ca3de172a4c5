"""Helpers that turn lib results into Dagster metadata and check results (no business logic)."""


import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import dagster as dg

from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.lineage.graph import render_tree, upstream


#: Rows a markdown table shows before it says how many more there are (the UI renders every row).
MAX_TABLE_ROWS = 200
#: Significant digits of a float shown in metadata (4: 0.1235, 12.35, 1.235e-05).
DIGITS = 4
#: Longest text shown in one table cell before it is cut with "…".
MAX_CELL_CHARS = 300


def fmt_value(value: Any, digits: int = DIGITS) -> str:
    """Short human form of a metadata value: floats to ``digits`` significant digits (``%g``),
    non-finite floats as ``nan``/``inf``, ``None`` as ``–``, lists of numbers as ``[a, b, …]``
    (lists longer than 8 shortened, with their length), mappings as ``k: v, …``; anything else
    ``str()``. Not for values a program parses back: the lake's JSON keeps those."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        shown = [fmt_value(v, digits) for v in value[:8]]
        more = f", … ({len(value)} in all)" if len(value) > 8 else ""
        return "[" + ", ".join(shown) + more + "]"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {fmt_value(v, digits)}" for k, v in value.items()) or "(empty)"
    return str(value)


def md_cell(value: Any, digits: int = DIGITS, max_chars: int = MAX_CELL_CHARS) -> str:
    """``value`` (:func:`fmt_value`) as one GitHub-flavoured markdown table cell: ``|`` escaped,
    line breaks as spaces, cut at ``max_chars`` characters with "…"."""
    text = value if isinstance(value, str) else fmt_value(value, digits)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, max_rows: int = MAX_TABLE_ROWS,
             digits: int = DIGITS, max_chars: int = MAX_CELL_CHARS) -> str:
    """A GitHub-flavoured markdown table (what the Dagster UI renders for ``MetadataValue.md``):
    one row per item of ``rows`` (each as long as ``header``; cells by :func:`md_cell`, at most
    ``max_chars`` characters each), at most
    ``max_rows`` of them, then a line saying how many were left out. ``"(none)"`` without rows.

    Raises:
        ValueError: a row's length differs from the header's.
    """
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    n = 0
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table row {list(row)!r} has {len(row)} cells, the header {len(header)}")
        n += 1
        if n <= max_rows:
            lines.append("| " + " | ".join(md_cell(c, digits, max_chars) for c in row) + " |")
    if not n:
        return "(none)"
    if n > max_rows:
        lines.append(f"\n… and {n - max_rows} more row(s).")
    return "\n".join(lines)


def md_mapping(mapping: Mapping[str, Any], key: str, value: str) -> dg.MetadataValue:
    """A two-column markdown table of ``mapping`` (e.g. episode → reason), sorted by key; the text
    ``(none)`` when it is empty."""
    if not mapping:
        return dg.MetadataValue.text("(none)")
    return dg.MetadataValue.md(md_table([key, value], sorted(mapping.items())))


def md_nested(value: Any, digits: int = DIGITS) -> dg.MetadataValue:
    """A nested mapping (a probe result, a check's numbers, thresholds) as a markdown bullet list,
    one level of indentation per level of nesting, floats to ``digits`` significant digits; scalars
    and lists inline (:func:`fmt_value`). Instead of a JSON wall."""
    def walk(v: Any, depth: int) -> list[str]:
        if isinstance(v, Mapping) and v:
            out = []
            for k, sub in v.items():
                if isinstance(sub, Mapping) and sub:
                    out.append("  " * depth + f"- **{k}**")
                    out += walk(sub, depth + 1)
                else:
                    out.append("  " * depth + f"- **{k}**: {md_cell(sub, digits, max_chars=400)}")
            return out
        return ["  " * depth + f"- {md_cell(v, digits, max_chars=400)}"]

    return dg.MetadataValue.md("\n".join(walk(value, 0)) if value not in (None, {}, []) else "(none)")


#: ``review_url(episode_id, t_s)``: the URL of an episode's review page with its timeline at
#: ``t_s`` seconds (None: the start), e.g. :func:`hvla_platform.lib.web.links.episode_review_url`
#: bound to a partition.
ReviewUrl = Callable[[str, "float | None"], str]


def first_finding_s(checks: Iterable[Mapping[str, Any]]) -> float | None:
    """Seconds from the episode's first frame of the earliest finding span among the **failed**
    check records ``checks`` (``{"passed", "detail", "spans": [[start_s, end_s, subject], ...]}``,
    docs/qa.md "Finding times"); None when no failed check has a span."""
    starts = [float(sp[0]) for c in checks if not c.get("passed", False) for sp in (c.get("spans") or [])]
    return min(starts) if starts else None


def review_link(review_url: ReviewUrl, episode_id: str, t_s: float | None) -> str:
    """A markdown link to an episode's review page, at ``t_s`` when given: ``[review at 1.25 s](url)``."""
    label = "review" if t_s is None else f"review at {t_s:.2f} s"
    return f"[{label}]({review_url(episode_id, t_s)})"


def rights_metadata(rights: Rights | None) -> dict[str, Any]:
    """``hvla/`` rights entries, or an explicit "(none)" marker when no input had rights."""
    if rights is None:
        return {"hvla/allowed_uses": "(none: no usable input)"}
    return rights.to_metadata()


def episode_check(
    asset: str,
    name: str,
    per_episode: dict[str, dict[str, Any]],
    *,
    usable: int,
    description: str,
    gate: bool = False,
    review_url: ReviewUrl | None = None,
) -> dg.AssetCheckResult:
    """Aggregate per-episode check outcomes of one partition into one Dagster check result.

    ``per_episode`` maps episode id → ``{"passed": bool, "detail": str}``. The check passes when
    every episode passed. Severity of a failure:

    * ERROR when no episode of the partition is usable (``usable == 0``) — an ERROR on a blocking
      check stops downstream assets in the same run;
    * ERROR when ``gate``: a failure makes the episode unusable as recorded (a QA gate of
      ``lib/processing/qa/score.py``: score 0, left out of releases unless a supervisor approves;
      or a conversion check: not converted). Pass ``gate`` only for a **non-blocking** check, so
      that the UI shows the partition failed while downstream assets still run on the usable
      episodes;
    * WARN otherwise (score-only and report-only checks, or a blocking check while other episodes
      remain usable: the failing ones are quarantined and left out).

    Metadata: ``hvla/num_episodes``, ``hvla/num_failing``, ``hvla/failing_episodes`` (markdown
    table episode → detail, with a link to the episode's review page at the finding's first span
    when ``review_url`` is given; or ``(none)``), ``hvla/details`` (every episode, ok or FAIL).
    """
    failing = {ep: c["detail"] for ep, c in per_episode.items() if not c.get("passed", False)}
    if failing and review_url is not None:
        failing_md = dg.MetadataValue.md(md_table(
            ["episode", "detail", "review"],
            [[ep, failing[ep], review_link(review_url, ep, first_finding_s([per_episode[ep]]))] for ep in sorted(failing)]))
    else:
        failing_md = md_mapping(failing, "episode", "detail")
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR if usable == 0 or gate else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "hvla/num_episodes": len(per_episode),
            "hvla/num_failing": len(failing),
            "hvla/failing_episodes": failing_md,
            "hvla/details": dg.MetadataValue.md(
                "\n".join(f"- `{ep}`: {'ok' if c.get('passed') else 'FAIL'} — {c.get('detail', '')}"
                          for ep, c in sorted(per_episode.items())) or "(no episodes)"
            ),
        },
    )


#: Run tag saying whether the run's episode QA failed (``failed``: a check of a QA'd asset failed
#: with ERROR severity — a gate or a conversion check) or ``passed``.
QA_RUN_TAG = "hvla/qa"
#: Run tag of an ingest run: ``refused N`` (episodes quarantined at ingest plus uploads refused at
#: landing for the partition) or ``passed``.
INGEST_RUN_TAG = "hvla/ingest"


def tag_run(context: dg.AssetExecutionContext, tags: Mapping[str, str]) -> None:
    """Add ``tags`` to the run executing ``context`` (visible on the run and in the runs list, and
    filterable there, e.g. ``hvla/qa=failed``); a later asset of the same run setting the same key
    overwrites the value (Dagster ``DagsterInstance.add_run_tags``)."""
    context.instance.add_run_tags(context.run.run_id, dict(tags))


def failed_with_error(results: Iterable[dg.AssetCheckResult]) -> bool:
    """Whether any of ``results`` failed with ERROR severity (what ``hvla/qa: failed`` means)."""
    return any(not r.passed and r.severity == dg.AssetCheckSeverity.ERROR for r in results)


def lineage_metadata(lake: Any, key: str) -> dict[str, Any]:
    """``hvla/lineage_upstream``: the artifact's upstream tree down to the raw MCAP episodes, from
    the manifests (what ``hvla lineage upstream KEY`` prints), shown on the materialization."""
    tree = render_tree(upstream(lake, key), max_children=6, show_config=False)
    return {"hvla/lineage_upstream": dg.MetadataValue.md(f"```\n{tree}\n```"),
            "hvla/lineage_command": f"hvla lineage upstream {key}"}


def check_specs(asset: str, names_and_descriptions: Iterable[tuple[str, str, bool]],
                partitions_def: dg.PartitionsDefinition | None = None) -> list[dg.AssetCheckSpec]:
    """``AssetCheckSpec`` list from ``(name, description, blocking)`` triples; with the asset's
    ``partitions_def`` each partition keeps its own check result (a passing partition does not hide
    a failing one)."""
    return [dg.AssetCheckSpec(name, asset=asset, description=d, blocking=b, partitions_def=partitions_def)
            for name, d, b in names_and_descriptions]
