"""The browser-script runner leaves nothing behind: a process the script started in a session of
its own (as Playwright starts Chromium) is killed when the script ends, and a script that hangs is
killed at its timeout with the reason in its stderr."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from hvla_platform_tests.ui.browser_script import run_node


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_detached_process_the_script_started_does_not_outlive_it(tmp_path):
    script = tmp_path / "spawn.mjs"
    script.write_text("import { spawn } from 'node:child_process';\n"
                      "const c = spawn('sleep', ['300'], { detached: true, stdio: 'ignore' });\n"
                      "c.unref();\n"
                      "console.log(JSON.stringify({ child: c.pid }));\n")
    proc, leftovers = run_node(str(script), [], timeout=60)
    assert proc.returncode == 0, proc.stderr
    child = json.loads(proc.stdout)["child"]
    assert leftovers == [child]
    assert _gone_within(child, 10)


def test_a_script_that_hangs_is_killed_at_its_timeout_with_the_reason(tmp_path):
    script = tmp_path / "hang.mjs"
    script.write_text("setInterval(() => {}, 1000);\n")
    started = time.monotonic()
    proc, _ = run_node(str(script), [], timeout=3)
    assert time.monotonic() - started < 30
    assert proc.returncode == -9
    assert "hang.mjs timed out after 3 s; the busiest processes then:" in proc.stderr


def test_a_hung_script_whose_unmarked_child_holds_the_pipes_returns_at_the_pipe_grace(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "hold_pipes.mjs"
    script.write_text("import { spawn } from 'node:child_process';\n"
                      "import { writeFileSync } from 'node:fs';\n"
                      "const env = { ...process.env }; delete env.HVLA_BROWSER_RUN;\n"
                      "const c = spawn('sleep', ['120'], { detached: true, stdio: ['ignore', 'inherit', 'inherit'], env });\n"
                      f"writeFileSync({json.dumps(str(pid_file))}, String(c.pid));\n"
                      "setInterval(() => {}, 1000);\n")
    try:
        started = time.monotonic()
        proc, _ = run_node(str(script), [], timeout=3, pipe_grace=2)
        assert time.monotonic() - started < 30
        assert proc.returncode == -9
        assert "(the output pipes stayed open 2 s after the kill; output lost)" in proc.stderr
        assert "hold_pipes.mjs timed out after 3 s" in proc.stderr
    finally:
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
