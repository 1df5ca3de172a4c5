"""Benchmark: the HDF5 → LeRobot v3.0 release build against its lower bound, and incremental versions.

Usage::

    .venv/bin/python benchmarks/release_build.py                      # G1 demo profile + H1 480p
    .venv/bin/python benchmarks/release_build.py --episodes 12 --batches 4 --profiles unitree_g1_29dof

In ONE invocation, per robot profile (the demo's default G1, 2 × 96 × 128 cameras at 20 fps; the H1
``unitree_h1_3cam``, 3 × 480 × 640 at 30 fps):

1. **episodes**: ``--recorded`` episodes are recorded with the simulator (``--frames synthetic``,
   ``--duration`` s), landed, ingested and converted to HDF5 by the real pipeline (what the tests'
   ``land_and_convert`` does); the rest up to ``--episodes`` are copies of those HDF5 files under
   new episode ids (same frames: the encoder's work is the same as for new recordings).
2. **lower bound**: decode every stored frame of every episode's cameras from the HDF5 and encode
   it with libx264 and LeRobot's options (GOP 2, CRF 30, yuv420p), on both cores (one encoder
   process per core: :class:`~hvla_platform.lib.dataset.encode_worker.EncoderPool`), nothing else;
3. **ours**: :func:`~hvla_platform.lib.dataset.lerobot_release.build_lerobot_dataset` of all
   episodes (LeRobot's writer, frames fed to the encoder without PNGs, sampled image stats), then
   LeRobot's loader on the result;
   the two alternate ``--repeats`` times; printed: seconds per episode of each (median), the
   **ratio** lower-bound time / our time (throughput ratio, the median over the alternating pairs;
   target ≥ 0.5), the same ratio of CPU seconds (this process + its encoder workers: what another
   job's load does not change), peak RSS of this process and of an encoder worker, bytes of the
   HDF5 layer vs the release;
4. **incremental**: a release of the first batch, then one more batch of episodes at a time, each
   version built from the previous one
   (:func:`~hvla_platform.lib.dataset.lerobot_extend.extend_lerobot_dataset`); printed per size: new
   episodes, seconds, seconds per new episode, and the **fitted exponent**: the log-log
   least-squares slope of the cumulative cost of reaching a release size against that size. A
   cost per new episode that stays flat gives 1 (target ≤ 1.1); rebuilding every version from
   scratch gives ~2 (printed too, from the same sizes, as the reference). The same exponent of CPU
   seconds (this process + encoder workers) is printed: wall times on a shared machine swing 2–4×
   between runs.

``run(...) -> dict`` returns everything printed (``benchmarks/scale.py`` imports it). Measured on
a busy shared machine: compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import math
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hvla_platform.lib.core.lake import LocalLake  # noqa: E402
from hvla_platform.lib.dataset import lerobot_release as lr  # noqa: E402
from hvla_platform.lib.dataset.encode_worker import EncoderPool  # noqa: E402
from hvla_platform.lib.dataset.episode_video import codec_options  # noqa: E402
from hvla_platform.lib.dataset.lerobot_writer import default_workers  # noqa: E402
from hvla_platform.lib.dataset.spec import ReleaseSpec  # noqa: E402
from hvla_platform.lib.formats.episode_h5 import EpisodeReader  # noqa: E402
from hvla_platform.lib.formats.recording.profile import load_profile  # noqa: E402
from hvla_platform.lib.ingest.landing import find_recordings, land_recording  # noqa: E402
from hvla_platform.lib.ingest.raw import ingest_partition  # noqa: E402
from hvla_platform.lib.processing.build import convert_partition  # noqa: E402
from hvla_platform.lib.processing.convert import SyncConfig  # noqa: E402
from hvla_platform.lib.sim.recorder import record_episode  # noqa: E402

DAY = "2026-12-01"
PROFILES = {"unitree_g1_29dof": "g1-901", "unitree_h1_3cam": "h1-901"}


def _cpu_s() -> float:
    """CPU seconds used so far by this process and its reaped children (the encoder workers)."""
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_episodes(work: Path, profile: str, *, recorded: int, total: int, duration_s: float) -> tuple[ReleaseSpec, list[Path]]:
    """``recorded`` simulated episodes through the real pipeline (record → land → ingest → HDF5),
    copied under new ids up to ``total``; returns the release spec and the HDF5 paths (sorted)."""
    robot = PROFILES[profile]
    recs, lake = work / "recordings", LocalLake(work / "lake")
    for i in range(recorded):
        record_episode(recs, episode_id=f"ep-{robot}-{i:04d}", robot_id=robot, capture_day=DAY, seed=500 + i,
                       duration_s=duration_s, profile=profile, frames="synthetic")
    prof = load_profile(profile)
    for rec in find_recordings(recs):
        land_recording(lake, rec)
    ingest_partition(lake, DAY, robot)
    convert_partition(lake, DAY, robot, SyncConfig(fps=float(prof.fps)))
    made = sorted((work / "lake" / "episodes-hdf5" / DAY / robot).glob("*.h5"))
    if len(made) != recorded:
        raise RuntimeError(f"{profile}: {len(made)} of {recorded} recordings converted")
    out = work / "h5"
    out.mkdir()
    paths = []
    for i in range(total):
        src = made[i % recorded]
        dst = out / f"ep-{robot}-{i:05d}.h5"
        shutil.copyfile(src, dst)
        with h5py.File(dst, "r+") as f:
            f.attrs["episode_id"] = dst.stem
        paths.append(dst)
    spec = ReleaseSpec.from_mapping({"name": f"bench-{robot}", "repo_id": f"bench/{robot}", "profile": profile,
                                     "fps": int(prof.fps), "min_quality": 0.0})
    return spec, paths


def lower_bound(paths: list[Path], cameras: tuple[str, ...], fps: int, vcodec: str, out: Path, workers: int) -> float:
    """Seconds to decode every stored frame of ``cameras`` and encode it with libx264 and LeRobot's
    options, ``workers`` encoder processes (their start counted, as in ours)."""
    from lerobot.datasets.video_utils import resolve_vcodec

    vcodec = resolve_vcodec(vcodec)
    opts = codec_options(vcodec, 1)
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    with EncoderPool(workers) as pool:  # started inside the clock, as ours starts its workers
        futs = [pool.submit(p, c, out / f"{p.stem}-{c}.mp4", fps=fps, vcodec=vcodec, options=opts, sample=[])
                for p in paths for c in cameras]
        for f in futs:
            f.result()
    dt = time.perf_counter() - t
    shutil.rmtree(out)
    return dt


def ours(spec: ReleaseSpec, paths: list[Path], out: Path, workers: int) -> float:
    """Seconds of :func:`build_lerobot_dataset` (the dataset is kept at ``out``)."""
    t = time.perf_counter()
    lr.build_lerobot_dataset(spec, paths, out, workers=workers)
    return time.perf_counter() - t


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


def publish_side(spec: ReleaseSpec, root: Path, scratch: Path) -> None:
    """What ``build_release`` does to a written version besides writing it, all proportional to the
    whole release: LeRobot reload + frame decode, our timestamp check, sha256 of every file (the
    manifest) and the copy into the lake (``LocalLake.publish_artifact``)."""
    from hvla_platform.lib.dataset.timestamps import check_lerobot_timestamps

    lr.load_and_probe(root, spec.repo_id)
    check_lerobot_timestamps(root)
    for f in sorted(root.rglob("*")):
        if f.is_file():
            hashlib.sha256(f.read_bytes()).hexdigest()
    shutil.copytree(root, scratch)
    shutil.rmtree(scratch)


def fitted_exponent(sizes: list[float], costs: list[float]) -> float:
    """Least-squares slope of log(cost) against log(size)."""
    x, y = np.log(np.asarray(sizes, float)), np.log(np.asarray(costs, float))
    return float(np.polyfit(x, y, 1)[0])


def incremental(spec: ReleaseSpec, paths: list[Path], work: Path, batches: int, workers: int) -> dict[str, Any]:
    """Grow a release by ``len(paths) / batches`` episodes at a time, each version from the previous."""
    from hvla_platform.lib.dataset.lerobot_extend import extend_lerobot_dataset

    per = max(1, len(paths) // batches)
    rows, prev = [], None
    for b in range(batches):
        sel = paths[: per * (b + 1)]
        new = sel[-per:]
        out = work / f"v{b}"
        c = _cpu_s()
        t = time.perf_counter()
        if prev is None:
            lr.build_lerobot_dataset(spec, sel, out, workers=workers)
            how = "full"
        else:
            res = extend_lerobot_dataset(spec, prev, sel, out, workers=workers,
                                         episode_ids={str(p): p.stem for p in sel})  # as build_release passes them
            how = res.how
        dt = time.perf_counter() - t
        cpu = _cpu_s() - c
        t = time.perf_counter()
        publish_side(spec, out, work / "publish-copy")
        pub = time.perf_counter() - t
        rows.append({"episodes": len(sel), "new": len(new), "seconds": dt, "per_new_episode": dt / len(new), "how": how,
                     "cpu_s": cpu, "publish_side_s": pub})
        if prev is not None and prev.name != "v0":
            shutil.rmtree(prev)
        prev = out
    cumulative = np.cumsum([r["seconds"] for r in rows]).tolist()
    exponent = fitted_exponent([r["episodes"] for r in rows], cumulative)
    per_ep_full = rows[0]["seconds"] / rows[0]["episodes"]  # a from-scratch build of each size, at the first build's rate
    scratch = np.cumsum([per_ep_full * r["episodes"] for r in rows]).tolist()
    with_publish = np.cumsum([r["seconds"] + r["publish_side_s"] for r in rows]).tolist()
    cpu_cumulative = np.cumsum([r["cpu_s"] for r in rows]).tolist()
    return {"rows": rows, "exponent": exponent, "from_scratch_exponent": fitted_exponent([r["episodes"] for r in rows], scratch),
            "exponent_with_publish_side": fitted_exponent([r["episodes"] for r in rows], with_publish),
            "cpu_exponent": fitted_exponent([r["episodes"] for r in rows], cpu_cumulative)}


def run(*, profiles: tuple[str, ...] = tuple(PROFILES), episodes: int = 12, recorded: int = 3, duration_s: float = 3.0,
        repeats: int = 2, batches: int = 4, workers: int | None = None, work: Path | None = None,
        say=print) -> dict[str, Any]:
    """Run the benchmark (module docstring); returns ``{profile: {...}}`` with everything printed."""
    workers = workers or default_workers()
    from hvla_platform.lib.core.compat import import_lerobot_dataset
    import_lerobot_dataset()  # imported once before any clock: ~3 CPU-s the first repeat would otherwise carry
    out: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="hvla-release-bench-", dir=work))
    try:
        for profile in profiles:
            pw = tmp / profile
            t = time.perf_counter()
            with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:  # the simulator's
                spec, paths = ex.submit(make_episodes, pw, profile, recorded=recorded, total=episodes,  # memory is
                                        duration_s=duration_s).result()  # not the build's
            prof = load_profile(profile)
            cams = tuple(spec.cameras)
            frames = sum(EpisodeReader(p).num_frames for p in paths)
            h5_bytes = sum(p.stat().st_size for p in paths)
            say(f"[{profile}] {episodes} episodes ({recorded} recorded, {frames} frames, cameras {cams}) ready "
                f"in {time.perf_counter() - t:.1f} s")
            lb, us, lb_cpu, us_cpu = [], [], [], []
            release_bytes = 0
            for r in range(repeats):
                c = _cpu_s()
                lb.append(lower_bound(paths, cams, spec.fps, spec.video_codec, pw / "lb", workers))
                lb_cpu.append(_cpu_s() - c)
                ds = pw / f"ours-{r}"
                c = _cpu_s()
                us.append(ours(spec, paths, ds, workers))
                us_cpu.append(_cpu_s() - c)
                worker_rss = EncoderPool.last_peak_rss_mb
                release_bytes = _bytes(ds)
                probe = lr.load_and_probe(ds, spec.repo_id)
                if probe["num_frames"] != frames:
                    raise RuntimeError(f"LeRobot loads {probe['num_frames']} frames, expected {frames}")
                shutil.rmtree(ds)
                say(f"[{profile}] repeat {r + 1}: lower bound {lb[-1]:.2f} s ({lb_cpu[-1]:.2f} CPU-s), "
                    f"ours {us[-1]:.2f} s ({us_cpu[-1]:.2f} CPU-s), ratio {lb[-1] / us[-1]:.2f}")
            lbm, usm = statistics.median(lb), statistics.median(us)
            paired = statistics.median(a / b for a, b in zip(lb, us))
            cpu_ratio = statistics.median(a / b for a, b in zip(lb_cpu, us_cpu))
            res = {"episodes": episodes, "frames": frames, "cameras": list(cams),
                   "lower_bound_s_per_episode": lbm / episodes, "ours_s_per_episode": usm / episodes,
                   "ratio": paired, "ratio_of_medians": lbm / usm, "cpu_ratio": cpu_ratio,
                   "hdf5_bytes": h5_bytes, "release_bytes": release_bytes}
            say(f"[{profile}] lower bound {lbm / episodes:.3f} s/episode, ours {usm / episodes:.3f} s/episode; "
                f"throughput ratio (lower-bound time / ours, median of the paired runs) {paired:.2f} (target >= 0.5; "
                f"ratio of the medians {lbm / usm:.2f}); CPU-time ratio {cpu_ratio:.2f} (insensitive to other load)")
            say(f"[{profile}] bytes: HDF5 {h5_bytes / 1e6:.2f} MB, release {release_bytes / 1e6:.2f} MB "
                f"({release_bytes / h5_bytes:.2f} x)")
            inc = incremental(spec, paths, pw / "inc", batches, workers)
            for row in inc["rows"]:
                say(f"[{profile}] incremental: {row['episodes']:4d} episodes, {row['new']} new ({row['how']}): "
                    f"{row['seconds']:.2f} s ({row['cpu_s']:.2f} CPU-s), {row['per_new_episode']:.3f} s per new episode; "
                    f"then build_release's "
                    f"reload + checks + sha256 + copy into the lake: {row['publish_side_s']:.2f} s")
            say(f"[{profile}] cumulative cost vs release size: fitted exponent {inc['exponent']:.2f} (target <= 1.1; "
                f"rebuilding each version from scratch at the first build's rate: {inc['from_scratch_exponent']:.2f}; "
                f"with build_release's reload, checks, sha256 and copy: {inc['exponent_with_publish_side']:.2f}; "
                f"of CPU seconds, insensitive to other load: {inc['cpu_exponent']:.2f})")
            res["incremental"] = inc
            res["peak_rss_mb"] = {"self": _peak_rss_mb(), "encoder_worker": worker_rss}
            say(f"[{profile}] peak RSS: this process (builds, LeRobot loads; cumulative over the profiles run so far) "
                f"{res['peak_rss_mb']['self']:.0f} MB, an encoder worker {worker_rss:.0f} MB")
            out[profile] = res
            shutil.rmtree(pw, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--episodes", type=int, default=12)
    ap.add_argument("--recorded", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    a = ap.parse_args()
    res = run(profiles=tuple(a.profiles.split(",")), episodes=a.episodes, recorded=a.recorded, duration_s=a.duration,
              repeats=a.repeats, batches=a.batches, workers=a.workers)
    if a.json:
        a.json.write_text(json.dumps(res, indent=2, default=float))


if __name__ == "__main__":
    main()
