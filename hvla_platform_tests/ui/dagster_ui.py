"""A real Dagster UI for the browser test: a fresh instance with landed recordings, served by
``dagster-webserver`` with ``dagster-daemon`` beside it (the local ``dagster.yaml`` queues launched
runs, and only the daemon dequeues and starts them).

Used by ``test_browser.py``; also runnable by hand to look at the same UI the test drives::

    .venv/bin/python -m hvla_platform_tests.ui.dagster_ui --home /tmp/hvla-ui --port 3917
    node hvla_platform_tests/ui/asset_graph.mjs --base-url http://127.0.0.1:3917 --artifacts /tmp/shots

(docs/ui_testing.md).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path

from hvla_platform_tests.machine_lock import hold
from hvla_platform_tests.procs import wait_group_gone

REPO_ROOT = Path(__file__).resolve().parents[2]
UI_DIR = Path(__file__).resolve().parent

#: Environment variables that would point the platform somewhere else than the fresh home.
_REDIRECTING_ENV = ("HVLA_LAKE_ROOT", "HVLA_LAKE_BACKEND", "MLFLOW_TRACKING_URI", "HVLA_MLFLOW_ARTIFACT_ROOT",
                    "DAGSTER_HOME", "HVLA_HOME")

_WORKSPACE_QUERY = """{ workspaceOrError { __typename
  ... on Workspace { locationEntries { name loadStatus
      locationOrLoadError { __typename ... on PythonError { message } } } }
  ... on PythonError { message } } }"""
_DAEMON_QUERY = "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_tool(name: str) -> str:
    """An executable installed beside the running Python (``dagster-webserver``, ``dagster-daemon``)."""
    exe = Path(sys.executable).with_name(name)
    if not exe.exists():
        raise RuntimeError(f"{exe} not found: run scripts/install.sh")
    return str(exe)


def instance_env(home: Path) -> dict[str, str]:
    """The environment of every process of the test instance: local lake and SQLite Dagster
    instance under ``home``, nothing inherited that points elsewhere."""
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING_ENV}
    env.update(HVLA_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), PYTHONUNBUFFERED="1",
               # the daemon runs the nightly schedule too: keep it from launching a second run of the
               # partition the test launches (it would if the test ran at 02:00): 12 hours from now
               HVLA_NIGHTLY_CRON=f"0 {(dt.datetime.now(dt.timezone.utc).hour + 12) % 24} * * *",
               HVLA_TIMEZONE="UTC")
    return env


def land_recordings(home: Path, folder: Path, log: Path) -> str:
    """``hvla ingest FOLDER`` (without ``--materialize``) on the instance under ``home``: the
    recordings land in the lake's landing area and their capture-day × robot partitions are
    registered. Returns the command's output; raises if it fails."""
    proc = subprocess.run([sys.executable, "-m", "hvla_platform.cli", "ingest", str(folder)], cwd=REPO_ROOT,
                          env=instance_env(home), capture_output=True, text=True, timeout=300)
    log.write_text(f"$ hvla ingest {folder}\n{proc.stdout}\n{proc.stderr}")
    if proc.returncode != 0:
        raise RuntimeError(f"hvla ingest {folder} failed ({proc.returncode}); see {log}:\n"
                           + proc.stderr[-2000:])
    return proc.stdout


def initialise_instance(home: Path, log: Path) -> None:
    """Create the instance's storage under ``home`` once, under its file lock, the way every
    ``hvla`` command does before using it (``ensure_dagster_home``): ``dagster-webserver`` and
    ``dagster-daemon`` starting together on an uninitialised SQLite instance would both create
    its tables and one of them would fail. Raises if it fails."""
    code = "from hvla_platform.cli.orchestration import ensure_dagster_home; print(ensure_dagster_home())"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, env=instance_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    log.write_text(out or "")
    if proc.returncode != 0:
        raise RuntimeError(f"initialising the Dagster instance under {home} failed ({proc.returncode}); see {log}")


def graphql(base_url: str, query: str, timeout: float = 10.0, variables: dict | None = None) -> dict:
    """POST a GraphQL query (with its ``variables``, if any) to the webserver; the ``data`` of the
    answer. Raises ``RuntimeError`` when the answer has errors."""
    payload = {"query": query, **({"variables": variables} if variables is not None else {})}
    req = urllib.request.Request(f"{base_url}/graphql", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = json.load(r)
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    return body["data"]


class DagsterUI:
    """``dagster-webserver`` + ``dagster-daemon`` on the instance under ``home``, each in its own
    process group (so that stopping them also stops their code servers and run workers)."""

    def __init__(self, home: Path, logs: Path, port: int | None = None):
        self.home, self.logs = home, logs
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self._files = []
        self._lock = None

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.logs / f"{name}.log", "wb")
        self._files.append(out)
        self.procs[name] = subprocess.Popen(argv, cwd=REPO_ROOT, env=instance_env(self.home), stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    def start(self, timeout: float = 120.0) -> "DagsterUI":
        """Initialise the instance (as ``hvla ui`` does), start both processes and wait until the
        code location is loaded and the daemon that dequeues runs reports healthy. Raises
        ``RuntimeError`` (naming the log) otherwise, after stopping whatever it started.

        Waits first (without a bound: pytest-timeout ends a test that waits too long) until it holds
        the machine test lock exclusively (:mod:`hvla_platform_tests.machine_lock`: no other test
        runs beside a Dagster UI); held until :meth:`stop`."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self._lock = ExitStack()
        self._lock.enter_context(hold(exclusive=True))
        try:
            initialise_instance(self.home, self.logs / "init.log")
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> "DagsterUI":
        workspace = str(REPO_ROOT / "workspace.yaml")
        self._spawn("dagster-webserver", [venv_tool("dagster-webserver"), "-w", workspace, "-h", "127.0.0.1",
                                          "-p", str(self.port)])
        self._spawn("dagster-daemon", [venv_tool("dagster-daemon"), "run", "-w", workspace])
        deadline = time.monotonic() + timeout
        state = "webserver not answering"
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    log = self.logs / f"{name}.log"
                    raise RuntimeError(f"{name} exited with {p.returncode}; see {log}")
            try:
                state = self._readiness()
                if state == "ready":
                    return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1.0)
        raise RuntimeError(f"Dagster UI not ready after {timeout:.0f} s ({state}); "
                           f"see the logs in {self.logs}")

    def _readiness(self) -> str:
        ws = graphql(self.base_url, _WORKSPACE_QUERY)["workspaceOrError"]
        if ws["__typename"] != "Workspace":
            return f"workspace error: {ws.get('message')}"
        entries = ws["locationEntries"]
        if not entries or any(e["loadStatus"] != "LOADED" for e in entries):
            return f"code location loading: {[(e['name'], e['loadStatus']) for e in entries]}"
        errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
        if errors:
            raise RuntimeError(f"code location failed to load: {errors[0]['locationOrLoadError']['message']}")
        statuses = graphql(self.base_url, _DAEMON_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
        queued = [d for d in statuses if d["daemonType"] == "QUEUED_RUN_COORDINATOR"]
        if not queued or not queued[0]["healthy"]:
            return f"daemon not healthy yet: {queued}"
        return "ready"

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM each process group, then SIGKILL whatever is left after ``grace`` seconds
        (idempotent; also called when :meth:`start` fails)."""
        for p in self.procs.values():
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p in self.procs.values():
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs.values():  # the leader may be gone while its children are not
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            wait_group_gone(p.pid, 5.0)
        for f in self._files:
            f.close()
        self._files.clear()
        if self._lock is not None:  # the machine test lock
            self._lock.close()
            self._lock = None

    def __enter__(self) -> "DagsterUI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Serve the test's UI by hand: land recordings into a fresh home and keep the UI running."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--home", type=Path, required=True, help="a new, empty HVLA_HOME for the instance")
    ap.add_argument("--recordings", type=Path,
                    default=REPO_ROOT / "data" / "recordings" / "2026-11-10" / "g1-001")
    ap.add_argument("--port", type=int, default=3917)
    args = ap.parse_args(argv)
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    print(land_recordings(home, args.recordings.resolve(), home / "ingest.log"), end="")
    # stop cleanly on Ctrl-C and on SIGTERM, also when started in the background (where the
    # shell leaves SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    ui = DagsterUI(home, home / "logs", args.port)
    try:
        ui.start()
        print(f"Dagster UI on {ui.base_url} (logs in {ui.logs}); Ctrl-C or SIGTERM stops it", flush=True)
        while all(p.poll() is None for p in ui.procs.values()):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        ui.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
