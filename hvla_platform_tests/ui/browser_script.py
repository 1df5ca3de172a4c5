"""Run one of this folder's Playwright scripts (``node <script>.mjs ...``) and read its result.

Every browser script prints one JSON object as its last stdout line (``"error"`` and
``"failed_at_url"`` set when a step failed) and logs its steps on stderr; the log is kept as
``browser.log`` beside the screenshots.

No browser outlives its script: Playwright starts Chromium in a session of its own (so a process
group kill of ``node`` misses it), so every process of one run carries a marker in its
environment, and whatever still carries it after ``node`` ended — normally or at the timeout —
is killed. A Chromium left spinning by one test would otherwise starve the next one's browser
(docs/ui_testing.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

UI_DIR = Path(__file__).resolve().parent
MARKER_VAR = "HVLA_BROWSER_RUN"


def processes_marked(marker: str) -> list[int]:
    """Pids of this user's processes whose environment holds ``HVLA_BROWSER_RUN=<marker>``."""
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
        except OSError:  # gone meanwhile, or another user's
            continue
    return pids


def busiest_processes(n: int = 8) -> str:
    """The ``n`` processes using the most CPU (``ps``), for a failure message on a slow machine."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,pcpu,etime,args", "--sort=-pcpu"], capture_output=True,
                         text=True).stdout.splitlines()
    return "\n".join(line[:160] for line in out[: n + 1])


def run_node(script: str, args: list[str], *, timeout: float,
             pipe_grace: float = 30.0) -> tuple[subprocess.CompletedProcess, list[int]]:
    """Run ``node <UI_DIR/script> <args>``; its completed process and the pids of browser processes
    that outlived it (killed, SIGKILL). On the timeout the run is killed and the completed process
    has returncode ``-9`` and stderr ending with ``timed out after N s``; its output is read for at
    most ``pipe_grace`` seconds more (a process without the marker may hold the pipes open), after
    which it is given up as lost."""
    marker = uuid.uuid4().hex
    env = {**os.environ, MARKER_VAR: marker}
    proc = subprocess.Popen(["node", str(UI_DIR / script), *args], cwd=UI_DIR, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        busiest = busiest_processes()
        _kill(processes_marked(marker))
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # node's own group (it started a session of its own)
        except ProcessLookupError:
            pass
        try:  # bounded: a process that dropped the marker may still hold the pipes open
            out, err = proc.communicate(timeout=pipe_grace)
        except subprocess.TimeoutExpired:
            for pipe in (proc.stdout, proc.stderr):
                pipe.close()
            proc.wait(timeout=10)
            out, err = "", f"(the output pipes stayed open {pipe_grace:.0f} s after the kill; output lost)"
        err += f"\n{script} timed out after {timeout:.0f} s; the busiest processes then:\n{busiest}"
    leftovers = processes_marked(marker)
    _kill(leftovers)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), leftovers


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_browser_script(script: str, args: list[str], artifacts: Path, *, timeout: float) -> dict:
    """Run ``node <script> <args>`` in this folder; its result object.

    Raises:
        AssertionError: the script exited non-zero or reported an error (the message names the
            failing URL, the error or the log's tail, the busiest processes at that moment and
            where the screenshots are).
    """
    proc, leftovers = run_node(script, args, timeout=timeout)
    log = proc.stderr + (f"\nkilled {len(leftovers)} browser processes that outlived {script}" if leftovers else "")
    (artifacts / "browser.log").write_text(log)
    lines = proc.stdout.strip().splitlines()
    seen = json.loads(lines[-1]) if lines else {}
    assert proc.returncode == 0 and "error" not in seen, (
        f"the browser script failed at {seen.get('failed_at_url')}: "
        f"{seen.get('error') or proc.stderr[-3000:]}\n"
        + (f"the page showed:\n{seen['page_text']}\n" if seen.get("page_text") else "")
        + f"the busiest processes now:\n{busiest_processes()}\n"
        f"screenshots and logs in {artifacts}")
    return seen
