"""Nightly refresh of the releases that follow new data, as dated snapshot releases.

A registered release spec **follows new data** when it says ``partitions: all`` (and is not a
consent-withdrawal rebuild ``<name>-r<N>``, which is a corrected copy, not a line of its own).
Rebuilding such a release under its own name would change what a name means after a checkpoint
was trained on it, so a refresh never does that: it registers a **snapshot**
``<name>-<YYYYMMDD>`` — the same spec with ``partitions`` pinned to the capture-day × robot
partitions converted at that moment — and the caller builds it (``release_job``). A snapshot is
only taken when the converted partitions (each identified by the sha256 of its ``episodes-hdf5``
manifest) differ from those of the line's latest built release (the base release or an earlier
snapshot), so a night without new data makes no release.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import yaml

from hvla_platform.lib.core.keys import LEROBOT, RELEASE_SPECS, episodes_prefix
from hvla_platform.lib.core.manifest import EpisodesManifest, LeRobotDatasetManifest, load_manifest
from hvla_platform.lib.dataset.spec import ReleaseSpec, ReleaseSpecError
from hvla_platform.lib.dataset.releases import available_episode_partitions, load_release, register_release, spec_key
from hvla_platform.lib.core.lake import Lake

_REVISION = re.compile(r"-r\d+$")
_MAX_NAME = 64


@dataclass
class RefreshPlan:
    """A snapshot to take: ``partitions`` maps each ``<day>|<robot>`` to its HDF5 manifest sha256."""

    spec: ReleaseSpec
    snapshot: str
    day: dt.date
    partitions: dict[str, str]
    previous: str | None
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for logs: what the snapshot adds over the previous release of the line."""
        since = f"since {self.previous}" if self.previous else "first release of the line"
        return (f"{self.spec.name} → {self.snapshot} ({len(self.partitions)} partition(s); {since}: "
                f"new {self.added or 'none'}, re-converted {self.changed or 'none'})")


def following_specs(lake: Lake) -> tuple[list[ReleaseSpec], list[str]]:
    """(specs that follow new data, problems with unreadable specs), sorted by name."""
    specs, problems = [], []
    for key in lake.list_keys(RELEASE_SPECS):
        name = key[len(RELEASE_SPECS) + 1:]
        if "/" in name or not name.endswith(".yaml"):
            continue
        try:
            spec = load_release(lake, name[: -len(".yaml")])
        except (ReleaseSpecError, FileNotFoundError) as exc:  # a ReleaseSpecError names the spec's URI itself
            problems.append(str(exc) if isinstance(exc, ReleaseSpecError) else f"{lake.uri(key)}: {exc}")
            continue
        if not spec.partitions and not _REVISION.search(spec.name):
            specs.append(spec)
    return sorted(specs, key=lambda s: s.name), problems


def converted_partitions(lake: Lake) -> dict[str, str]:
    """``{"<day>|<robot>": sha256 of its episodes-hdf5 manifest}`` of every converted partition."""
    out = {}
    for day, robot in available_episode_partitions(lake):
        manifest = load_manifest(lake, episodes_prefix(day, robot), EpisodesManifest)
        if manifest is not None:
            out[f"{day}|{robot}"] = manifest.sha256()
    return out


def latest_line_release(lake: Lake, spec: ReleaseSpec) -> LeRobotDatasetManifest | None:
    """Manifest of the most recently built release of ``spec``'s line (any version of itself or of a
    snapshot), or ``None``."""
    line = re.compile(rf"^{re.escape(spec.name)}(-\d{{8}})?(\.\d+)?$")  # snapshots and their versions
    best = None
    for prefix in lake.list_artifacts(f"{LEROBOT}/{spec.repo_id}"):
        m = load_manifest(lake, prefix, LeRobotDatasetManifest)
        if m and line.match(m.release) and (best is None or m.created_at > best.created_at):
            best = m
    return best


def plan_refresh(lake: Lake, day: dt.date) -> tuple[list[RefreshPlan], list[str]]:
    """The snapshots to take on ``day`` (the local calendar day of the refresh), and problems.

    Writes nothing. A spec whose snapshot name would be longer than 64 characters, or whose
    snapshot for ``day`` is already registered, is listed under problems / skipped.
    """
    specs, problems = following_specs(lake)
    current = converted_partitions(lake)
    plans = []
    if not current:
        return [], problems
    for spec in specs:
        prev = latest_line_release(lake, spec)
        before = {i["partition"]: i["sha256"] for i in (prev.partition_inputs if prev else []) if "partition" in i}
        if prev is not None and before == current:
            continue
        name = f"{spec.name}-{day:%Y%m%d}"
        if len(name) > _MAX_NAME:
            problems.append(f"release {spec.name}: snapshot name {name!r} is longer than {_MAX_NAME} characters; "
                            "shorten the spec's name to let it follow new data")
            continue
        if lake.exists(spec_key(name)):
            continue  # already taken today
        plans.append(RefreshPlan(spec, name, day, current, prev["release"] if prev else None,
                                 added=sorted(set(current) - set(before)),
                                 changed=sorted(p for p in set(current) & set(before) if current[p] != before[p])))
    return plans, problems


def register_snapshot(lake: Lake, plan: RefreshPlan) -> ReleaseSpec:
    """Register the snapshot spec of ``plan`` in the lake (``release-specs/<snapshot>.yaml``).

    Raises:
        ReleaseSpecError: the snapshot spec is invalid.
    """
    parts = [dict(zip(("capture_day", "robot_id"), p.split("|"))) for p in sorted(plan.partitions)]
    text = (f"{plan.spec.description} " if plan.spec.description else "") + (
        f"Nightly snapshot of {plan.spec.name}: the {len(parts)} partition(s) converted on {plan.day.isoformat()}.")
    doc = {**plan.spec.to_dict(), "name": plan.snapshot, "partitions": parts, "description": text}
    return register_release(lake, yaml.safe_dump(doc, sort_keys=False))


def refresh_due(now: dt.datetime, not_before: dt.time, last_refreshed: str | None) -> str:
    """``""`` when the nightly refresh is due at ``now`` (local time), else why not.

    Due once per local calendar day, at or after ``not_before``; ``last_refreshed`` is the ISO day
    of the last refresh (the sensor's cursor).
    """
    today = now.date().isoformat()
    if last_refreshed == today:
        return f"releases already refreshed on {today}; next refresh after {not_before:%H:%M} tomorrow"
    if now.time() < not_before:
        return f"next release refresh after {not_before:%H:%M} ({now.tzname() or 'local time'})"
    return ""
