"""``hvla web`` (the lake web service under uvicorn) and ``hvla ui``'s start-up refusal (issue 13 §2):
a real server on a real port, the API-key rule of the policy server, one-line refusals, and a
child of ``hvla ui`` that cannot start leaves nothing running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from hvla_platform.cli.main import main
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.lib.web.test_app import REPORT, REPORT_HTML, VIDEO, write_mp4
from hvla_platform_tests.paths import REPO_ROOT
from hvla_platform_tests.procs import group_members, stop


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory) -> tuple[Path, bytes]:
    tmp = tmp_path_factory.mktemp("web-cli")
    lake = LocalLake(tmp / "lake")
    lake.write_bytes(REPORT, REPORT_HTML)
    mp4 = write_mp4(tmp / "ep.mp4")
    lake.put_file(tmp / "ep.mp4", VIDEO)
    return lake.root, mp4


def _get(url: str, **headers: str) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_hvla_web_serves_the_lake_on_the_network_only_with_the_api_key(lake_dir, tmp_path):
    root, mp4 = lake_dir
    env = {**os.environ, "HVLA_API_KEY": "k3y-for-test", "HVLA_HOME": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "hvla_platform.cli", "web", "--host", "0.0.0.0", "--port", "0",
                             "--lake", str(root)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith(f"serving the lake {root.as_uri()} read-only on http://0.0.0.0:"), (line, proc.stderr)
        assert "API key required" in line
        port = int(line.split("http://0.0.0.0:")[1].split()[0])
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/healthz")[0] == 200
        status, _, body = _get(f"{base}/", Authorization="Bearer k3y-for-test")
        assert status == 200 and b"href='/review/'>review queue</a>" in body  # the review pages are mounted
        status, _, body = _get(f"{base}/lake/{REPORT}")
        assert status == 401 and body.decode().startswith("missing API key")
        status, headers, body = _get(f"{base}/lake/{REPORT}", Authorization="Bearer k3y-for-test")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8" and body == REPORT_HTML
        status, headers, body = _get(f"{base}/lake/{VIDEO}", Authorization="Bearer k3y-for-test", Range="bytes=32-95")
        assert status == 206 and body == mp4[32:96] and headers["content-type"] == "video/mp4"
    finally:
        stop(proc)
    assert proc.returncode is not None


def test_hvla_web_refuses_in_one_line(lake_dir, capsys, monkeypatch):
    root, _ = lake_dir
    monkeypatch.delenv("HVLA_API_KEY", raising=False)
    assert main(["web", "--host", "0.0.0.0", "--lake", str(root)]) == 2
    err = capsys.readouterr().err
    assert err == ("hvla web: refused: refusing to serve the lake on '0.0.0.0' without an API key: anyone on the "
                   "network could read it. Set HVLA_API_KEY (or --api-key-file), or bind to 127.0.0.1.\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["web", "--port", str(port), "--lake", str(root)]) == 2
    assert capsys.readouterr().err == f"hvla web: refused: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert main(["web", "--lake", str(root / "nothing-here")]) == 2
    assert capsys.readouterr().err == f"hvla web: refused: {root / 'nothing-here'}: no lake directory there\n"


def test_hvla_ui_whose_web_service_cannot_start_refuses_and_leaves_nothing_running(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HVLA_WEB_URL", "HVLA_LAKE_ROOT")}
    env["HVLA_HOME"] = str(tmp_path)
    with socket.socket() as taken, socket.socket() as free:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        free.bind(("127.0.0.1", 0))
        web_port, mlflow_port = taken.getsockname()[1], free.getsockname()[1]
        free.close()
        proc = subprocess.Popen([sys.executable, "-m", "hvla_platform.cli", "ui", "--web-port", str(web_port),
                                 "--mlflow-ui-port", str(mlflow_port)], cwd=REPO_ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                stop(proc)
    assert proc.returncode == 2, err
    assert err.splitlines() == [
        f"hvla ui: refused: the lake web service did not start (exit code 2): cannot listen on 127.0.0.1:{web_port}: "
        "Address already in use; nothing was left running"]
    deadline = time.monotonic() + 5
    while (left := group_members(proc.pid, session=True)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], "still running after the refusal: " + "; ".join(
        Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace") for pid in left)
    assert not (tmp_path / "dagster").exists()  # dagster dev was never started
