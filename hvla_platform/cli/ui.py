"""``hvla ui``: ``dagster dev`` on the embedded default's instance, with the lake web service
(``hvla web``, where the metadata's report links point) and ``mlflow ui`` (where its MLflow run
links point; only when ``MLFLOW_TRACKING_URI`` is not an ``http(s)`` server, which has its own UI)
beside it.

The three run as children of this process in one process group of their own. The lake web
service and the MLflow UI start first; ``dagster dev`` starts once the lake web service answers
``/healthz``. A child that does not come up (its port is taken, no API key for a non-loopback
``--host``…) ends everything with one line (``hvla ui: refused: …``, exit 2) and nothing is left
running. When ``dagster dev`` ends, or on Ctrl-C / SIGTERM, the whole group gets SIGINT (dagster dev
then stops its webserver and daemon), SIGKILL after :data:`STOP_GRACE_S`. ``HVLA_WEB_URL`` /
``HVLA_MLFLOW_UI_URL`` are set for the children (unless already set) so that the links the code
location writes point at these ports.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from hvla_platform.cli.common import EXIT_FAILED, EXIT_REFUSED
from hvla_platform.lib.core import settings
from hvla_platform.lib.core.settings import REPO_ROOT
from hvla_platform.lib.web.links import DEFAULT_MLFLOW_UI_PORT, DEFAULT_WEB_PORT

#: Seconds the children get to stop after SIGINT before SIGKILL.
STOP_GRACE_S = 20.0
#: Seconds to wait for the lake web service / the MLflow UI to answer.
WEB_START_TIMEOUT_S = 30.0
MLFLOW_START_TIMEOUT_S = 120.0


class ChildFailed(RuntimeError):
    """A child did not start (the message says which and why, one line)."""


@dataclass
class _Child:
    """One child process; its stderr is held back until it is ready, then passed through."""

    name: str
    proc: subprocess.Popen
    held: list[str] = field(default_factory=list)
    ready: bool = False

    def pump(self) -> None:
        assert self.proc.stderr is not None
        for line in iter(self.proc.stderr.readline, ""):
            if self.ready:
                sys.stderr.write(line)
                sys.stderr.flush()
            else:
                self.held.append(line)

    def last_line(self) -> str:
        lines = [ln.strip() for ln in self.held if ln.strip()]
        return lines[-1] if lines else "(no output)"

    def mark_ready(self) -> None:
        self.ready = True
        for line in self.held:
            sys.stderr.write(line)
        self.held = []


class ProcessGroup:
    """Children started in one new process group (the first child leads it), stopped together."""

    def __init__(self) -> None:
        self.children: list[_Child] = []
        self.pgid: int | None = None

    def start(self, name: str, argv: list[str], env: dict[str, str], *, hold_stderr: bool = True) -> _Child:
        """Start ``argv`` in the group (``cwd`` the repository root, stdin from ``/dev/null``)."""
        proc = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                                stderr=subprocess.PIPE if hold_stderr else None, text=True,
                                process_group=0 if self.pgid is None else self.pgid)
        if self.pgid is None:
            self.pgid = proc.pid
        child = _Child(name, proc, ready=not hold_stderr)
        if hold_stderr:
            threading.Thread(target=child.pump, name=f"stderr of {name}", daemon=True).start()
        self.children.append(child)
        return child

    def wait_ready(self, child: _Child, url: str, timeout_s: float) -> None:
        """Until ``url`` answers 200. Raises :class:`ChildFailed` if the child exits or the time is up."""
        deadline = time.monotonic() + timeout_s
        while True:
            if child.proc.poll() is not None:
                time.sleep(0.2)  # its last words
                why = child.last_line().removeprefix("hvla web: refused: ")
                raise ChildFailed(f"{child.name} did not start (exit code {child.proc.returncode}): {why}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        child.mark_ready()
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ChildFailed(f"{child.name} did not answer {url} within {timeout_s:g} s: {child.last_line()}")
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGINT to the group, SIGKILL after :data:`STOP_GRACE_S`; every child reaped."""
        if self.pgid is None:
            return
        for sig, grace in ((signal.SIGINT, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + grace
            for child in self.children:
                try:
                    child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    break
        self.pgid = None


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_ui(args: argparse.Namespace) -> int:
    """Start the lake web service, the MLflow UI and ``dagster dev``; stop them all together."""
    # deferred: cli.orchestration imports dagster (seconds); `hvla --help` and lake-only verbs skip it
    from hvla_platform.cli.orchestration import ensure_dagster_home  # noqa: PLC0415

    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    links: dict[str, str] = {}
    if not args.no_web:
        links["HVLA_WEB_URL"] = os.environ.get("HVLA_WEB_URL") or f"http://{shown}:{args.web_port}"
    tracking = settings.mlflow_tracking_uri()
    mlflow_ui = not args.no_mlflow_ui and not tracking.startswith(("http://", "https://"))
    if mlflow_ui:
        links["HVLA_MLFLOW_UI_URL"] = os.environ.get("HVLA_MLFLOW_UI_URL") or f"http://127.0.0.1:{args.mlflow_ui_port}"
    group = ProcessGroup()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        # our own SIGINT handler (not SIG_IGN) before spawning: children start with the default
        # disposition, so dagster dev shuts down on the SIGINT of stop() even when `hvla ui` runs
        # in the background of a non-interactive shell (which ignores SIGINT)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        env = {**os.environ, **links}
        web = mlflow = None
        if not args.no_web:
            web = group.start("the lake web service", [sys.executable, "-m", "hvla_platform.cli", "web", "--host",
                                                       args.host, "--port", str(args.web_port)], env)
        if mlflow_ui:
            # loopback only: the MLflow UI has no API key
            mlflow = group.start("the MLflow UI", [str(Path(sys.executable).with_name("mlflow")), "ui",
                                                   "--backend-store-uri", tracking,
                                                   "--default-artifact-root", settings.mlflow_artifact_root(),
                                                   "--host", "127.0.0.1", "--port", str(args.mlflow_ui_port),
                                                   "--workers", "1"],
                                 # for browsing runs: without MLflow's job runner (7 huey worker processes)
                                 {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env})
        if web is not None:
            group.wait_ready(web, f"http://127.0.0.1:{args.web_port}/healthz", WEB_START_TIMEOUT_S)
        ensure_dagster_home()
        dagster = group.start("dagster dev", [str(Path(sys.executable).with_name("dagster")), "dev", "-w",
                                              str(REPO_ROOT / "workspace.yaml"), "-h", args.host, "-p", str(args.port)],
                              {**os.environ, **links}, hold_stderr=False)
        if mlflow is not None:
            group.wait_ready(mlflow, f"http://127.0.0.1:{args.mlflow_ui_port}/health", MLFLOW_START_TIMEOUT_S)
        print("hvla ui: " + "; ".join([f"Dagster UI http://{shown}:{args.port}"]
                                      + [f"{k} {v}" for k, v in links.items()]), file=sys.stderr, flush=True)
        code = dagster.proc.wait()
        if code != 0:
            print(f"hvla ui: dagster dev exited with code {code}; stopping the lake web service and MLflow UI",
                  file=sys.stderr, flush=True)
            return EXIT_FAILED
        return 0
    except ChildFailed as exc:
        group.stop()
        print(f"hvla ui: refused: {exc}; nothing was left running", file=sys.stderr, flush=True)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 0
    finally:
        group.stop()
        signal.signal(signal.SIGTERM, previous)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``ui`` to the ``hvla`` command."""
    u = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on the local instance, with the lake web "
                                  "service and the MLflow UI its links open")
    u.add_argument("--host", default="127.0.0.1", help="listen address of the Dagster UI and the lake web service")
    u.add_argument("--port", type=int, default=3000, help="the Dagster UI's port (default 3000)")
    u.add_argument("--web-port", type=int, default=DEFAULT_WEB_PORT,
                   help=f"the lake web service's port (default {DEFAULT_WEB_PORT})")
    u.add_argument("--mlflow-ui-port", type=int, default=DEFAULT_MLFLOW_UI_PORT,
                   help=f"the MLflow UI's port (default {DEFAULT_MLFLOW_UI_PORT}; loopback only)")
    u.add_argument("--no-web", action="store_true", help="do not start the lake web service")
    u.add_argument("--no-mlflow-ui", action="store_true", help="do not start the MLflow UI")
    u.set_defaults(func=cmd_ui)
