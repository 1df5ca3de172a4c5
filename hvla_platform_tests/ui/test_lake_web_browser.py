"""The report links open in a browser (issue 13 §2): ``hvla web`` serves a small lake with an API
key; headless Chromium (``lake_links.mjs``) opens it once with ``?key=``, clicks the QA report on
the index page, sees the report over HTTP (not Chromium's "Not allowed to load local resource" for
a ``file://`` link) and seeks the episode's H.264 video, which needs HTTP Range requests.
Screenshots in ``test-artifacts/ui/lake-web/`` (under ``HVLA_UI_ARTIFACTS``). Needs scripts/install_ui.sh; a missing
tool fails the test, it never skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.lib.web.test_app import PARTITION, REPORT, VIDEO, write_mp4
from hvla_platform_tests.procs import stop
from hvla_platform_tests.ui.browser_script import run_node
from hvla_platform_tests.ui.dagster_ui import REPO_ROOT
from hvla_platform_tests.ui.test_browser import CHROMIUM, INSTALL_HINT, _toolchain_problems

pytestmark = pytest.mark.browser

KEY = "browser-test-key"
REPORT_PAGE = ("<!doctype html><html><body><h1>QA report 2026-11-10 g1-001</h1>"
               "<p>1 episode, score 0.91</p><video controls muted src='videos/ep-0001.mp4'></video></body></html>")


def test_a_qa_report_link_opens_over_http_and_its_video_seeks(tmp_path):
    problems = _toolchain_problems()
    if problems:
        pytest.fail("browser test cannot run: " + "; ".join(problems) + f" — {INSTALL_HINT}", pytrace=False)
    artifacts = Path(os.environ.get("HVLA_UI_ARTIFACTS", REPO_ROOT / "test-artifacts" / "ui")).resolve() / "lake-web"
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes(REPORT, REPORT_PAGE.encode())
    write_mp4(tmp_path / "ep.mp4", frames=40)  # 4 s at 10 fps
    lake.put_file(tmp_path / "ep.mp4", VIDEO)
    env = {**os.environ, "HVLA_API_KEY": KEY, "HVLA_HOME": str(tmp_path / "home")}
    server = subprocess.Popen([sys.executable, "-m", "hvla_platform.cli", "web", "--port", "0",
                               "--lake", str(lake.root)],
                              cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        line = server.stdout.readline()
        assert " on http://127.0.0.1:" in line, line
        base = "http://127.0.0.1:" + line.split("http://127.0.0.1:")[1].split()[0]
        proc, _ = run_node("lake_links.mjs", ["--base-url", base, "--key", KEY, "--artifacts", str(artifacts),
                                              "--chromium", CHROMIUM], timeout=90)
    finally:
        stop(server)
    assert proc.stdout.strip(), proc.stderr
    shown = json.loads(proc.stdout.strip().splitlines()[-1])
    assert shown["failed"] is None, shown
    assert shown["without_key"]["status"] == 401 and shown["without_key"]["text"].startswith("missing API key")
    assert shown["index_url"] == f"{base}/"  # the key left the address bar
    assert shown["qa_link_href"] == f"/lake/{REPORT}"
    assert shown["report_url"] == f"{base}/lake/{REPORT}"
    assert shown["report_h1"] == "QA report 2026-11-10 g1-001"
    assert "Not allowed to load local resource" not in " ".join(shown["console_errors"])
    video = shown["video"]
    assert video["error"] is None and video["duration"] == pytest.approx(4.0, abs=0.2)
    assert video["current_time"] == pytest.approx(video["target"], abs=0.15)
    assert (artifacts / "lake-02-qa-report.png").is_file()
    assert PARTITION in shown["report_url"]
