"""Helpers that turn lib results into Dagster metadata and check results (no business logic)."""


from typing import Any, Iterable

import dagster as dg

from hvla_platform.lib.rights import Rights


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


def check_specs(asset: str, names_and_descriptions: Iterable[tuple[str, str, bool]]) -> list[dg.AssetCheckSpec]:
    """``AssetCheckSpec`` list from ``(name, description, blocking)`` triples."""
    return [dg.AssetCheckSpec(name, asset=asset, description=d, blocking=b) for name, d, b in names_and_descriptions]
