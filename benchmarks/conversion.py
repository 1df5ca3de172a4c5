"""Benchmark: raw MCAP → HDF5 conversion throughput against its lower bound, and its incremental cost.

    .venv/bin/python benchmarks/conversion.py                          # default G1 + unitree_h1_3cam
    .venv/bin/python benchmarks/conversion.py --episodes 8 --incremental 10 --profiles default
    .venv/bin/python benchmarks/conversion.py --json out.json

For each robot profile — the demo's default G1 (2 cameras 96 × 128 JPEG) and ``unitree_h1_3cam``
(3 × 480 × 640 JPEG at 30 Hz + 16UC1 depth at 15 Hz) — in ONE invocation, measured in the same
window on the same recordings:

(i) **lower bound**: what any converter of these recordings must do, on both cores
    (:func:`hvla_platform.lib.processing.pool.ordered_map`, the same pool and worker count as ours):
    read every message of the profile's topics with the upstream ``mcap`` reader (no CDR decoding
    of the low-dimensional streams), CDR-decode the camera messages (``mcap_ros2``) and produce the
    bytes the HDF5 file stores with the writer's codec settings: JPEG frames **copied as bytes**
    (HDF5 format 3 keeps them encoded), raw/depth frames decoded and **PNG-encoded** (Pillow,
    compress level 1: :func:`~hvla_platform.lib.formats.recording.streams.camera_frame_for_storage`).
    A second reference, ``read+decode``, also decodes every JPEG once (what the issue measured; our
    QA must look at every frame: black, saturated, frozen, undecodable).
(ii) **ours**: :func:`~hvla_platform.lib.processing.build.convert_partition` of a fresh partition
    holding the same episodes (a warm-up partition of two episodes is converted first, so imports and
    the fork server are not counted; worker processes are). Printed: frames/s (synchronised frames
    and camera messages), episodes/s, ratio ours/lower bound in throughput (target ≥ 0.5), peak RSS
    (sampled every 20 ms over this process and its children, and ``resource.getrusage`` of the
    process and of its waited-for children, lifetime), and bytes per layer (raw MCAP vs HDF5).
(iii) **incremental**: episodes landed one at a time into one partition (k = 1..K), each followed by
    ``convert_partition``; printed: the seconds of each step, which episodes it converted (must be
    only the new one), and two fitted exponents: of the cumulative cost vs k (log-log least squares;
    1 = each new episode costs the same, 2 = quadratic; target ≤ 1.1) and of the cost of the k-th
    episode vs k (0 = flat).

**Recordings**: the default profile uses the committed demo recordings (``data/recordings``); the H1
records ``--sources`` episodes with ``hvla sim record --frames synthetic`` (a few seconds each).
More episodes are **copies** of those under new episode ids (MCAP hard-linked, ``metadata.yaml``
re-identified). Copies are byte-identical, so the lake-wide ``duplicate`` QA check flags every copy
after the first (qa/duplicates.py: exact duplicate by raw sha256; it only flags and lowers the
quality score, it never skips conversion), and the episodes' conversion work is the same as for
distinct recordings — the duplicate verdicts are expected and do not change what is measured.

:func:`run` (``profile``, ``episodes``, …) → dict is the entry point for other scripts
(``benchmarks/scale.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import yaml  # noqa: E402

from hvla_platform.lib.core.keys import episodes_prefix  # noqa: E402
from hvla_platform.lib.core.lake import LocalLake  # noqa: E402
from hvla_platform.lib.formats.bags.layout import locate_bag  # noqa: E402
from hvla_platform.lib.formats.recording.profile import MSG_COMPRESSED_IMAGE, load_profile  # noqa: E402
from hvla_platform.lib.formats.recording.streams import camera_frame_for_storage, camera_frame_pixels  # noqa: E402
from hvla_platform.lib.ingest.landing import find_recordings, land_recording  # noqa: E402
from hvla_platform.lib.ingest.raw import ingest_partition  # noqa: E402
from hvla_platform.lib.processing.build import convert_partition  # noqa: E402
from hvla_platform.lib.processing.pool import default_workers, ordered_map  # noqa: E402

DEMO_RECORDINGS = ROOT / "data" / "recordings"
PROFILES = {"default": None, "unitree_h1_3cam": "unitree_h1_3cam"}


# ------------------------------------------------------------------------------------------------
# recordings


def source_recordings(profile: str | None, work: Path, *, sources: int, duration_s: float) -> list[Path]:
    """Distinct recordings of ``profile``: the committed demo recordings for the default G1, else
    ``sources`` episodes recorded with ``hvla sim record --frames synthetic``.

    Raises:
        subprocess.CalledProcessError: the simulator failed.
    """
    if profile is None:
        return find_recordings(DEMO_RECORDINGS)[:max(1, sources)]
    out = work / f"sim-{profile}"
    if not out.exists():
        hvla = Path(sys.executable).with_name("hvla")
        subprocess.run([str(hvla), "sim", "record", "--out", str(out), "--episodes", str(sources), "--seed", "7",
                        "--profile", profile, "--frames", "synthetic", "--duration", str(duration_s)],
                       check=True, stdout=subprocess.DEVNULL)
    return find_recordings(out)


def copy_recording(src: Path, dest_root: Path, episode_id: str, day: str, robot: str) -> Path:
    """``src`` under a new episode id, day and robot: MCAP hard-linked (copied across filesystems),
    ``metadata.yaml`` re-identified, into ``dest_root/<episode_id>/``."""
    folder = dest_root / episode_id
    folder.mkdir(parents=True, exist_ok=True)
    mcap = next(src.glob("*.mcap"))
    dest = folder / f"{episode_id}_0.mcap"
    try:
        os.link(mcap, dest)
    except OSError:
        shutil.copyfile(mcap, dest)
    meta = yaml.safe_load((src / "metadata.yaml").read_text())
    meta.update(episode_id=episode_id, capture_date=day)
    meta["robot"]["id"] = robot
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


# ------------------------------------------------------------------------------------------------
# lower bound


def lower_bound_episode(args: tuple[str, str | None, bool]) -> dict[str, int]:
    """Read one recording's profile topics with the upstream ``mcap`` reader, CDR-decode its camera
    messages and produce the stored bytes (module docstring); ``decode`` also decodes every frame.
    Returns counts: ``messages``, ``camera_frames``, ``stored_bytes``."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    folder, profile_name, decode = args
    prof = load_profile(profile_name)
    cams = {c.topic: c for c in prof.cameras.values()}
    topics = [prof.joint_state.topic, prof.task.topic] + [s.topic for s in prof.commands.values()] + list(cams)
    topics += [e.topic for e in prof.extras.values()] + ([prof.locomotion.topic] if prof.locomotion else [])
    factory, decoders = DecoderFactory(), {}
    counts = {"messages": 0, "camera_frames": 0, "stored_bytes": 0}
    for path in locate_bag(Path(folder)).files:
        with open(path, "rb") as f:
            for schema, channel, message in make_reader(f).iter_messages(topics=topics):
                counts["messages"] += 1
                cam = cams.get(channel.topic)
                if cam is None:
                    continue
                dec = decoders.get(channel.id)
                if dec is None:
                    dec = decoders[channel.id] = factory.decoder_for(channel.message_encoding, schema)
                msg = dec(message.data)
                if cam.type == MSG_COMPRESSED_IMAGE:
                    stored = bytearray(msg.data)  # the bytes copied, as the HDF5 file keeps them
                    if decode:
                        camera_frame_pixels(msg, cam)
                else:
                    stored = camera_frame_for_storage(msg, cam)  # decode + PNG, the writer's settings
                counts["camera_frames"] += 1
                counts["stored_bytes"] += len(stored)
    return counts


# ------------------------------------------------------------------------------------------------
# measuring


class PeakRSS:
    """Samples the RSS of this process and of its children every ``interval`` s while active:
    ``parent`` (bytes), ``child`` (the largest single child), ``total`` (sum at one instant)."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.parent, self.child, self.total = interval, 0, 0, 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                p = me.memory_info().rss
                kids = [c.memory_info().rss for c in me.children(recursive=True)]
            except psutil.Error:
                kids, p = [], self.parent
            self.parent, self.total = max(self.parent, p), max(self.total, p + sum(kids))
            self.child = max([self.child, *kids])
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRSS":
        self._t = threading.Thread(target=self._sample, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()


def _mb(n: float) -> float:
    return round(n / 1e6, 1)


def _fit(x: list[float], y: list[float]) -> float | None:
    """Least-squares slope of log y vs log x (None with fewer than 2 points)."""
    if len(x) < 2:
        return None
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def _land(lake: LocalLake, folders: list[Path], day: str, robot: str) -> None:
    for f in folders:
        res = land_recording(lake, f)
        if res.status not in ("landed", "already_landed"):
            raise RuntimeError(f"{f}: not landed: {res.status} {getattr(res, 'reasons', '')}")
    ingest_partition(lake, day, robot)


def _artifact_bytes(lake: LocalLake, day: str, robot: str) -> int:
    prefix = episodes_prefix(day, robot)
    return sum(lake.size(k) for k in lake.list_keys(prefix) if k.endswith(".h5"))


def run(profile: str | None, episodes: int = 4, *, incremental: int = 6, workers: int | None = None,
        sources: int = 2, duration_s: float = 4.5, work: Path | None = None) -> dict[str, Any]:
    """Measure one robot profile (module docstring): lower bounds, ``convert_partition`` of
    ``episodes`` episodes, and ``incremental`` one-at-a-time landings. Returns a dict of the
    printed numbers (seconds, frames, bytes, ratios, exponents). ``profile`` None is the default G1.

    Raises:
        RuntimeError: a copy was not landed, or an incremental step converted more than its new episode.
    """
    workers = workers or default_workers()
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="hvla-bench-conv-")) if work is None else Path(work)
    work.mkdir(parents=True, exist_ok=True)
    name = profile or "default"
    try:
        srcs = source_recordings(profile, work, sources=sources, duration_s=duration_s)
        robot = yaml.safe_load((srcs[0] / "metadata.yaml").read_text())["robot"]["id"]
        lake = LocalLake(work / "lake")

        def batch(day: str, n: int, tag: str) -> list[Path]:
            return [copy_recording(srcs[i % len(srcs)], work / "landing-src" / day, f"bench-{tag}-{i:04d}", day, robot)
                    for i in range(n)]

        warm = batch("2030-01-01", 2, f"{name}-warm")
        main = batch("2030-01-02", episodes, name)
        _land(lake, warm, "2030-01-01", robot)
        _land(lake, main, "2030-01-02", robot)
        convert_partition(lake, "2030-01-01", robot, workers=workers)  # imports, fork server, caches

        raw_folders = [str(lake.path(f"raw-mcap/2030-01-02/{robot}/{f.name}")) for f in main]
        raw_bytes = sum(p.stat().st_size for f in raw_folders for p in Path(f).glob("*.mcap"))
        out: dict[str, Any] = {"profile": name, "episodes": episodes, "workers": workers}
        for label, decode in (("lower_bound", False), ("read_decode", True)):
            with PeakRSS() as rss:
                t = time.perf_counter()
                counts = ordered_map(lower_bound_episode, [(f, profile, decode) for f in raw_folders], workers=workers)
                dt = time.perf_counter() - t
            out[label] = {"seconds": dt, "camera_frames": sum(c["camera_frames"] for c in counts),
                          "messages": sum(c["messages"] for c in counts),
                          "stored_bytes": sum(c["stored_bytes"] for c in counts),
                          "peak_rss_mb": {"parent": _mb(rss.parent), "largest_child": _mb(rss.child),
                                          "total": _mb(rss.total)}}
        with PeakRSS() as rss:
            t = time.perf_counter()
            res = convert_partition(lake, "2030-01-02", robot, workers=workers)
            dt = time.perf_counter() - t
        frames = sum(e.num_frames for e in res.converted)
        cam_frames = out["lower_bound"]["camera_frames"]
        out["ours"] = {"seconds": dt, "converted": len(res.converted), "failed": len(res.episodes) - len(res.converted),
                       "frames": frames, "frames_per_s": frames / dt, "camera_frames_per_s": cam_frames / dt,
                       "episodes_per_s": len(res.converted) / dt,
                       "duplicates_flagged": sum(1 for e in res.episodes
                                                 if not e.qa_checks.get("duplicate", {}).get("passed", True)),
                       "peak_rss_mb": {"parent": _mb(rss.parent), "largest_child": _mb(rss.child),
                                       "total": _mb(rss.total)}}
        out["ratio_vs_lower_bound"] = out["lower_bound"]["seconds"] / dt
        out["ratio_vs_read_decode"] = out["read_decode"]["seconds"] / dt
        out["bytes"] = {"raw_mcap": raw_bytes, "hdf5": _artifact_bytes(lake, "2030-01-02", robot),
                        "camera_bytes_stored_by_lower_bound": out["lower_bound"]["stored_bytes"]}
        out["bytes"]["hdf5_over_raw"] = out["bytes"]["hdf5"] / raw_bytes

        steps = []
        day = "2030-01-03"
        for k, folder in enumerate(batch(day, incremental, f"{name}-inc"), start=1):
            t = time.perf_counter()
            _land(lake, [folder], day, robot)
            t_ingest = time.perf_counter() - t
            t = time.perf_counter()
            res = convert_partition(lake, day, robot, workers=workers)
            dt = time.perf_counter() - t
            if res.attempted != [folder.name]:
                raise RuntimeError(f"step {k}: converted {res.attempted}, expected only {folder.name}")
            steps.append({"k": k, "convert_s": dt, "ingest_s": t_ingest, "converted": res.attempted,
                          "reused": len(res.reused), "episodes_in_manifest": len(res.manifest.episode_ids)})
        ks = [s["k"] for s in steps]
        costs = [s["convert_s"] for s in steps]
        out["incremental"] = {"steps": steps, "cumulative_exponent": _fit(ks, list(np.cumsum(costs))),
                              "per_episode_exponent": _fit(ks, costs)}
        ru_self, ru_kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        out["getrusage_peak_rss_mb"] = {"self": round(ru_self.ru_maxrss / 1e3, 1),
                                        "children": round(ru_kids.ru_maxrss / 1e3, 1)}
        return out
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def report(r: dict[str, Any]) -> str:
    """The printed form of one :func:`run` result."""
    lb, rd, ours, b, inc = r["lower_bound"], r["read_decode"], r["ours"], r["bytes"], r["incremental"]
    lines = [
        f"== {r['profile']}: {r['episodes']} episodes, {r['workers']} workers",
        f"  lower bound (read + copy JPEG bytes / PNG-encode raw): {lb['seconds']:.2f} s, "
        f"{lb['camera_frames'] / lb['seconds']:.0f} camera frames/s, {r['episodes'] / lb['seconds']:.2f} episodes/s, "
        f"peak RSS {lb['peak_rss_mb']}",
        f"  read + decode every frame (+ the above):               {rd['seconds']:.2f} s, "
        f"{rd['camera_frames'] / rd['seconds']:.0f} camera frames/s",
        f"  ours (convert_partition):                              {ours['seconds']:.2f} s, "
        f"{ours['camera_frames_per_s']:.0f} camera frames/s, {ours['frames_per_s']:.0f} synchronised frames/s, "
        f"{ours['episodes_per_s']:.2f} episodes/s, peak RSS {ours['peak_rss_mb']}",
        f"  converted {ours['converted']}, failed {ours['failed']}, flagged as duplicates {ours['duplicates_flagged']} "
        "(copies: expected)",
        f"  RATIO ours / lower bound (throughput): {r['ratio_vs_lower_bound']:.2f}   (target >= 0.5)",
        f"  ratio ours / read+decode:              {r['ratio_vs_read_decode']:.2f}",
        f"  bytes: raw MCAP {_mb(b['raw_mcap'])} MB, HDF5 {_mb(b['hdf5'])} MB ({b['hdf5_over_raw']:.2f} x raw); "
        f"camera bytes stored by the lower bound {_mb(b['camera_bytes_stored_by_lower_bound'])} MB",
        "  incremental (one episode landed at a time):",
    ]
    for s in inc["steps"]:
        lines.append(f"    k={s['k']:3d}  convert {s['convert_s']:.2f} s (ingest {s['ingest_s']:.2f} s)  converted "
                     f"{len(s['converted'])}, reused {s['reused']}, manifest lists {s['episodes_in_manifest']}")
    ce, pe = inc["cumulative_exponent"], inc["per_episode_exponent"]
    lines.append(f"  EXPONENT cumulative cost vs k: {ce if ce is None else round(ce, 3)}   (target <= 1.1; 2 = quadratic)")
    lines.append(f"  exponent cost of the k-th episode vs k: {pe if pe is None else round(pe, 3)}   (0 = flat)")
    lines.append(f"  getrusage peak RSS (lifetime, MB): {r['getrusage_peak_rss_mb']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profiles", default="default,unitree_h1_3cam", help="comma-separated: default, unitree_h1_3cam")
    ap.add_argument("--episodes", type=int, default=4, help="episodes of the throughput partition (default 4)")
    ap.add_argument("--incremental", type=int, default=6, help="episodes landed one at a time (default 6)")
    ap.add_argument("--workers", type=int, default=None, help="conversion processes (default min(2, CPUs))")
    ap.add_argument("--sources", type=int, default=2, help="distinct recordings per profile (default 2)")
    ap.add_argument("--duration", type=float, default=4.5, help="simulated episode length, s (H1; default 4.5)")
    ap.add_argument("--work", type=Path, default=None, help="keep the lakes here (default: a removed temp dir)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    a = ap.parse_args(argv)
    results = []
    for name in [p.strip() for p in a.profiles.split(",") if p.strip()]:
        prof = PROFILES.get(name, name)
        r = run(prof, a.episodes, incremental=a.incremental, workers=a.workers, sources=a.sources,
                duration_s=a.duration, work=None if a.work is None else a.work / name)
        print(report(r), flush=True)
        results.append(r)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
