"""What each version of a release holds and what references it (``hvla release versions``)."""

from __future__ import annotations

from typing import Any

from hvla_platform.lib.core.keys import CHECKPOINTS, EVAL_REPORTS
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import CheckpointManifest, EvalReportManifest, load_manifest
from hvla_platform.lib.dataset.versions import list_versions, version_manifest


def references(lake: Lake) -> dict[str, list[str]]:
    """``{version id: [checkpoint and eval-report prefixes naming it]}`` over the whole lake."""
    out: dict[str, list[str]] = {}
    for root, model in ((CHECKPOINTS, CheckpointManifest), (EVAL_REPORTS, EvalReportManifest)):
        for prefix in lake.list_artifacts(root):
            m = load_manifest(lake, prefix, model)
            if m is not None:
                out.setdefault(m.release, []).append(prefix)
    return out


def version_rows(lake: Lake, spec_name: str) -> list[dict[str, Any]]:
    """One row per reserved version of ``spec_name``, oldest first: ``release`` (version id),
    ``version``, ``status`` (``published`` or ``unpublished``: reserved by a build that did not
    complete), ``num_episodes``, ``created_at`` (ISO-8601 UTC), ``fingerprint`` and ``used_by``
    (checkpoints and eval reports that name the version)."""
    refs = references(lake)
    rows = []
    for record in list_versions(lake, spec_name):
        m = version_manifest(lake, record)
        rows.append({
            "release": record.release, "version": record.version,
            "status": "published" if m else "unpublished",
            "num_episodes": m.num_episodes if m else None,
            "created_at": m.created_at if m else None,
            "fingerprint": m.fingerprint if m else None,
            "prefix": record.prefix,
            "used_by": sorted(refs.get(record.release, [])),
        })
    return rows
