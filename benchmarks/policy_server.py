"""Benchmark: our policy server vs openpi's reference server, same client, same payloads.

Usage::

    ./scripts/install_openpi_client.sh            # once (scripts/install.sh does it)
    .venv/bin/python benchmarks/policy_server.py  # ~5 min on 2 cores
    .venv/bin/python benchmarks/policy_server.py --requests 300 --rounds 4 --duration 10   # quick look

``run(...)`` returns the numbers as a dict (for ``benchmarks/scale.py``).

In one invocation, on loopback:

* **servers**: ours (:class:`hvla_platform.lib.serving.server.PolicyServer`, inference log on, as in
  production, started with ``serve_forever()`` as ``hvla serve`` does, which keeps freed message
  buffers mapped: ``lib/serving/allocator.py``) in the platform's venv, and the reference — PyPI
  ``openpi-server==0.1.0`` (openpi's ``WebsocketPolicyServer``) in the openpi-client venv (numpy
  < 2, as openpi-client pins) — both wrapping the same trivial policy
  (``policy_server_parts/trivial_policy.py``: constant (10, 14) float32 chunk). The latency part
  also runs ``reference-np2``: the same reference code with the platform's interpreter and numpy 2
  (ignoring that pin), so that the server code can be compared apart from the numpy version, and
  ``ours-untuned``: ours with ``serve_forever(keep_heap=False)`` (glibc's default allocator
  settings, as the reference runs), so that the server code can be compared apart from the
  allocator tuning.
* **client**: openpi-client 0.1.2's ``WebsocketClientPolicy`` (``policy_server_parts/client_load.py``)
  for both, in separate processes.
* **latency**: one client, back-to-back requests (after a warm-up), payload of 1 and of 3 cameras
  at 224×224×3 uint8 + a (32,) float32 state + a prompt. All servers run side by side; the order
  rotates every round so a slow phase of the machine does not land on one side only. Prints the
  medians over the rounds of p50/p99 round trip and protocol overhead (round trip − the server's
  own ``infer_ms``), the server process's CPU time per request (``/proc/<pid>/stat`` utime +
  stime, summed over all rounds: steadier than wall-clock percentiles on a shared 2-core machine)
  and its minor page faults per request, and the ratios ours / reference. Target: our overhead ≤
  the reference's on both payloads (overhead p50 ratio ≤ 1 and server CPU per request ratio ≤ 1;
  the CPU ratio is the steadier of the two).
* **load**: 8 client processes at 50 Hz each for ``--duration`` seconds (60 by default), 1 camera,
  against each server: requests, errors, p50/p99 round trip. Target for ours: no errors, p99 < 20 ms.
* **abuse** (issue 15, ours only, default limits, started as ``hvla serve`` starts it): the robot —
  one openpi client, 1 camera, 50 Hz — alone for ``--abuse-duration`` seconds, then as long again
  while a second client sends the worst-case messages at the 16 MiB cap in turn (the decode bomb of
  16.7 M empty maps, 1,000 lists of 16,384 empty maps, a valid observation padded to the cap) and a
  third sends cap-sized observations and never reads a reply (``policy_server_parts/abuse_client.py``).
  Prints the robot's p50/p99 round trip in both phases against the 20 ms target, how fast the
  worst-case messages were answered, and the server's RSS growth (the largest ``VmRSS`` sampled
  every 20 ms during the abuse − the one before it) against 2 × the message cap.
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
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

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

    ``kind``: ``ours``; ``ours-untuned`` (``serve_forever(keep_heap=False)``); ``reference`` (openpi-server in its own venv, numpy < 2 as openpi-client
    pins); ``reference-np2`` (the same reference code run by the platform's interpreter and numpy 2,
    ignoring that pin: separates the server code from the environment)."""
    port = free_port()
    env = None
    if kind in ("ours", "ours-untuned"):
        cmd = [sys.executable, str(PARTS / "ours_server.py"), str(port), str(log_dir / kind)]
        if kind == "ours-untuned":
            cmd.append("--no-keep-heap")
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


def usage(pid: int) -> tuple[float, int]:
    """(user + system CPU seconds, minor page faults) of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[7])


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


KINDS = ("reference", "reference-np2", "ours-untuned", "ours")


def latency(cams: int, servers: dict, requests: int, rounds: int, log: Callable[[str], None]) -> dict:
    """Alternating back-to-back rounds of one client against each server; logs a row per server and
    the ratios. Returns ``{kind: {rtt_p50, rtt_p99, over_p50, over_p99 (ms), cpu_us_per_request,
    faults_per_request, ...}, "ratios": {"ours/reference": {overhead_p50, overhead_p99, rtt_p50,
    cpu}, ...}}``."""
    kinds = tuple(servers)
    rows: dict[str, list[dict]] = {k: [] for k in kinds}
    cpu = {k: 0.0 for k in kinds}
    faults = {k: 0 for k in kinds}
    for i in range(rounds):  # rotate the order each round
        for kind in kinds[i % len(kinds):] + kinds[:i % len(kinds)]:
            proc, port = servers[kind]
            c0, f0 = usage(proc.pid)
            rows[kind].append(collect([client(port, cams, "--requests", str(requests), "--warmup", "20")]))
            c1, f1 = usage(proc.pid)
            cpu[kind] += c1 - c0
            faults[kind] += f1 - f0
    n = rounds * (requests + 20)
    res: dict = {k: {m: float(np.median([r[m] for r in v])) for m in v[0]} for k, v in rows.items()}
    for kind in kinds:
        r = res[kind]
        r["cpu_us_per_request"] = cpu[kind] / n * 1e6
        r["faults_per_request"] = faults[kind] / n
        log(f"{cams} camera{'s' if cams > 1 else ' '}   {kind:<14}{int(r['request_bytes']):>9}{r['rtt_p50']:>9.3f}"
            f"{r['rtt_p99']:>9.3f}{r['over_p50']:>9.3f}{r['over_p99']:>9.3f}{r['cpu_us_per_request']:>11.1f}"
            f"{r['faults_per_request']:>9.1f}")
    res["ratios"] = {}
    for ours in ("ours", "ours-untuned"):
        for ref in ("reference", "reference-np2"):
            q = {"overhead_p50": res[ours]["over_p50"] / res[ref]["over_p50"],
                 "overhead_p99": res[ours]["over_p99"] / res[ref]["over_p99"],
                 "rtt_p50": res[ours]["rtt_p50"] / res[ref]["rtt_p50"],
                 "cpu": cpu[ours] / cpu[ref]}
            res["ratios"][f"{ours}/{ref}"] = q
            line = (f"{'':<12}{ours + '/' + ref:<27} overhead p50 {q['overhead_p50']:.3f}, p99 {q['overhead_p99']:.3f}, "
                    f"round trip p50 {q['rtt_p50']:.3f}, server CPU/request {q['cpu']:.3f}")
            if (ours, ref) == ("ours", "reference"):
                meets = q["overhead_p50"] <= 1.0 and q["cpu"] <= 1.0
                line += f"  ({'meets' if meets else 'MISSES'} target: overhead p50 and CPU/request ratios <= 1)"
            log(line)
    return res


def rss(pid: int) -> int:
    """A process's resident set size, bytes (``/proc/<pid>/status`` VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def abuser(port: int, kind: str, duration: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(PARTS / "abuse_client.py"), str(port), kind, str(duration)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def abuse(duration: float, log_dir: Path, log: Callable[[str], None], cap_mib: int = 16) -> dict:
    """The robot's latency alone and under abuse, and the server's RSS growth (module docstring).

    Returns:
        ``{"alone": collect()'s dict, "abused": collect()'s dict, "worst": abuse_client's JSON,
        "noread": abuse_client's JSON, "rss_growth_mib": float, "cap_mib": int, "meets": bool}``.
    """
    proc, port = start("ours", log_dir)
    try:
        robot = lambda: client(port, 1, "--rate", "50", "--duration", str(duration), "--warmup", "5")  # noqa: E731
        alone = collect([robot()])
        base = rss(proc.pid)
        peak, sampling = [base], [True]

        def sample() -> None:
            while sampling[0]:
                peak[0] = max(peak[0], rss(proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        bad = [abuser(port, "worst", duration + 2), abuser(port, "noread", duration + 2)]
        abused = collect([robot()])
        outs = []
        for p in bad:
            try:
                out, err = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"abusive client failed: {err[-2000:]}")
            outs.append(json.loads(out.strip().splitlines()[-1]))
        sampling[0] = False
        sampler.join(5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    growth = (peak[0] - base) / 2 ** 20
    worst, noread = outs
    meets_latency = abused["rtt_p99"] < 20.0 and abused["errors"] == 0
    meets_rss = growth < 2 * cap_mib
    log(f"robot alone          requests {alone['n']:>5}, errors {alone['errors']}, rtt p50 {alone['rtt_p50']:.2f}, "
        f"p99 {alone['rtt_p99']:.2f}")
    log(f"robot under abuse    requests {abused['n']:>5}, errors {abused['errors']}, rtt p50 {abused['rtt_p50']:.2f}, "
        f"p99 {abused['rtt_p99']:.2f}  ({'meets' if meets_latency else 'MISSES'} target: p99 < 20 ms, 0 errors)")
    log(f"worst-case client    {worst['sent']} messages at the cap; answered in p50/max ms: "
        + ", ".join(f"{k} {worst['answer_ms_p50'][k] or float('nan'):.1f}/{worst['answer_ms_max'][k] or float('nan'):.1f}"
                    for k in worst["answer_ms_p50"])
        + "; answers: " + "; ".join(f"{k}: {v}" for k, v in worst["answer"].items()))
    log(f"never-reading client {noread['sent']} cap-sized messages taken by the server"
        + (f", then {noread['closed']}" if noread["closed"] else ""))
    log(f"server RSS           +{growth:.1f} MiB during the abuse ({'meets' if meets_rss else 'MISSES'} target: "
        f"< 2 × the {cap_mib} MiB message cap = {2 * cap_mib} MiB)")
    return {"alone": alone, "abused": abused, "worst": worst, "noread": noread, "rss_growth_mib": growth,
            "cap_mib": cap_mib, "meets": meets_latency and meets_rss}


def run(*, requests: int = 500, rounds: int = 16, duration: float = 60.0, clients: int = 8, rate: float = 50.0,
        payloads: tuple[int, ...] = (1, 3), load: bool = True, latency_part: bool = True,
        abuse_duration: float = 20.0, log: Callable[[str], None] = print) -> dict:
    """Run the benchmark (see the module docstring), logging the table through ``log``.

    Args:
        requests, rounds: back-to-back requests per latency round; rounds per server and payload.
        duration, clients, rate: the load part (seconds, client processes, requests/s each).
        payloads: cameras per observation, one latency run each.
        load: run the load part. latency_part: run the latency part.
        abuse_duration: seconds of each abuse phase (0: skip the abuse part).

    Returns:
        ``{"latency": {cameras: latency()'s dict}, "load": {"reference"|"ours": {n, errors,
        rtt_p50, rtt_p99, ..., expected}}, "abuse": abuse()'s dict, "meets": bool}``; ``meets``: on
        every payload the ours/reference overhead p50 and CPU-per-request ratios are ≤ 1, and (when
        run) the load and abuse targets hold.

    Raises:
        FileNotFoundError: the openpi venv is missing (``./scripts/install_openpi_client.sh``).
        RuntimeError: a server did not start or a client failed.
    """
    if not OPENPI_PY.exists():
        raise FileNotFoundError(f"{OPENPI_PY} missing: run ./scripts/install_openpi_client.sh first")
    log(f"policy server benchmark: {os.cpu_count()} CPUs; client openpi-client 0.1.2; reference openpi-server 0.1.0")
    out: dict = {"latency": {}, "load": {}}
    ok = True
    with tempfile.TemporaryDirectory(prefix="hvla-bench-serve-") as tmp:
        log_dir = Path(tmp) / "inference-log"
        if abuse_duration > 0:
            log(f"\nabuse: the robot (openpi client, 1 camera, 50 Hz) alone for {abuse_duration:g} s, then as long "
                "with a worst-case-message client and a never-reading client (ms)")
            out["abuse"] = abuse(abuse_duration, log_dir, log)
            ok &= out["abuse"]["meets"]
        if not latency_part:
            payloads = ()
        log(f"\nlatency, 1 client, {rounds} rotating rounds × {requests} back-to-back requests per server "
            "(ms: medians over the rounds; CPU µs and minor page faults of the server process per request)")
        log(f"{'payload':<12}{'server':<14}{'bytes':>9}{'rtt p50':>9}{'rtt p99':>9}{'ovh p50':>9}{'ovh p99':>9}"
            f"{'cpu µs/req':>11}{'flt/req':>9}")
        pkgs = openpi_packages(Path(tmp))
        servers = {}
        try:
            for kind in (KINDS if payloads else ()):
                servers[kind] = start(kind, log_dir, pkgs)
            for cams in payloads:
                res = latency(cams, servers, requests, rounds, log)
                q = res["ratios"]["ours/reference"]
                ok &= q["overhead_p50"] <= 1.0 and q["cpu"] <= 1.0
                out["latency"][cams] = res
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(timeout=30)

        if load:
            log(f"\nload: {clients} clients × {rate:g} Hz × {duration:g} s, 1 camera 224×224 (ms)")
            for kind in ("reference", "ours"):
                r = run_phase(kind, log_dir, lambda port: collect([
                    client(port, 1, "--rate", str(rate), "--duration", str(duration), "--warmup", "5")
                    for _ in range(clients)]))
                r["expected"] = expected = int(clients * rate * duration)
                line = (f"{kind:<11} requests {r['n']:>6} / {expected} scheduled, errors {r['errors']}, "
                        f"rtt p50 {r['rtt_p50']:.2f}, p99 {r['rtt_p99']:.2f}")
                if kind == "ours":
                    meets = r["errors"] == 0 and r["rtt_p99"] < 20.0 and r["n"] >= 0.95 * expected
                    ok &= meets
                    line += f"  ({'meets' if meets else 'MISSES'} target: 0 errors, p99 < 20 ms, >= 95% of schedule)"
                log(line)
                out["load"][kind] = r
    out["meets"] = bool(ok)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=500, help="back-to-back requests per latency round")
    ap.add_argument("--rounds", type=int, default=16, help="rotating latency rounds per server and payload")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of the 8-client load run")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second per client")
    ap.add_argument("--payloads", type=int, nargs="+", default=[1, 3], help="cameras per observation, one run each")
    ap.add_argument("--no-load", action="store_true", help="skip the load part")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency part")
    ap.add_argument("--abuse-duration", type=float, default=20.0,
                    help="seconds of each abuse phase (robot alone, robot under abuse); 0 skips it")
    args = ap.parse_args()
    try:
        res = run(requests=args.requests, rounds=args.rounds, duration=args.duration, clients=args.clients,
                  rate=args.rate, payloads=tuple(args.payloads), load=not args.no_load,
                  latency_part=not args.no_latency, abuse_duration=args.abuse_duration)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0 if res["meets"] else 1


if __name__ == "__main__":
    sys.exit(main())
