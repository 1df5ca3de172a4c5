"""Benchmark: our policy server vs openpi's reference server, same client, same payloads.

Usage::

    ./scripts/install_openpi_client.sh            # once (scripts/install.sh does it)
    .venv/bin/python benchmarks/policy_server.py  # ~3.5 min on 2 cores
    .venv/bin/python benchmarks/policy_server.py --requests 500 --duration 10   # quick look

In one invocation, on loopback:

* **servers**: ours (:class:`hvla_platform.lib.serving.server.PolicyServer`, inference log on, as in
  production) in the platform's venv, and the reference — PyPI ``openpi-server==0.1.0``
  (openpi's ``WebsocketPolicyServer``) in the openpi-client venv (numpy < 2, as openpi-client
  pins) — both wrapping the same trivial policy (``policy_server_parts/trivial_policy.py``:
  constant (10, 14) float32 chunk). The latency part also runs ``reference-np2``: the same
  reference code with the platform's interpreter and numpy 2 (ignoring that pin), so that the
  server code can be compared apart from the numpy version.
* **client**: openpi-client 0.1.2's ``WebsocketClientPolicy`` (``policy_server_parts/client_load.py``)
  for both, in separate processes.
* **latency**: one client, back-to-back requests (after a warm-up), payload of 1 and of 3 cameras
  at 224×224×3 uint8 + a (32,) float32 state + a prompt. Both servers run side by side; rounds
  alternate between them (reference first in even rounds, ours first in odd ones) so a slow phase
  of the machine does not land on one side only. Prints the medians over the rounds of p50/p99
  round trip and protocol overhead (round trip − the server's own ``infer_ms``), the server
  process's CPU time per request (``/proc/<pid>/stat``, summed over all rounds: steadier than
  wall-clock percentiles on a shared 2-core machine), and the ratios ours / reference.
  Target: our overhead ≤ the reference's (p50 ratio ≤ 1).
* **load**: 8 client processes at 50 Hz each for ``--duration`` seconds (60 by default), 1 camera,
  against each server: requests, errors, p50/p99 round trip. Target for ours: no errors, p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PARTS = Path(__file__).resolve().parent / "policy_server_parts"
OPENPI_PY = Path(os.environ.get("HVLA_OPENPI_VENV", REPO / ".venv-openpi")) / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openpi_packages(tmp: Path) -> Path:
    """A folder holding only the installed ``openpi_server`` and ``openpi_client`` packages (copied
    from the openpi venv at run time), to run the reference server's code in the platform's venv."""
    site = next((OPENPI_PY.parent.parent / "lib").glob("python3*/site-packages"))
    out = tmp / "openpi-packages"
    for pkg in ("openpi_server", "openpi_client"):
        shutil.copytree(site / pkg, out / pkg)
    return out


def start(kind: str, log_dir: Path, openpi_pkgs: Path | None = None) -> tuple[subprocess.Popen, int]:
    """Start one server process and wait until ``/healthz`` answers.

    ``kind``: ``ours``; ``reference`` (openpi-server in its own venv, numpy < 2 as openpi-client
    pins); ``reference-np2`` (the same reference code run by the platform's interpreter and numpy 2,
    ignoring that pin: separates the server code from the environment)."""
    port = free_port()
    env = None
    if kind == "ours":
        cmd = [sys.executable, str(PARTS / "ours_server.py"), str(port), str(log_dir)]
    elif kind == "reference":
        cmd = [str(OPENPI_PY), str(PARTS / "reference_server.py"), str(port)]
    else:
        cmd = [sys.executable, str(PARTS / "reference_server.py"), str(port)]
        env = {**os.environ, "PYTHONPATH": str(openpi_pkgs)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited: {proc.stderr.read()}")
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, seconds (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client(port: int, cameras: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen([str(OPENPI_PY), str(PARTS / "client_load.py"), str(port), str(cameras), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(procs: list[subprocess.Popen]) -> dict:
    rtt, infer, errors, size = [], [], 0, 0
    for p in procs:
        out, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"client failed: {err[-2000:]}")
        r = json.loads(out.strip().splitlines()[-1])
        rtt += r["rtt_ms"]
        infer += r["infer_ms"]
        errors += r["errors"]
        size = r["request_bytes"]
    rtt_a, over = np.asarray(rtt), np.asarray(rtt) - np.asarray(infer)
    return {"n": len(rtt), "errors": errors, "request_bytes": size,
            "rtt_p50": float(np.percentile(rtt_a, 50)), "rtt_p99": float(np.percentile(rtt_a, 99)),
            "over_p50": float(np.percentile(over, 50)), "over_p99": float(np.percentile(over, 99))}


def run_phase(kind: str, log_dir: Path, fn) -> dict:
    proc, port = start(kind, log_dir)
    try:
        return fn(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500, help="back-to-back requests per latency round")
    ap.add_argument("--rounds", type=int, default=16, help="alternating latency rounds per server and payload")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of the 8-client load run")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second per client")
    args = ap.parse_args()
    if not OPENPI_PY.exists():
        print(f"{OPENPI_PY} missing: run ./scripts/install_openpi_client.sh first", file=sys.stderr)
        return 2
    print(f"policy server benchmark: {os.cpu_count()} CPUs; client openpi-client 0.1.2; reference openpi-server 0.1.0")
    ok = True
    with tempfile.TemporaryDirectory(prefix="hvla-bench-serve-") as tmp:
        log_dir = Path(tmp) / "inference-log"
        print(f"\nlatency, 1 client, {args.rounds} alternating rounds × {args.requests} back-to-back requests "
              "per server (ms; medians over the rounds)")
        print(f"{'payload':<12}{'server':<14}{'bytes':>9}{'rtt p50':>9}{'rtt p99':>9}{'ovh p50':>9}{'ovh p99':>9}"
              f"{'cpu µs/req':>11}")
        kinds = ("reference", "reference-np2", "ours")
        pkgs = openpi_packages(Path(tmp))
        servers = {kind: start(kind, log_dir, pkgs) for kind in kinds}
        try:
            for cams in (1, 3):
                rounds: dict[str, list[dict]] = {k: [] for k in kinds}
                cpu = {k: 0.0 for k in kinds}
                for i in range(args.rounds):  # rotate the order each round
                    for kind in kinds[i % 3:] + kinds[:i % 3]:
                        proc, port = servers[kind]
                        c0 = cpu_seconds(proc.pid)
                        rounds[kind].append(collect([client(port, cams, "--requests", str(args.requests),
                                                            "--warmup", "20")]))
                        cpu[kind] += cpu_seconds(proc.pid) - c0
                res = {k: {m: float(np.median([r[m] for r in v])) for m in v[0]} for k, v in rounds.items()}
                for kind in kinds:
                    r = res[kind]
                    us = cpu[kind] / (args.rounds * (args.requests + 20)) * 1e6
                    print(f"{cams} camera{'s' if cams > 1 else ' '}   {kind:<14}{int(r['request_bytes']):>9}"
                          f"{r['rtt_p50']:>9.3f}{r['rtt_p99']:>9.3f}{r['over_p50']:>9.3f}{r['over_p99']:>9.3f}"
                          f"{us:>11.1f}")
                for ref in ("reference", "reference-np2"):
                    q50 = res["ours"]["over_p50"] / res[ref]["over_p50"]
                    q99 = res["ours"]["over_p99"] / res[ref]["over_p99"]
                    qcpu = cpu["ours"] / cpu[ref]
                    if ref == "reference":
                        ok &= q50 <= 1.0
                    print(f"{'':<12}ours/{ref:<14} overhead p50 {q50:.3f}, p99 {q99:.3f}, round trip p50 "
                          f"{res['ours']['rtt_p50'] / res[ref]['rtt_p50']:.3f}, server CPU/request {qcpu:.3f}"
                          f"  ({'meets' if q50 <= 1.0 else 'MISSES'} target: overhead p50 ratio <= 1)")
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)

        print(f"\nload: {args.clients} clients × {args.rate:g} Hz × {args.duration:g} s, 1 camera 224×224 (ms)")
        for kind in ("reference", "ours"):
            r = run_phase(kind, log_dir, lambda port: collect([
                client(port, 1, "--rate", str(args.rate), "--duration", str(args.duration), "--warmup", "5")
                for _ in range(args.clients)]))
            expected = int(args.clients * args.rate * args.duration)
            line = (f"{kind:<11} requests {r['n']:>6} / {expected} scheduled, errors {r['errors']}, "
                    f"rtt p50 {r['rtt_p50']:.2f}, p99 {r['rtt_p99']:.2f}")
            if kind == "ours":
                meets = r["errors"] == 0 and r["rtt_p99"] < 20.0 and r["n"] >= 0.95 * expected
                ok &= meets
                line += f"  ({'meets' if meets else 'MISSES'} target: 0 errors, p99 < 20 ms, >= 95% of schedule)"
            print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
