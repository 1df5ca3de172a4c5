"""The run launcher of the embedded default (``dagster.yaml``): Dagster's ``DefaultRunLauncher``
plus a health check of the run worker, so that the daemon's run monitoring marks failed a run whose
worker process is gone (issue 12 §1, docs/operations.md "A crash never blocks later work").

A launched run executes in a *run worker*, a subprocess of the code server; the worker writes the
engine event "Started process for run (pid: N)." (metadata ``pid``) before the run starts. A worker
that dies while its code server lives is reported by the code server (Dagster's own behaviour).
When both are gone — ``hvla ui`` or the daemon killed with their children, the OOM killer taking the
code server, a reboot — nothing reported it, and the run stayed STARTED forever, holding the run
queue's limits (one run per partition, one training run).
:meth:`HvlaRunLauncher.check_run_worker_health` answers the daemon's question "is this run's worker
still running?" from that pid; the daemon (``run_monitoring`` in dagster.yaml, every
``poll_interval_seconds``) marks the run failed when the answer is FAILED.

Not a Definitions object: ``load_from_defs_folder`` imports this module and finds nothing in it;
the instance loads the class by name (``run_launcher: module/class`` in dagster.yaml).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, LaunchRunContext, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

from hvla_platform.lib.core import settings, tracking
from hvla_platform.lib.core.locking import _start_time, owner_token

#: Message prefixes of the engine event a run worker writes with its pid (``dagster/_grpc/impl.py``:
#: a launched run; ``dagster/_cli/api.py``: a resumed one). Other engine events carry a ``pid`` too
#: ("Executing steps in process (pid: …)", step subprocesses): only these name the run worker.
WORKER_PID_EVENTS = ("Started process for run (pid:", "Started process for resuming job (pid:")
#: Slack (seconds) when comparing a process's start with its pid event: the start time is rebuilt
#: from the boot time (whole seconds) and clock ticks, and the wall clock may have been slewed since.
START_TIME_SLACK_SECONDS = 5.0
#: Run tag: the host whose launcher launched the run (so a run is only checked where its pid means
#: something).
LAUNCHED_ON_TAG = "hvla/launched_on"


def worker_pid_event(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """``(pid, timestamp)`` of the newest run-worker pid event of run ``run_id`` (timestamp in
    seconds since the epoch, written by the worker itself after it started), or ``None`` when the
    run has none (a run executed in process by ``hvla``, or one whose worker has not started)."""
    found = None
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or not (event.message or "").startswith(WORKER_PID_EVENTS):
            continue
        pid = event.event_specific_data.metadata.get("pid") if event.event_specific_data else None
        try:
            found = (int(getattr(pid, "value", pid)), float(entry.timestamp))
        except (TypeError, ValueError):
            continue
    return found


def process_started_at(pid: int) -> float | None:
    """When process ``pid`` of this machine started (seconds since the epoch, to about a second), or
    ``None`` when no live process has that pid (absent, or a zombie: it has exited)."""
    ticks = _start_time(pid)
    if ticks is None:
        return None
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1]) + int(ticks) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError("/proc/stat has no btime line")


def worker_on_this_machine(run: dg.DagsterRun) -> bool:
    """Whether the run's worker ran on this machine, in this pid namespace: this launcher launched it
    here (:data:`LAUNCHED_ON_TAG` is this host's name) through a code server reached over a local
    socket (what ``dagster dev``, ``hvla ui`` and ``dagster-daemon`` start for the ``python_module``
    entry of workspace.yaml: a subprocess of theirs). A code server reached over TCP may run in
    another machine or container, where the pid means nothing here."""
    try:
        info = json.loads(run.tags.get(GRPC_INFO_TAG) or "{}")
    except ValueError:
        return False
    return bool(info.get("socket")) and run.tags.get(LAUNCHED_ON_TAG) == socket.gethostname()


def _at(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="seconds")


class HvlaRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` (runs are subprocesses of the code server) whose run workers the
    daemon's run monitoring can check (:meth:`check_run_worker_health`). Configured in
    ``dagster.yaml``; takes no config."""

    def launch_run(self, context: LaunchRunContext) -> None:
        """Launch the run as ``DefaultRunLauncher`` does, after tagging it with this host
        (:data:`LAUNCHED_ON_TAG`). Raises what ``DefaultRunLauncher.launch_run`` raises
        (``DagsterLaunchFailedError`` when the code server could not start the run)."""
        self._instance.add_run_tags(context.dagster_run.run_id, {LAUNCHED_ON_TAG: socket.gethostname()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        """True: the daemon calls :meth:`check_run_worker_health` for every STARTED run."""
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        """Whether ``run``'s worker process still runs: its pid from the run's event log
        (:func:`worker_pid_event`), looked up on this machine.

        * ``FAILED`` when no live process has that pid, or the process with that pid started after
          the worker had written its pid event (more than :data:`START_TIME_SLACK_SECONDS` later:
          the pid was reused). The MLflow runs that dead processes left RUNNING are marked failed
          too (:func:`~hvla_platform.lib.core.tracking.fail_orphaned_runs`), when the tracking store
          is a local SQLite file that exists or a server. The daemon then marks the run FAILURE,
          with this result's message.
        * ``RUNNING`` when the process lives, and also when the worker cannot be checked from here:
          the run has no pid event (a run ``hvla`` executes in process — ``fail_dead_runs`` in
          ``hvla_platform/cli/orchestration.py`` watches those — or one launched elsewhere), or its
          worker ran elsewhere (:func:`worker_on_this_machine`), or this system has no ``/proc``.
          The daemon fails a run for any status other than RUNNING and SUCCESS (UNKNOWN included),
          so "cannot tell" must be RUNNING; the message starts with "not checked" and says why.

        Raises only what reading the run's event log raises; errors of the MLflow store are
        reported in the message, not raised (the Dagster run is failed either way).
        """
        found = worker_pid_event(self._instance, run.run_id)
        if found is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not checked: the run has no run-worker pid "
                                        "event (not launched by this launcher, or executed in process)")
        pid, reported_at = found
        if not Path("/proc/self/stat").exists():
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"not checked: run worker pid {pid}, no /proc "
                                        "here", run_worker_id=str(pid))
        if not worker_on_this_machine(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING,
                                        f"not checked: run worker pid {pid} ran elsewhere (launched on "
                                        f"{run.tags.get(LAUNCHED_ON_TAG, '?')}, code server "
                                        f"{run.tags.get(GRPC_INFO_TAG, '?')})", run_worker_id=str(pid))
        started = process_started_at(pid)
        if started is not None and started <= reported_at + START_TIME_SLACK_SECONDS:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker pid {pid} is running",
                                        run_worker_id=str(pid))
        why = ("no process has that pid any more" if started is None else
               f"pid {pid} now belongs to a process started at {_at(started)}, after the worker")
        msg = (f"hvla: the run worker (pid {pid} on {socket.gethostname()}, reported at {_at(reported_at)}) "
               f"is gone (killed or crashed): {why}; checked by {owner_token()} at "
               f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        return CheckRunHealthResult(WorkerStatus.FAILED, msg + _fail_orphaned_mlflow_runs(),
                                    run_worker_id=str(pid))


def _fail_orphaned_mlflow_runs() -> str:
    """Mark failed the MLflow runs whose process is gone (:func:`tracking.fail_orphaned_runs`: the
    dead run worker's among them); what was done, as a clause for the run's failure message ("" when
    nothing was left RUNNING)."""
    uri = settings.mlflow_tracking_uri()
    db = tracking.sqlite_path(uri)
    if uri.startswith("sqlite:") and (db is None or not db.exists()):
        return ""  # no local store yet: no run to fail (and no reason to create one here)
    try:
        failed = tracking.fail_orphaned_runs(uri)
    except Exception as exc:  # noqa: BLE001 - the Dagster run must be failed even if MLflow is down
        return f"; MLflow runs left RUNNING were not checked ({type(exc).__name__}: {exc})"
    if not failed:
        return ""
    return f"; MLflow runs left RUNNING by dead processes marked failed: {', '.join(failed)}"
