"""A run whose worker process is gone is marked failed by the real Dagster daemon (issue 12 §1 "A crash
never blocks later work"): the daemon's run monitoring asks the run launcher of ``dagster.yaml``
(``HvlaRunLauncher``) whether the worker is alive, and fails the run with the launcher's reason.

The run is a real ``ingest_job`` of a landed partition, launched through the webserver's GraphQL
API, queued and started by ``dagster-daemon`` as a subprocess (run worker) of the daemon's code
server. The test kills, with ``kill -9``, that code server and then the run worker (with the step
processes it started): a worker killed alone is reported by its code server itself ("Run execution
process … was terminated by signal 9"), which is Dagster's own behaviour; the launcher is what
notices a worker that died *with* its code server (``hvla ui`` or the daemon killed with their
children, the OOM killer taking the code server, a reboot), which used to stay STARTED forever and
hold the partition's place in the run queue. Before the kill, the live worker is checked and left
alone for several poll intervals.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from hvla_platform_tests.paths import REPO_ROOT
from hvla_platform_tests.ui.dagster_ui import DagsterUI, graphql, land_recordings

RECORDINGS = REPO_ROOT / "data" / "recordings" / "2026-11-10" / "g1-001"
PARTITION = ("2026-11-10", "g1-001")
#: The test instance's run-monitoring poll interval (the shipped dagster.yaml says 30 s).
POLL_SECONDS = 2

LAUNCH = """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) { __typename
  ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""
RUN = """query($r: ID!) { runOrError(runId: $r) { __typename ... on Run { status } } }"""
LOGS = """query($r: ID!) { logsForRun(runId: $r) { __typename ... on EventConnection { events {
  __typename ... on MessageEvent { message } ... on EngineEvent { metadataEntries { label
  ... on TextMetadataEntry { text } } } } } } }"""


def launch_ingest(base_url: str) -> str:
    """Launch ``ingest_job`` for the test's partition as the UI's launchpad does; the run id."""
    day, robot = PARTITION
    params = {"selector": {"repositoryLocationName": "hvla_platform", "repositoryName": "__repository__",
                           "pipelineName": "ingest_job"},
              "executionMetadata": {"tags": [{"key": "dagster/partition", "value": f"{day}|{robot}"}]}}
    res = graphql(base_url, LAUNCH, variables={"p": params}, timeout=180)["launchPipelineExecution"]
    assert res["__typename"] == "LaunchRunSuccess", res
    return res["run"]["runId"]


def run_status(base_url: str, run_id: str) -> str:
    return graphql(base_url, RUN, variables={"r": run_id})["runOrError"]["status"]


def run_events(base_url: str, run_id: str) -> list[dict]:
    logs = graphql(base_url, LOGS, variables={"r": run_id}, timeout=30)["logsForRun"]
    assert logs["__typename"] == "EventConnection", logs
    return logs["events"]


def worker_pid(events: list[dict]) -> int | None:
    """The pid the run worker reported ("Started process for run (pid: N).", metadata ``pid``)."""
    for e in events:
        if e.get("message", "").startswith("Started process for run"):
            return int(next(m["text"] for m in e["metadataEntries"] if m["label"] == "pid"))
    return None


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process of this machine, or ``None`` when there is none."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return fields[0], int(fields[1])


def gone(pid: int) -> bool:
    """Whether no live process has ``pid`` (absent, or a zombie: exited, not reaped yet)."""
    st = proc_stat(pid)
    return st is None or st[0] in ("Z", "X")


def descendants(pid: int) -> list[int]:
    """Pids of the live descendants of ``pid``."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := proc_stat(int(d.name))) is not None and st[0] not in ("Z", "X"):
            children.setdefault(st[1], []).append(int(d.name))
    out, todo = [], list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def kill_9(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def freeze_tree(worker: int) -> list[int]:
    """SIGSTOP the worker and every process it started, until the tree stops growing; the pids."""
    tree, frozen = [worker], set()
    while set(tree) - frozen:
        for p in set(tree) - frozen:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                pass
            frozen.add(p)
        time.sleep(0.05)  # a signal is delivered asynchronously
        tree = [worker] + descendants(worker)
    return tree


def kill_worker_with_its_code_server(worker: int) -> list[int]:
    """``kill -9`` the worker's code server (first: it would report the worker's death), then the
    worker and every process it started (frozen with SIGSTOP first, so none is added meanwhile); the
    pids killed."""
    server = proc_stat(worker)[1]
    cmdline = Path(f"/proc/{server}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "dagster api grpc" in cmdline, f"the run worker's parent is not a code server: {cmdline}"
    kill_9(server)
    tree = freeze_tree(worker)
    for p in tree:
        kill_9(p)
    return [server] + tree


def test_a_run_whose_worker_died_with_its_code_server_is_failed_by_the_daemon(tmp_path):
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shipped = (REPO_ROOT / "dagster.yaml").read_text()
    assert "class: HvlaRunLauncher" in shipped and "poll_interval_seconds: 30" in shipped
    (home / "dagster" / "dagster.yaml").write_text(
        shipped.replace("poll_interval_seconds: 30", f"poll_interval_seconds: {POLL_SECONDS}"))
    land_recordings(home, RECORDINGS, tmp_path / "ingest.log")
    with DagsterUI(home, tmp_path / "logs") as ui:
        run_id = launch_ingest(ui.base_url)
        deadline = time.monotonic() + 240
        pid = status = None
        waiting = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")
        while status != "STARTED" or pid is None:  # until the worker runs the job
            assert time.monotonic() < deadline, f"run {run_id} {status}, worker {pid} after 240 s; {ui.logs}"
            status = run_status(ui.base_url, run_id)
            assert status in waiting, f"run {run_id} {status} before the kill; see {ui.logs}"
            pid = pid or worker_pid(run_events(ui.base_url, run_id))
            time.sleep(0.2)
        # a live worker is left alone: the run stays STARTED through several health checks. The
        # worker is frozen (SIGSTOP: alive, but making no progress) so that the run cannot finish
        # first, however fast ingest has become
        freeze_tree(pid)
        time.sleep(3 * POLL_SECONDS + 1)
        status = run_status(ui.base_url, run_id)
        assert status == "STARTED", f"run {run_id} {status} before the kill; see {ui.logs}"
        assert not gone(pid)
        killed = kill_worker_with_its_code_server(pid)
        t_kill = time.monotonic()
        while (status := run_status(ui.base_url, run_id)) == "STARTED":
            assert time.monotonic() - t_kill < 60 + POLL_SECONDS, f"run {run_id} STARTED 60 s after the kill"
            time.sleep(0.5)
        detected_s = time.monotonic() - t_kill
        messages = [e.get("message", "") for e in run_events(ui.base_url, run_id)]
        assert status == "FAILURE", (status, messages[-5:])
        (failure,) = [m for m in messages if "Detected run worker status FAILED" in m]
        assert f"hvla: the run worker (pid {pid} on" in failure, failure
        assert "is gone (killed or crashed)" in failure, failure
        assert not [m for m in messages if "Run execution process for" in m], "the code server reported it"
        assert all(gone(p) for p in killed), [p for p in killed if not gone(p)]
        assert ui.procs["dagster-daemon"].poll() is None, "the daemon died with its code server"
        print(f"\nrun {run_id[:8]}: worker pid {pid} killed with its code server; "
              f"FAILURE after {detected_s:.1f} s (poll interval {POLL_SECONDS} s)")
