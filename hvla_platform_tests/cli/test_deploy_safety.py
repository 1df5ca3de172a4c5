"""`hvla deploy`'s safety bounds against a real `hvla serve` subprocess: the emergency stop acts
within 100 ms while the server hangs (SIGSTOP), a slow server is a fault at the query deadline,
a stop file present at start is logged, and the action guard escalates to a fault.

One server for the module (started once, ~3 s); every test that stops it resumes it in a finally.
"""

import json
import os
import signal
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from websockets.sync.server import serve

from hvla_platform.lib.serving import wire
from hvla_platform.lib.serving.client import PolicyClient, QueryTimeout, ServerError
from hvla_platform.lib.serving.control_loop import StoppedWhileWaiting, bounded_query, fault_cause
from hvla_platform.lib.serving.safety import ClippedStreak, EmergencyStop, GuardFault
from hvla_platform_tests.cli.test_serving_cli import HVLA, lines, start_server

ESTOP_BOUND_S = 0.1  # docs/serving.md: the stop acts within 100 ms while waiting for the policy
EXIT_WITHIN_S = 10.0  # wall clock to the process exit (~1.4 s measured), generous for a loaded CI


@pytest.fixture(scope="module")
def served(step_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("deploy-safety")
    env = {**os.environ, "HVLA_HOME": str(root / "home"), "HVLA_API_KEY": "robot-key-1"}
    env.pop("HVLA_LAKE_ROOT", None)
    port, proc = start_server(step_dir, env, root / "serving")
    yield port, proc, env
    proc.send_signal(signal.SIGCONT)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def start_deploy(port: int, env: dict, log: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(HVLA + ["deploy", "--port", str(port), "--safety-log", str(log), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_running(proc: subprocess.Popen, log: Path) -> None:
    """Until the robot has started its first trial (the safety log's ``running`` line)."""
    deadline = time.monotonic() + 120
    while not log.exists() or '"running"' not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)


def deploy_against_hung_server(server: subprocess.Popen, deploy: subprocess.Popen, log: Path,
                               then=lambda: None) -> tuple[str, str, float, float]:
    """SIGSTOP the server once the robot runs, give the robot time to be waiting on a query, call
    ``then()``, and wait at most :data:`EXIT_WITHIN_S` for the deploy to end (the server is resumed
    and a deploy still running killed afterwards).

    Returns (stdout, stderr, time before ``then``, exit time)."""
    try:
        wait_running(deploy, log)
        time.sleep(0.3)
        server.send_signal(signal.SIGSTOP)
        time.sleep(1.0)  # one chunk of 5 actions takes ~0.4 s to execute: the next query is now pending
        t_then = time.time()
        then()
        out, err = deploy.communicate(timeout=EXIT_WITHIN_S)  # today: a blind wait up to the 60 s timeout
        return out, err, t_then, time.time()
    finally:
        server.send_signal(signal.SIGCONT)
        if deploy.poll() is None:
            deploy.kill()
            deploy.communicate()


def test_estop_acts_within_the_bound_while_the_server_hangs(served, tmp_path):
    port, server, env = served
    log, stop_file = tmp_path / "safety.jsonl", tmp_path / "ESTOP"
    deploy = start_deploy(port, env, log, "--estop-file", str(stop_file), "--query-timeout", "60",
                          "--episodes", "2", "--max-steps", "400")

    def press_stop() -> None:
        assert deploy.poll() is None, deploy.communicate()  # still waiting for the hung server
        stop_file.touch()

    out, err, t_touch, t_exit = deploy_against_hung_server(server, deploy, log, then=press_stop)
    assert deploy.returncode == 3, out + err
    assert t_exit - t_touch < EXIT_WITHIN_S
    safety = lines(log)
    estop = [ln for ln in safety if ln["event"] == "estop"]
    assert len(estop) == 1, safety
    assert estop[0]["during"] == "waiting_for_policy" and estop[0]["source"] == "file"
    assert estop[0]["reason"] == f"stop file {stop_file} present"
    assert 0 <= estop[0]["latency_s"] <= ESTOP_BOUND_S, estop[0]
    # independent of the recorded latency: the line was written soon after the touch (wall clock)
    assert datetime.fromisoformat(estop[0]["t"]).timestamp() - t_touch < 0.5
    assert [ln["reason"] for ln in safety if ln["event"] == "stop"] == ["estop"]
    assert not [ln for ln in safety if ln["event"] == "mode" and ln["mode"] == "fault"]
    assert f"hvla deploy: emergency stop: stop file {stop_file} present; safe stop commanded" in err
    assert "Traceback" not in out + err


def test_a_hung_server_is_a_fault_at_the_default_query_deadline(served, tmp_path):
    port, server, env = served
    log = tmp_path / "safety.jsonl"
    deploy = start_deploy(port, env, log, "--episodes", "2", "--max-steps", "400")
    out, err, _, _ = deploy_against_hung_server(server, deploy, log)
    assert deploy.returncode == 4, out + err
    # default deadline max(0.5 s, 10 actions / 20 Hz) = 0.5 s
    assert "query deadline 0.5 s (max(0.5 s, 10 actions / 20 Hz))" in out
    last = err.strip().splitlines()[-1]
    assert last == "hvla deploy: fault: policy server did not answer within 0.5 s", err
    assert "Traceback" not in out + err
    faults = [ln for ln in lines(log) if ln["event"] == "mode" and ln["mode"] == "fault"]
    assert len(faults) == 1 and faults[0]["cause"] == "policy server did not answer within 0.5 s"


def test_stop_file_present_at_start_is_logged_and_said(served, tmp_path):
    port, _, env = served
    log, stop_file = tmp_path / "safety.jsonl", tmp_path / "ESTOP"
    stop_file.touch()
    p = subprocess.run(HVLA + ["deploy", "--port", str(port), "--safety-log", str(log),
                               "--estop-file", str(stop_file)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 3, p.stdout + p.stderr
    assert p.stderr.splitlines() == [f"hvla deploy: emergency stop at start (stop file {stop_file} present); "
                                     "no command sent"]
    safety = lines(log)
    assert [ln["event"] for ln in safety] == ["estop", "mode"]
    assert safety[0]["during"] == "before_start" and safety[0]["source"] == "file"
    assert safety[0]["reason"] == f"stop file {stop_file} present" and safety[0]["latency_s"] < ESTOP_BOUND_S


def test_consecutive_clipped_commands_escalate_to_a_fault(served, tmp_path):
    """A speed limit the policy cannot meet clips every command: the 10th in a row stops the robot."""
    port, _, env = served
    log = tmp_path / "safety.jsonl"
    p = subprocess.run(HVLA + ["deploy", "--port", str(port), "--safety-log", str(log), "--max-steps", "40",
                               "--max-step-rad", "0.00001", "--result-json", str(tmp_path / "r.json"),
                               # the clip guard's fault, not the deadline's on a machine busy with the other worker
                               "--query-timeout", "30"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 4, p.stdout + p.stderr  # today: 40 of 40 clipped, exit 0
    safety = lines(log)
    limits = [ln for ln in safety if ln["event"] == "limit"]
    assert [ln["step"] for ln in limits] == list(range(10))
    joints = list(dict.fromkeys(j for ln in limits for j in ln["joints"]))
    cause = f"the action guard clipped 10 consecutive commands (joints: {', '.join(joints)})"
    assert p.stderr.splitlines()[-1] == f"hvla deploy: fault: {cause}"
    assert [ln["cause"] for ln in safety if ln["event"] == "mode" and ln["mode"] == "fault"] == [cause]
    trial = json.loads((tmp_path / "r.json").read_text())["per_trial"][0]
    assert trial["steps"] == 9 and trial["clipped_steps"] == 10 and trial["stop_reason"] == "fault"


def test_bounded_query_returns_stops_or_times_out():
    """In-process: the wait for a reply ends on the reply, on the stop (within ms) or at the deadline."""
    assert bounded_query(lambda o: {"actions": o}, 1, timeout_s=1.0, estop=None) == {"actions": 1}
    with pytest.raises(ZeroDivisionError):
        bounded_query(lambda o: 1 / 0, 1, timeout_s=1.0, estop=EmergencyStop())
    hang = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"^policy server did not answer within 0.2 s$"):
        bounded_query(lambda o: hang.wait(30), 1, timeout_s=0.2, estop=None)
    assert 0.2 <= time.monotonic() - t0 < 1.0
    estop = EmergencyStop()
    timer = threading.Timer(0.1, estop.trigger, args=("operator",))
    timer.start()
    with pytest.raises(StoppedWhileWaiting):
        bounded_query(lambda o: hang.wait(30), 1, timeout_s=None, estop=estop)
    assert estop.source == "code" and estop.latency_s() < ESTOP_BOUND_S
    hang.set()


def test_stop_file_watcher_and_clipped_streak(tmp_path):
    stop = EmergencyStop(tmp_path / "ESTOP", poll_s=0.01)
    stop.start_watching()
    try:
        (tmp_path / "ESTOP").touch()
        assert stop.wait(1.0) and stop.source == "file" and stop.latency_s() < ESTOP_BOUND_S
    finally:
        stop.stop_watching()
    streak = ClippedStreak(3)
    streak.update(["a"])
    streak.update(None)  # an unclipped command resets the count
    streak.update(["a"])
    streak.update(["b"])
    with pytest.raises(GuardFault, match=r"clipped 3 consecutive commands \(joints: a, b\)"):
        streak.update(["a"])
    with pytest.raises(ValueError, match=">= 1"):
        ClippedStreak(0)


def test_a_connection_the_server_closes_is_a_fault_with_its_close_code():
    """A server that closes with 1011 instead of answering: the fault's cause names the code and reason."""
    def handler(ws):
        ws.send(wire.pack({"action_horizon": 10}))
        ws.recv()
        ws.close(1011, "policy crashed")

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with PolicyClient("127.0.0.1", server.socket.getsockname()[1], recv_timeout_s=5) as client:
            with pytest.raises(ServerError) as exc:
                client.infer({"prompt": "x"})
        server.shutdown()
    assert fault_cause(exc.value) == "connection closed by the server (code 1011: policy crashed)"


def test_default_query_deadline_formula():
    from hvla_platform.cli.serving import QUERY_FLOOR_NOTE
    from hvla_platform.lib.serving.robot import QUERY_DEADLINE_FLOOR_S, query_deadline_s

    assert query_deadline_s(10, 20.0) == 0.5  # the demo checkpoint at 20 Hz
    assert query_deadline_s(50, 50.0) == 1.0  # a whole chunk's duration
    assert query_deadline_s(1, 50.0) == QUERY_DEADLINE_FLOOR_S == 0.5  # floored
    assert QUERY_FLOOR_NOTE == f"{QUERY_DEADLINE_FLOOR_S:g} s"  # what --help says
    with pytest.raises(ValueError, match="control_hz > 0"):
        query_deadline_s(10, 0.0)
