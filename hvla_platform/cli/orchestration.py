"""Running the platform's jobs from the command line on a persistent Dagster instance.

The demo and the CLI materialize partitions with ``execute_in_process`` on the same instance that
``dagster dev`` shows (``$DAGSTER_HOME``, default ``$HVLA_HOME/dagster``), so every run, asset
materialization and check result of the demo is visible in the UI afterwards.
"""

import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import dagster as dg

from hvla_platform.cli.run_origin import code_location_job_origin, recorded_under
from hvla_platform.defs.automation.failure_alerts import run_alert
from hvla_platform.defs.partitions import add_dynamic_partitions, migrate_raw_partitions
from hvla_platform.lib.core import settings, tracking
from hvla_platform.lib.core.lake_config import open_lake
from hvla_platform.lib.core.locking import file_lock, owner_alive, owner_token
from hvla_platform.lib.ops.alerts import deliver_alert
from hvla_platform.lib.core.settings import REPO_ROOT


#: Written into ``DAGSTER_HOME`` once its storage exists (after :func:`ensure_dagster_home`'s first run).
READY_MARKER = ".hvla-initialised"


def ensure_dagster_home() -> Path:
    """Point ``DAGSTER_HOME`` at ``$HVLA_HOME/dagster`` (unless set), give it a ``dagster.yaml`` (a
    copy of the repository's embedded-default ``dagster.yaml``) if it has none, and create the
    instance's storage once.

    Dagster creates a SQLite instance's tables on first use; two processes doing it at once (two
    commands, or ``dagster-webserver`` + ``dagster-daemon``) fail with "table … already exists" or
    alembic's "more than one head". The first use therefore runs here, under a file lock
    (``$DAGSTER_HOME/.hvla-init.lock``), before any process uses the instance; later calls only see
    the marker file."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.hvla_home() / "dagster").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    if (home / READY_MARKER).exists():
        return home
    with file_lock(home / ".hvla-init.lock", what=f"Dagster instance {home}"):
        if not (home / READY_MARKER).exists():
            if not (home / "dagster.yaml").exists() and (REPO_ROOT / "dagster.yaml").exists():
                tmp = home / f".dagster.yaml.{os.getpid()}"
                shutil.copyfile(REPO_ROOT / "dagster.yaml", tmp)
                os.replace(tmp, home / "dagster.yaml")  # readers never see half a file
            inst = dg.DagsterInstance.from_config(str(home))
            try:  # touch every storage: each creates and stamps its tables
                inst.get_runs(limit=1)
                inst.all_instigator_state()
                inst.get_dynamic_partitions("_hvla_init")
            finally:
                inst.dispose()
            (home / READY_MARKER).write_text("storage created by hvla\n")
    return home


def load_defs() -> dg.Definitions:
    """The code location's Definitions."""
    # deferred: loading the code location imports every stage (jax, torch, lerobot): only runs need it
    from hvla_platform.definitions import defs  # noqa: PLC0415

    return defs()


#: Run tag naming the process that executes a run in process (``host:pid:start``, see
#: :func:`~hvla_platform.lib.core.locking.owner_token`).
OWNER_TAG = "hvla/owner"
#: Dagster's tag on a re-executed run naming the run it re-executes.
PARENT_RUN_TAG = "dagster/parent_run_id"
#: Run statuses of a run that holds its partition (and the run queue's limits).
IN_PROGRESS = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def instance() -> dg.DagsterInstance:
    """The persistent Dagster instance under ``DAGSTER_HOME``, after marking failed the runs a dead
    ``hvla`` process left in progress (:func:`fail_dead_runs`) and moving an instance made before
    the ``capture_day_robot`` partitions to them (:func:`~hvla_platform.defs.partitions.migrate_raw_partitions`)."""
    ensure_dagster_home()
    inst = dg.DagsterInstance.get()
    fail_dead_runs(inst)
    migrate_raw_partitions(inst, print)
    return inst


def fail_dead_runs(inst: dg.DagsterInstance, echo: Callable[[str], None] = print) -> list[str]:
    """Mark failed every in-progress run executed in process by an ``hvla`` command whose process is
    gone (killed, crashed, machine rebooted); the run ids.

    Such a run would otherwise stay STARTED forever and hold the run queue's limits (one training
    run at a time, one run per partition). The MLflow runs dead processes left RUNNING are marked
    failed too (:func:`~hvla_platform.lib.core.tracking.fail_orphaned_runs`). Runs the daemon launched are watched by Dagster's run
    monitoring instead (``run_monitoring`` in ``dagster.yaml``)."""
    failed = []
    for run in inst.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS)):
        token = run.tags.get(OWNER_TAG)
        # a re-execution (from the UI, or the daemon's retry) of an hvla run inherits its tags, owner
        # included, but is launched and watched like any other run: never executed in process by hvla
        if not token or PARENT_RUN_TAG in run.tags or owner_alive(token) is not False:
            continue
        inst.report_run_failed(run, message=(
            f"hvla: the process that executed this run in process ({token}) is gone (killed or crashed); "
            f"marked failed by {owner_token()} at {time.strftime('%Y-%m-%d %H:%M:%S')}"))
        failed.append(run.run_id)
        echo(f"  run {run.run_id[:8]} ({run.job_name}, partition {run.tags.get('dagster/partition', '-')}) "
             f"was left in progress by a dead process ({token}): marked failed")
    if failed:  # and the MLflow runs it left RUNNING
        tracking.fail_orphaned_runs(settings.mlflow_tracking_uri())
    return failed


def wait_for_partition(inst: dg.DagsterInstance, partition: str, *, timeout: float,
                       echo: Callable[[str], None] = print) -> None:
    """Wait until no run of ``partition`` is in progress (one the daemon launched, or another
    command's); runs of dead ``hvla`` processes are marked failed meanwhile.

    Raises:
        TimeoutError: a run of the partition was still in progress after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    told = ""
    while True:
        fail_dead_runs(inst, echo)
        busy = inst.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS, tags={"dagster/partition": partition}))
        if not busy:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"partition {partition}: run {busy[0].run_id} ({busy[0].job_name}) still in progress "
                               f"after {timeout:.0f} s")
        if told != busy[0].run_id:
            told = busy[0].run_id
            echo(f"  waiting for run {told[:8]} ({busy[0].job_name}) of partition {partition} to finish")
        time.sleep(1.0)


def partition_lock(inst: dg.DagsterInstance, partition: str, *, timeout: float):
    """The file lock that lets one ``hvla`` command at a time run a partition on this instance."""
    digest = hashlib.sha256(partition.encode()).hexdigest()[:32]
    return file_lock(Path(inst.root_directory) / ".hvla-locks" / f"partition-{digest}.lock", timeout=timeout,
                     what=f"partition {partition} (another hvla command runs it)")


def add_partitions(inst: dg.DagsterInstance, name: str, keys: list[str]) -> None:
    """Register dynamic partition keys (idempotent, safe against a concurrent add)."""
    add_dynamic_partitions(inst, name, keys)


@dataclass
class JobOutcome:
    """Summary of one in-process run: materializations and check results, for printing."""

    job: str
    partition: str
    success: bool
    run_id: str
    materializations: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[tuple[str, str, bool, str]] = field(default_factory=list)  # asset, check, passed, severity
    #: (asset, check) → the check's own ``hvla/status`` metadata where it states one (e.g. a release
    #: check that was ``not_judged``: passed, but nothing was judged)
    check_status: dict[tuple[str, str], str] = field(default_factory=dict)
    error: str = ""


def run_job(defs: dg.Definitions, inst: dg.DagsterInstance, job_name: str, partition_key: str,
            run_config: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
            log_level: str = "INFO") -> JobOutcome:
    """Execute ``job_name`` for one partition in-process on ``inst`` and summarise the result.

    One run per partition at a time: this waits for the partition's run in progress, if any
    (another ``hvla`` command's: a file lock; one the daemon launched: the instance's runs), up to
    ``HVLA_PARTITION_WAIT_SECONDS`` (default 3600). The run is tagged with this process
    (:data:`OWNER_TAG`) so that a later command can tell it died, and recorded under the code
    location's job origin (:mod:`hvla_platform.cli.run_origin`), so that the UI lists it in its
    Overview timeline and can re-execute it like the runs the daemon launched.

    ``log_level`` is the console logger's level (the full DEBUG event stream is in the instance's
    event log either way, visible in the UI)."""
    job = defs.resolve_job_def(job_name)
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    timeout = float(os.environ.get("HVLA_PARTITION_WAIT_SECONDS", "3600"))
    key = str(partition_key)
    with partition_lock(inst, key, timeout=timeout):
        wait_for_partition(inst, key, timeout=timeout)
        # recorded under the code location, as the daemon's runs are: in the UI's Overview timeline
        with recorded_under(inst, code_location_job_origin(job_name)):
            res = job.execute_in_process(instance=inst, partition_key=partition_key, run_config=config,
                                         raise_on_error=False,
                                         tags={"hvla/trigger": "hvla command line", **(tags or {}),
                                               OWNER_TAG: owner_token()})
    if not res.success:
        alert_failed_run(inst, res.dagster_run)
    out = JobOutcome(job=job_name, partition=str(partition_key), success=res.success, run_id=res.run_id)
    for ev in res.all_events:
        if ev.event_type_value == "ASSET_MATERIALIZATION":
            mat = ev.event_specific_data.materialization
            out.materializations[mat.asset_key.to_user_string()] = {
                k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            e = ev.event_specific_data
            out.checks.append((e.asset_key.to_user_string(), e.check_name, e.passed, e.severity.value))
            status = getattr(e.metadata.get("hvla/status"), "value", None)
            if status:
                out.check_status[(e.asset_key.to_user_string(), e.check_name)] = str(status)
        elif ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            out.error += f"{ev.step_key}: {err.message.strip() if err else 'failed'}\n"
    return out


def alert_failed_run(inst: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Alert a failed run ``hvla`` executed in process exactly as the daemon's ``run_failure_alerts``
    sensor alerts a run it sees fail (the lake record ``alerts/<day>/<run_id>.json``, the hook and
    the webhook: ``hvla_platform.lib.ops.alerts``), which does not see in-process runs. A delivery
    that fails is one warning line on stderr; the command's own outcome is unchanged."""
    try:
        delivery = deliver_alert(open_lake(), run_alert(inst, run))
    except Exception as exc:  # noqa: BLE001 - said on stderr; the run's own failure is what the command reports
        print(f"warning: the failure alert of run {run.run_id[:8]} was not recorded: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        return
    for err in delivery.errors:
        print(f"warning: alert hook point failed (the lake record {delivery.record_key} stands): {err}",
              file=sys.stderr, flush=True)


def print_outcome(o: JobOutcome, echo: Callable[[str], None] = print) -> None:
    """Human-readable summary of a :class:`JobOutcome`."""
    echo(f"  run {o.run_id[:8]} {'succeeded' if o.success else 'FAILED'} ({o.job}, partition {o.partition})")
    for asset, md in o.materializations.items():
        echo(f"    ✓ {asset}: {md.get('status', 'materialized')} → {md.get('dagster/uri', '')}")
    for asset, check, passed, sev in o.checks:
        status = o.check_status.get((asset, check), "")
        word = "not judged" if passed and status.replace("_", " ") == "not judged" else "passed" if passed else f"FAILED ({sev})"
        echo(f"      check {asset}.{check}: {word}")
    if o.error:
        echo("    error: " + o.error.strip().replace("\n", "\n           "))
