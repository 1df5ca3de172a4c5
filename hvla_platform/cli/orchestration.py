"""Running the platform's jobs from the command line on a persistent Dagster instance.

The demo and the CLI materialize partitions with ``execute_in_process`` on the same instance that
``dagster dev`` shows (``$DAGSTER_HOME``, default ``$HVLA_HOME/dagster``), so every run, asset
materialization and check result of the demo is visible in the UI afterwards.
"""

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import dagster as dg

from hvla_platform.lib.core import settings
from hvla_platform.lib.core.settings import REPO_ROOT


def ensure_dagster_home() -> Path:
    """Point ``DAGSTER_HOME`` at ``$HVLA_HOME/dagster`` (unless set) and give it a ``dagster.yaml``
    (a copy of the repository's embedded-default ``dagster.yaml``) if it has none."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.hvla_home() / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    if not (home / "dagster.yaml").exists() and (REPO_ROOT / "dagster.yaml").exists():
        shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def load_defs() -> dg.Definitions:
    """The code location's Definitions."""
    # deferred: loading the code location imports every stage (jax, torch, lerobot): only runs need it
    from hvla_platform.definitions import defs  # noqa: PLC0415

    return defs()


def instance() -> dg.DagsterInstance:
    """The persistent Dagster instance under ``DAGSTER_HOME``."""
    ensure_dagster_home()
    return dg.DagsterInstance.get()


def add_partitions(inst: dg.DagsterInstance, name: str, keys: list[str]) -> None:
    """Register dynamic partition keys (idempotent)."""
    existing = set(inst.get_dynamic_partitions(name))
    new = [k for k in keys if k not in existing]
    if new:
        inst.add_dynamic_partitions(name, new)


@dataclass
class JobOutcome:
    """Summary of one in-process run: materializations and check results, for printing."""

    job: str
    partition: str
    success: bool
    run_id: str
    materializations: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)  # asset, check, passed, severity
    error: str = ""


def run_job(defs: dg.Definitions, inst: dg.DagsterInstance, job_name: str, partition_key: str | dg.MultiPartitionKey,
            run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
            log_level: str = "INFO") -> JobOutcome:
    """Execute ``job_name`` for one partition in-process on ``inst`` and summarise the result.

    ``log_level`` is the console logger's level (the full DEBUG event stream is in the instance's
    event log either way, visible in the UI)."""
    job = defs.resolve_job_def(job_name)
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    res = job.execute_in_process(instance=inst, partition_key=partition_key, run_config=config,
                                 raise_on_error=False, tags=tags or {})
    out = JobOutcome(job=job_name, partition=str(partition_key), success=res.success, run_id=res.run_id)
    for ev in res.all_events:
        if ev.event_type_value == "ASSET_MATERIALIZATION":
            mat = ev.event_specific_data.materialization
            out.materializations[mat.asset_key.to_user_string()] = {
                k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            e = ev.event_specific_data
            out.checks.append((e.asset_key.to_user_string(), e.check_name, e.passed, e.severity.value))
        elif ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            out.error += f"{ev.step_key}: {err.message.strip() if err else 'failed'}\n"
    return out


def print_outcome(o: JobOutcome, echo: Callable[[str], None] = print) -> None:
    """Human-readable summary of a :class:`JobOutcome`."""
    echo(f"  run {o.run_id[:8]} {'succeeded' if o.success else 'FAILED'} ({o.job}, partition {o.partition})")
    for asset, md in o.materializations.items():
        echo(f"    ✓ {asset}: {md.get('status', 'materialized')} → {md.get('dagster/uri', '')}")
    for asset, check, passed, sev in o.checks:
        echo(f"      check {asset}.{check}: {'passed' if passed else f'FAILED ({sev})'}")
    if o.error:
        echo("    error: " + o.error.strip().replace("\n", "\n           "))
