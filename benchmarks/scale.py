"""Benchmark: every stage of the lifecycle at three data sizes, with ratios to its reference and
fitted scaling exponents (issue 18).

Usage::

    .venv/bin/python benchmarks/scale.py                                  # 1, 3, 9 episode-minutes, H1 480p
    .venv/bin/python benchmarks/scale.py --minutes 10,50,200 --profile unitree_h1_3cam   # the issue's sizes
    .venv/bin/python benchmarks/scale.py --profile default --stages conversion,release --json out.json

Each size is a number of **episode-minutes** of the chosen robot profile (``unitree_h1_3cam``: three
480 × 640 JPEG cameras at 30 Hz + depth; ``default``: the demo's G1, two 96 × 128 cameras). Each stage
is the stage's own benchmark (one script per stage, all runnable alone), called at each size in this
one invocation:

=================  ===========================================  =====================================
stage              ours                                         reference measured in the same run
=================  ===========================================  =====================================
``conversion``     ``convert_partition`` (raw MCAP → HDF5)      read + decode (+ PNG-encode raw/depth)
                   ``benchmarks/conversion.py``                 of the same frames, both cores
``release``        ``build_lerobot_dataset`` (HDF5 → LeRobot)   decode stored frames + libx264 with
                   ``benchmarks/release_build.py``              LeRobot's options, both cores
``training_read``  streaming Robo-DM reader                     ``LeRobotDataset`` + DataLoader
                   ``benchmarks/training_read.py``
``norm_stats``     streaming norm stats                         pyarrow read of the same columns
                   ``benchmarks/norm_stats.py``
``lineage``        sharded lineage index, cold / warm           the 5 s / 1 s targets
                   ``benchmarks/lineage.py``
=================  ===========================================  =====================================

Printed per stage and size: throughput, ratio to the reference (throughput ours / reference: ≥ 0.5
means within 2× of the lower bound), peak RSS, bytes per layer, cost per new episode (the cost of
adding one episode to a partition / release of that size) — then, over the three sizes, the fitted
exponent (log-log least squares) of the stage's total cost vs size (1 = linear; target ≤ 1.1) and of
the cost per new episode vs size (0 = flat). The policy server does not depend on data size; it is
``benchmarks/policy_server.py`` (run it alone).

The machine is shared (2 cores): compare ratios and exponents, not seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

STAGES = ("conversion", "release", "training_read", "norm_stats", "lineage")


def fitted_exponent(sizes: list[float], costs: list[float]) -> float | None:
    """Least-squares slope of log(cost) against log(size); None with fewer than two usable points."""
    pts = [(s, c) for s, c in zip(sizes, costs) if s and c and s > 0 and c > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def _episodes_for(minutes: float, duration_s: float) -> int:
    return max(2, math.ceil(minutes * 60.0 / duration_s))


# ------------------------------------------------------------------------------------------ stages
def stage_conversion(minutes: float, profile: str, work: Path, duration_s: float) -> dict[str, Any]:
    """``benchmarks/conversion.py`` at ``minutes`` episode-minutes, then the cost of landing one more
    episode into that partition (cost per new episode at this partition size)."""
    import conversion as conv  # deferred: benchmarks are plain scripts, imported on demand

    prof = None if profile == "default" else profile
    # the default profile's committed demo recordings are 4.5 s long; the others are recorded at duration_s
    d = 4.5 if prof is None else duration_s
    n = _episodes_for(minutes, d)
    r = conv.run(prof, episodes=n, incremental=2, duration_s=d, work=work)
    # one more episode into the throughput partition (n episodes converted): only it is converted
    from hvla_platform.lib.core.lake import LocalLake
    from hvla_platform.lib.processing.build import convert_partition
    import yaml

    lake = LocalLake(work / "lake")
    src = next(p for p in (work / "landing-src" / "2030-01-02").iterdir())
    robot = yaml.safe_load((src / "metadata.yaml").read_text())["robot"]["id"]
    extra = conv.copy_recording(src, work / "landing-src-extra", "bench-extra-0000", "2030-01-02", robot)
    conv._land(lake, [extra], "2030-01-02", robot)
    t = time.perf_counter()
    res = convert_partition(lake, "2030-01-02", robot)
    per_new = time.perf_counter() - t
    if res.attempted != ["bench-extra-0000"]:
        raise RuntimeError(f"conversion: adding one episode converted {res.attempted}")
    ours = r["ours"]
    return {"episodes": n, "seconds": ours["seconds"], "throughput": f"{ours['camera_frames_per_s']:.0f} camera frames/s, "
            f"{ours['episodes_per_s']:.2f} episodes/s",
            "ratio": r["ratio_vs_read_decode"], "ratio_note": "vs read+decode(+PNG encode); vs read+copy "
            f"{r['ratio_vs_lower_bound']:.2f}",
            "peak_rss_mb": ours["peak_rss_mb"]["total"],
            "bytes": {"raw_mcap": r["bytes"]["raw_mcap"], "hdf5": r["bytes"]["hdf5"]},
            "per_new_episode_s": per_new}


def stage_release(minutes: float, profile: str, work: Path, duration_s: float) -> dict[str, Any]:
    """``benchmarks/release_build.py`` at ``minutes`` episode-minutes (4 incremental batches; the cost
    per new episode is the last batch's, i.e. at this release size)."""
    import release_build as rb  # deferred: benchmarks are plain scripts, imported on demand

    name = "unitree_g1_29dof" if profile == "default" else profile
    n = _episodes_for(minutes, duration_s)
    # at most one batch per episode: every incremental version then adds at least one new episode
    r = rb.run(profiles=(name,), episodes=n, recorded=min(3, n), duration_s=duration_s, repeats=1,
               batches=min(4, n), work=work, say=lambda s: None)[name]
    last = r["incremental"]["rows"][-1]
    return {"episodes": n, "seconds": r["ours_s_per_episode"] * n,
            "throughput": f"{1.0 / r['ours_s_per_episode']:.2f} episodes/s ({r['frames'] / (r['ours_s_per_episode'] * n):.0f} frames/s)",
            "ratio": r["ratio"], "ratio_note": "vs decode + libx264 (LeRobot's options)",
            "peak_rss_mb": max(r["peak_rss_mb"]["self"], r["peak_rss_mb"]["encoder_worker"] or 0),
            "bytes": {"hdf5": r["hdf5_bytes"], "release": r["release_bytes"]},
            "per_new_episode_s": last["per_new_episode"], "incremental_exponent": r["incremental"]["exponent"]}


def stage_norm_stats(frames: float, profile: str, work: Path, duration_s: float) -> dict[str, Any]:
    """``benchmarks/norm_stats.py --fleet`` at ``frames`` train frames (a synthetic LeRobot-layout
    release: state (43,) and action (23,) float32); ours = the streaming exact computation."""
    import norm_stats as nsb  # deferred: benchmarks are plain scripts, imported on demand

    r = nsb.run(int(frames), methods=("bare_read", "stream_1"), work=work)
    ours, bare = r["methods"]["stream_1"], r["methods"]["bare_read"]
    return {"episodes": r["episodes"], "seconds": ours["seconds"],
            "throughput": f"{frames / ours['seconds']:.0f} frames/s in {ours['seconds']:.2f} s (target at 1 M frames: "
            f"< {r['target_s']:.0f} s, < {r['target_rss_mb']:.0f} MB)",
            "ratio": bare["seconds"] / ours["seconds"], "ratio_note": "vs the bare pyarrow read of the same columns",
            "peak_rss_mb": ours["peak_rss_mb"], "bytes": {"parquet": int(r["dataset_mb"] * 2**20)},
            "per_new_episode_s": None}


def stage_lineage(episodes: float, profile: str, work: Path, duration_s: float) -> dict[str, Any]:
    """``benchmarks/lineage.py`` on a synthetic lake of ``episodes`` raw episodes (manifests only):
    the worst cold and warm query (index + query); the reference is one core reading, parsing and
    hashing every manifest. Cost per new episode = re-indexing after one partition's manifest changed."""
    import lineage as lb  # deferred: benchmarks are plain scripts, imported on demand

    r = lb.run(int(episodes), root=work)
    inc = r.get("incremental", {})
    return {"episodes": int(episodes), "seconds": r["worst_warm_s"],
            "throughput": f"worst warm {r['worst_warm_s']:.2f} s (target < 1 s), worst cold {r['worst_cold_s']:.2f} s "
            f"(target < 5 s), index {r['index_bytes'] / 1e6:.1f} MB in {r['shards']} shards",
            "ratio": r["reference_s"] / r["worst_cold_s"], "ratio_note": "cold vs reading + hashing every manifest once",
            "peak_rss_mb": r["peak_rss_mb"], "bytes": {"index": r["index_bytes"]},
            "per_new_episode_s": inc.get("seconds")}


def stage_training_read(scale: float, profile: str, work: Path, duration_s: float) -> dict[str, Any]:
    """``benchmarks/training_read.py``: the demo release's Robo-DM cache repeated ``scale`` times
    (its episodes under new ids); ours = the frame store + prefetching reader over the scaled cache,
    reference = ``LeRobotDataset`` + DataLoader on the 1x release (same batch size and horizon)."""
    import training_read as tr  # deferred: benchmarks are plain scripts, imported on demand

    k = max(1, int(scale))
    r = tr.run(batches=40, scale=k, work=work)
    big, ref = r["ours_scaled"], r["reference"]
    train_frames = big.get("store_frames", r["release"]["train_frames"] * k)
    epoch_s = train_frames / big["frames_per_s"] + big.get("store_build_s", 0.0)
    return {"episodes": r["release"]["episodes"] * k, "seconds": epoch_s,
            "throughput": f"{big['frames_per_s']:.0f} frames/s (store built once in {big.get('store_build_s', 0):.1f} s)",
            "ratio": r["ratio_scaled"], "ratio_note": "vs LeRobotDataset + DataLoader frames/s (target >= 10)",
            "peak_rss_mb": big["peak_rss_mb"],
            "bytes": {"release": r["release"]["release_bytes"], "cache": r["release"]["scaled_cache_bytes"]},
            "per_new_episode_s": None}


STAGE_FUNCS: dict[str, Callable[[float, str, Path, float], dict[str, Any]]] = {
    "conversion": stage_conversion,
    "training_read": stage_training_read,
    "release": stage_release,
    "norm_stats": stage_norm_stats,
    "lineage": stage_lineage,
}

#: What a stage's sizes count: episode-minutes of the profile's recordings, or synthetic frames /
#: episodes for the stages that read only metadata or low-dimensional columns (cheap to generate at
#: fleet sizes).
SIZE_UNIT = {"conversion": "episode-min", "release": "episode-min", "training_read": "x-demo-release",
             "norm_stats": "frames", "lineage": "episodes"}
DEFAULT_SIZES = {"episode-min": [1.0, 3.0, 9.0], "x-demo-release": [1, 3, 10], "frames": [10_000, 100_000, 1_000_000],
                 "episodes": [1_000, 10_000, 100_000]}


# ------------------------------------------------------------------------------------------ driver
def run(sizes: dict[str, list[float]], profile: str = "unitree_h1_3cam", stages: tuple[str, ...] = STAGES,
        duration_s: float = 30.0, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run ``stages``, each at the sizes of its unit (``sizes[SIZE_UNIT[stage]]``); return
    ``{stage: {"sizes": [...], "exponent": …, "per_new_episode_exponent": …}}`` with every printed number."""
    out: dict[str, Any] = {}
    for stage in stages:
        fn = STAGE_FUNCS[stage]
        unit = SIZE_UNIT[stage]
        rows = []
        for m in sizes[unit]:
            work = Path(tempfile.mkdtemp(prefix=f"hvla-scale-{stage}-"))
            try:
                t = time.perf_counter()
                row = fn(m, profile, work, duration_s)
                row["size"] = m
                row["wall_s"] = time.perf_counter() - t
            finally:
                shutil.rmtree(work, ignore_errors=True)
            rows.append(row)
            per_new = row.get("per_new_episode_s")
            say(f"[{stage}] {m:g} {unit} ({row.get('episodes', '-')} episodes): {row['throughput']}; "
                f"ratio {_fmt(row.get('ratio'))} ({row['ratio_note']}); peak RSS {row['peak_rss_mb']:.0f} MB; "
                f"bytes {row.get('bytes', {})}; per new episode {'n/a' if per_new is None else f'{per_new:.3f} s'}")
        xs = [r["size"] for r in rows]
        res = {"unit": unit, "sizes": rows, "exponent": fitted_exponent(xs, [r["seconds"] for r in rows]),
               "per_new_episode_exponent": fitted_exponent(xs, [r.get("per_new_episode_s") for r in rows])}
        say(f"[{stage}] fitted exponent, total cost vs size: {_fmt(res['exponent'])} (target <= 1.1); "
            f"cost per new episode vs size: {_fmt(res['per_new_episode_exponent'])} (0 = flat)")
        out[stage] = res
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    csv = {u: ",".join(f"{v:g}" for v in vals) for u, vals in DEFAULT_SIZES.items()}
    ap.add_argument("--minutes", default=csv["episode-min"], help="conversion/release/training_read sizes, episode-minutes")
    ap.add_argument("--frames", default=csv["frames"], help="norm_stats sizes, train frames")
    ap.add_argument("--release-scale", default=csv["x-demo-release"],
                    help="training_read sizes, multiples of the demo release")
    ap.add_argument("--episodes", default=csv["episodes"], help="lineage sizes, episodes")
    ap.add_argument("--profile", default="unitree_h1_3cam", help="unitree_h1_3cam (480p, default) or default (G1 demo)")
    ap.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per recorded episode (default 30)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    stages = tuple(s for s in args.stages.split(",") if s)
    unknown = [s for s in stages if s not in STAGE_FUNCS]
    if unknown:
        print(f"scale: unknown stage(s) {unknown}; known: {', '.join(STAGE_FUNCS)}", file=sys.stderr)
        return 2
    sizes = {"episode-min": [float(m) for m in args.minutes.split(",")],
             "frames": [float(m) for m in args.frames.split(",")],
             "x-demo-release": [float(m) for m in args.release_scale.split(",")],
             "episodes": [float(m) for m in args.episodes.split(",")]}
    res = run(sizes, args.profile, stages, args.duration)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
