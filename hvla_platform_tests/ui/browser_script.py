"""Run one of this folder's Playwright scripts (``node <script>.mjs ...``) and read its result.

Every browser script prints one JSON object as its last stdout line (``"error"`` and
``"failed_at_url"`` set when a step failed) and logs its steps on stderr; the log is kept as
``browser.log`` beside the screenshots.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

UI_DIR = Path(__file__).resolve().parent


def run_browser_script(script: str, args: list[str], artifacts: Path, *, timeout: float) -> dict:
    """Run ``node <script> <args>`` in this folder; its result object.

    Raises:
        AssertionError: the script exited non-zero or reported an error (the message names the
            failing URL, the error or the log's tail, and where the screenshots are).
    """
    proc = subprocess.run(["node", str(UI_DIR / script), *args], cwd=UI_DIR, capture_output=True, text=True,
                          timeout=timeout)
    (artifacts / "browser.log").write_text(proc.stderr)
    lines = proc.stdout.strip().splitlines()
    seen = json.loads(lines[-1]) if lines else {}
    assert proc.returncode == 0 and "error" not in seen, (
        f"the browser script failed at {seen.get('failed_at_url')}: "
        f"{seen.get('error') or proc.stderr[-3000:]}\nscreenshots and logs in {artifacts}")
    return seen
