"""Benchmark: fan-out of the ingest job over many partitions on one machine, with Dagster's own
machinery, against running the same partitions one after the other.

Usage::

    .venv/bin/python benchmarks/fanout.py                          # 6 partitions x 2 episodes
    .venv/bin/python benchmarks/fanout.py --partitions 8 --episodes 3 --duration 6

In ONE invocation, on the same simulated recordings (``hvla sim record``, the default G1 profile,
``--partitions`` robots x one capture day, ``--episodes`` per robot):

* **serial** (the reference): ``hvla ingest DIR --materialize`` in its own ``HVLA_HOME``: every
  partition's ``raw_mcap`` + ``episodes_hdf5`` run executed in process, one partition after the
  other (what the README's main command does);
* **fan-out**: the same recordings landed (``hvla ingest DIR``) into a second ``HVLA_HOME``, then one
  run per partition submitted the way the UI's or a schedule's backfill submits them
  (``dagster job backfill -j ingest_job --partitions ...``) and executed by the Dagster daemon
  (``dagster-daemon run``): the instance's ``QueuedRunCoordinator`` (root ``dagster.yaml``:
  ``max_concurrent_runs: 2``, one run per partition) hands them to the run launcher, which starts
  every run in its own process, each with Dagster's default multiprocess executor.

It prints both wall times, the speedup, the largest number of runs seen in progress at once (from
the runs' start/end times in the instance), CPU seconds per episode of each, and the peak RSS of the
largest process each side started. On Kubernetes the same backfill becomes one pod per partition
(``K8sRunLauncher``, docs/deployment.md); here both cores are the bound, so the expected speedup is
below 2 (the daemon, the code server and Dagster's run start-up take their share).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAY = "2026-11-20"


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "HVLA_LAKE_ROOT")}
    env["HVLA_HOME"] = str(home)
    env["DAGSTER_HOME"] = str(home / "dagster")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    """Run ``cmd`` (output to ``log``) and return its wall time in seconds; raise on failure."""
    t0 = time.perf_counter()
    with log.open("ab") as out:
        res = subprocess.run(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise SystemExit(f"fanout: {' '.join(cmd[:3])} failed with exit {res.returncode}; see {log}")
    return time.perf_counter() - t0


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


_RUNS_SCRIPT = """
import json, dagster as dg
inst = dg.DagsterInstance.get()
out = []
for r in inst.get_runs():
    st = inst.get_run_stats(r.run_id)
    out.append({"status": r.status.value, "partition": r.tags.get("dagster/partition"),
                "start": st.start_time, "end": st.end_time})
print(json.dumps(out))
"""


def _runs(env: dict[str, str]) -> list[dict]:
    res = subprocess.run([str(BIN / "python"), "-c", _RUNS_SCRIPT], cwd=REPO, env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _max_overlap(runs: list[dict]) -> int:
    """The largest number of runs in progress at one instant (from start/end times)."""
    events = sorted([(r["start"], 1) for r in runs if r["start"]] + [(r["end"], -1) for r in runs if r["end"]])
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def run(partitions: int = 6, episodes: int = 2, duration: float = 5.0, work: Path | None = None,
        timeout: float = 1800.0) -> dict:
    """Run both sides on the same recordings and return the measurements.

    Returns a dict with ``serial_s``, ``fanout_s`` (wall seconds), ``speedup``, ``max_runs_in_progress``,
    ``serial_cpu_s_per_episode``, ``fanout_cpu_s_per_episode`` (user + system CPU seconds of every
    process each side started, per episode), ``peak_rss_mb`` (largest process started by this
    benchmark) and ``runs`` (per-run status).

    Raises:
        SystemExit: a command failed (its output is in ``<work>/*.log``), or the fan-out did not
            finish within ``timeout`` seconds.
    """
    tmp = tempfile.TemporaryDirectory(prefix="hvla-fanout-") if work is None else None
    root = Path(tmp.name) if tmp else Path(work)
    root.mkdir(parents=True, exist_ok=True)
    try:
        rec = root / "recordings"
        robots = [f"r-{i + 1:03d}" for i in range(partitions)]
        env0 = _env(root / "sim-home")
        _run([str(BIN / "hvla"), "sim", "record", "--out", str(rec), "--episodes", str(episodes * partitions),
              "--robot-ids", ",".join(robots), "--capture-days", DAY, "--duration", str(duration)],
             env0, root / "sim.log")
        n_eps = sum(1 for _ in rec.glob("*/*/*/metadata.yaml"))

        # serial: every partition materialized in process, one after the other
        cpu0 = _children_cpu()
        serial_s = _run([str(BIN / "hvla"), "ingest", str(rec), "--materialize"], _env(root / "serial"),
                        root / "serial.log")
        serial_cpu = _children_cpu() - cpu0

        # fan-out: land, then one queued run per partition, executed by the daemon
        env = _env(root / "fanout")
        cpu0 = _children_cpu()
        t0 = time.perf_counter()
        _run([str(BIN / "hvla"), "ingest", str(rec)], env, root / "fanout.log")
        keys = ",".join(f"{DAY}|{r}" for r in robots)
        _run([str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml", "-j", "ingest_job",
              "--partitions", keys, "--noprompt"], env, root / "fanout.log")
        with (root / "daemon.log").open("ab") as dlog:
            daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=REPO,
                                      env=env, stdout=dlog, stderr=subprocess.STDOUT)
        try:
            while True:
                runs = _runs(env)
                if runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs):
                    break
                if time.perf_counter() - t0 > timeout:
                    raise SystemExit(f"fanout: runs not finished after {timeout:.0f} s; see {root / 'daemon.log'}")
                time.sleep(1.0)
            fanout_s = time.perf_counter() - t0
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
        fanout_cpu = _children_cpu() - cpu0
        failed = [r for r in runs if r["status"] != "SUCCESS"]
        if failed:
            raise SystemExit(f"fanout: {len(failed)} run(s) did not succeed: {failed}; see {root / 'daemon.log'}")
        return {"partitions": partitions, "episodes": n_eps, "serial_s": serial_s, "fanout_s": fanout_s,
                "speedup": serial_s / fanout_s, "max_runs_in_progress": _max_overlap(runs),
                "serial_cpu_s_per_episode": serial_cpu / n_eps, "fanout_cpu_s_per_episode": fanout_cpu / n_eps,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "runs": runs}
    finally:
        if tmp:
            tmp.cleanup()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--partitions", type=int, default=6, help="robots (= partitions), one capture day")
    ap.add_argument("--episodes", type=int, default=2, help="episodes per partition")
    ap.add_argument("--duration", type=float, default=5.0, help="episode length, seconds")
    ap.add_argument("--work", type=Path, default=None, help="keep everything here (default: a temp dir)")
    args = ap.parse_args()
    r = run(args.partitions, args.episodes, args.duration, args.work)
    print(f"partitions {r['partitions']}, episodes {r['episodes']} (G1 default profile, {args.duration:g} s each)")
    print(f"serial  (hvla ingest --materialize, in process, one partition after another): {r['serial_s']:7.1f} s  "
          f"CPU {r['serial_cpu_s_per_episode']:.2f} s/episode")
    print(f"fan-out (dagster job backfill + daemon, QueuedRunCoordinator, run per process): {r['fanout_s']:7.1f} s  "
          f"CPU {r['fanout_cpu_s_per_episode']:.2f} s/episode")
    print(f"speedup {r['speedup']:.2f}x on {os.cpu_count()} cores; at most {r['max_runs_in_progress']} runs in progress "
          f"at once; peak RSS of the largest process {r['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
