"""`hvla serve` + `hvla deploy` as separate processes: the simulated G1 driven closed loop by a served
checkpoint, the emergency stop by signal and by file, refusals, API key, both logs."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hvla_platform.cli.main import main
from hvla_platform_tests.fixtures.checkpoints import lake_root_of

HVLA = [sys.executable, "-m", "hvla_platform.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture()
def env(tmp_path, step_dir):
    """A fresh HVLA home whose configured lake is the one the served checkpoint is committed in."""
    return {**os.environ, "HVLA_HOME": str(tmp_path / "home"), "HVLA_API_KEY": "robot-key-1",
            "HVLA_LAKE_ROOT": str(lake_root_of(step_dir))}


def start_server(step_dir: Path, env: dict, log_dir: Path, *extra: str) -> tuple[int, subprocess.Popen]:
    """`hvla serve` of ``step_dir`` (and ``extra`` arguments) on a free port, once its /healthz answers:
    (port, process). The configured lake is ``env``'s ``HVLA_LAKE_ROOT``, else the one ``step_dir`` is
    committed in."""
    port = free_port()
    env = {"HVLA_LAKE_ROOT": str(lake_root_of(step_dir)), **env}
    proc = subprocess.Popen(HVLA + ["serve", "--checkpoint", str(step_dir), "--port", str(port),
                                    "--log-dir", str(log_dir), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                if r.status == 200:
                    return port, proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"hvla serve did not come up:\n{proc.stdout.read()}")
        time.sleep(0.3)


@pytest.fixture()
def server(step_dir, env, tmp_path):
    port, proc = start_server(step_dir, env, tmp_path / "serving")
    yield port, proc
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0 and "server stopped" in out, out


#: The query deadline of deploys whose subject is not the deadline: a 2-core machine busy with the
#: other test worker can take more than the robot's default 0.5 s to answer one query, which is a
#: correct fault, but not the one these tests are about (test_deploy_safety tests the default).
SLOW_MACHINE_DEADLINE = ["--query-timeout", "30"]


def deploy(port, env, tmp_path, *extra, name="run"):
    return subprocess.run(HVLA + ["deploy", "--port", str(port), "--safety-log", str(tmp_path / f"{name}.jsonl"),
                                  "--result-json", str(tmp_path / f"{name}.json"), *SLOW_MACHINE_DEADLINE, *extra],
                          env=env, capture_output=True, text=True, timeout=300)


def lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def test_serve_and_deploy_closed_loop(server, env, tmp_path):
    port, _ = server
    p = deploy(port, env, tmp_path, "--episodes", "1", "--max-steps", "12", "--replan-every", "4")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "connected: checkpoint checkpoints/hvla_serve_test/serve/5 (serving use lab_robot)" in p.stdout
    res = json.loads((tmp_path / "run.json").read_text())
    trial = res["per_trial"][0]
    assert trial["stop_reason"] in ("success", "timeout") and trial["queries"] == -(-trial["steps"] // 4)
    assert res["timing"]["infer_ms_p50"] > 0
    safety = lines(tmp_path / "run.jsonl")
    assert [ln["mode"] for ln in safety if ln["event"] == "mode"] == ["connecting", "ready", "running", "stopped"]
    # the server's inference log holds one line per query, no observations
    log_file = next((tmp_path / "serving").glob("inference-*.jsonl"))
    deadline = time.monotonic() + 10  # the server logs the connection's close asynchronously
    while '"event": "close"' not in log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    inference = lines(log_file)
    reqs = [ln for ln in inference if ln["event"] == "request"]
    assert len(reqs) == trial["queries"] and all(r["action_shape"] == [10, 14] for r in reqs)
    assert not (tmp_path / "serving" / "samples").exists()


def test_deploy_emergency_stop_by_signal_and_by_file(server, env, tmp_path):
    port, _ = server
    proc = subprocess.Popen(HVLA + ["deploy", "--port", str(port), "--episodes", "3", "--max-steps", "400",
                                    "--safety-log", str(tmp_path / "sig.jsonl"), *SLOW_MACHINE_DEADLINE],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "sig.jsonl").exists() or '"running"' not in (tmp_path / "sig.jsonl").read_text():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)  # Ctrl-C on the robot: stop, do not die mid-command
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 3, out
    safety = lines(tmp_path / "sig.jsonl")
    estop = [ln for ln in safety if ln["event"] == "mode" and ln["mode"] == "estop"]
    assert len(estop) == 1 and estop[0]["reason"] == "signal SIGINT"
    acted = [ln for ln in safety if ln["event"] == "estop"]
    # mid-command the stop acts once the running control step returns (docs/serving.md): bounded by one step
    assert len(acted) == 1 and acted[0]["source"] == "signal" and 0 <= acted[0]["latency_s"] < 1.0
    assert [ln["reason"] for ln in safety if ln["event"] == "stop"] == ["estop"]

    stop_file = tmp_path / "ESTOP"
    stop_file.touch()
    p = deploy(port, env, tmp_path, "--estop-file", str(stop_file), name="file")
    assert p.returncode == 3, p.stdout + p.stderr
    assert not (tmp_path / "file.json").exists()  # stopped before connecting: no trial, no result
    assert [ln["event"] for ln in lines(tmp_path / "file.jsonl")] == ["estop", "mode"]


def test_deploy_wrong_key_or_no_server_is_a_fault(server, env, tmp_path):
    port, _ = server
    p = deploy(port, {**env, "HVLA_API_KEY": "nope"}, tmp_path, "--connect-timeout", "2", name="key")
    assert p.returncode == 4 and "HTTP 401" in p.stdout, p.stdout
    assert [ln["mode"] for ln in lines(tmp_path / "key.jsonl")] == ["connecting", "fault"]
    p = deploy(free_port(), env, tmp_path, "--connect-timeout", "1", name="none")
    assert p.returncode == 4 and "cannot connect" in p.stdout


def test_serve_refuses_blocked_use_before_binding(step_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HVLA_HOME", str(tmp_path))
    port = free_port()
    assert main(["serve", "--checkpoint", str(step_dir), "--use", "public_api", "--port", str(port)]) == 2
    err = capsys.readouterr().err  # a refusal is one line on stderr
    assert "refused" in err and "may not be served for 'public_api'" in err
    assert "allows serving only for ['lab_robot', 'staging_demo']" in err
    assert not listening(port)
    assert main(["serve", "--checkpoint", str(tmp_path / "nope"), "--port", str(port)]) == 2
    assert "is neither a directory" in capsys.readouterr().err


def test_serve_refuses_open_remote_binding(step_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HVLA_HOME", str(tmp_path))
    monkeypatch.setenv("HVLA_LAKE_ROOT", str(lake_root_of(step_dir)))
    monkeypatch.delenv("HVLA_API_KEY", raising=False)
    assert main(["serve", "--checkpoint", str(step_dir), "--host", "0.0.0.0", "--port", str(free_port())]) == 2
    assert "without an API key" in capsys.readouterr().err


def test_prompts_outside_the_training_tasks_are_warned_about_once_not_refused(step_dir, env, tmp_path):
    """The simulated robot's instructions ("touch the … with the … hand") are not the test
    checkpoint's one training task: both sides serve them, each saying so once per distinct prompt."""
    port = free_port()
    server = subprocess.Popen(HVLA + ["serve", "--checkpoint", str(step_dir), "--port", str(port),
                                      "--log-dir", str(tmp_path / "serving")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not listening(port):
            assert server.poll() is None and time.monotonic() < deadline, server.communicate()
            time.sleep(0.3)
        p = deploy(port, env, tmp_path, "--episodes", "3", "--seed", "2000", "--max-steps", "6", name="ood")
    finally:
        server.send_signal(signal.SIGTERM)
        s_out, s_err = server.communicate(timeout=30)
    assert p.returncode == 0 and server.returncode == 0, p.stdout + p.stderr + s_out + s_err
    tasks = [t["task"] for t in json.loads((tmp_path / "ood.json").read_text())["per_trial"]]
    distinct = list(dict.fromkeys(tasks))
    assert len(tasks) == 3 and 1 <= len(distinct) <= 3
    train_task = "reach the red target with the right hand"
    assert f"trained on 1 task: {train_task}" in p.stdout and f"trained on 1 task: {train_task}" in s_out
    for side, err in (("deploy", p.stderr), ("serve", s_err)):
        warnings = [ln for ln in err.splitlines() if ln.startswith(f"hvla {side}: warning: ")]
        assert warnings == [f"hvla {side}: warning: prompt {t!r} is not among the checkpoint's 1 training task "
                            f"(nearest: {train_task!r}); it is out of distribution and its success is unmeasured"
                            for t in distinct], err
        assert "Traceback" not in err
    safety = [ln for ln in lines(tmp_path / "ood.jsonl") if ln["event"] == "prompt_warning"]
    inference = [ln for ln in lines(next((tmp_path / "serving").glob("inference-*.jsonl")))
                 if ln["event"] == "prompt_warning"]
    assert [ln["prompt"] for ln in safety] == [ln["prompt"] for ln in inference] == distinct
    assert {ln["nearest"] for ln in safety + inference} == {train_task}
