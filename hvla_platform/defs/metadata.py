"""Helpers that turn lib results into Dagster metadata and check results (no business logic)."""


from typing import Any, Iterable

import dagster as dg

from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.lineage.graph import render_tree, upstream


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
) -> dg.AssetCheckResult:
    """Aggregate per-episode check outcomes of one partition into one Dagster check result.

    ``per_episode`` maps episode id → ``{"passed": bool, "detail": str}``. The check passes when
    every episode passed. Severity is WARN while other episodes of the partition remain usable
    (the failing ones are quarantined and left out), ERROR when none does — an ERROR on a blocking
    check stops downstream assets in the same run.
    """
    failing = {ep: c["detail"] for ep, c in per_episode.items() if not c.get("passed", False)}
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR if usable == 0 else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "hvla/num_episodes": len(per_episode),
            "hvla/num_failing": len(failing),
            "hvla/failing_episodes": dg.MetadataValue.json(failing) if failing else "(none)",
            "hvla/details": dg.MetadataValue.md(
                "\n".join(f"- `{ep}`: {'ok' if c.get('passed') else 'FAIL'} — {c.get('detail', '')}"
                          for ep, c in sorted(per_episode.items())) or "(no episodes)"
            ),
        },
    )


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
