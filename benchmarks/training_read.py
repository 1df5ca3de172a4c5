"""Benchmark: the training read path (Robo-DM cache → frame store → prefetched minibatches) against
``LeRobotDataset`` + ``torch.utils.data.DataLoader`` on the same release.

Usage::

    .venv/bin/python benchmarks/training_read.py                 # demo release, 10x for flatness
    .venv/bin/python benchmarks/training_read.py --batches 100 --scale 10 --workers 2

In ONE invocation:

1. **release**: the demo's committed G1 recordings (``data/recordings``, 8 episodes, 2 cameras
   96 × 128 at 20 fps) are landed, ingested and converted to HDF5 in a temporary lake, the demo's
   release spec (``releases/g1-reach-v1.yaml``) is built with the platform
   (:func:`~hvla_platform.lib.dataset.build.build_release`) and its Robo-DM cache with
   :func:`~hvla_platform.lib.dataset.robodm_build.build_cache` (from the HDF5 frames); printed:
   cache bytes / release bytes.
2. **reference**: ``LeRobotDataset(repo_id, root, episodes=<train split>, delta_timestamps={"action":
   [k / fps for k < H]}, video_backend=DEFAULT_VIDEO_BACKEND)`` (the platform's backend,
   torchcodec) in a shuffled ``DataLoader(batch_size=B, num_workers=W)``: both cameras, the same
   batch size and action horizon as training (32, 10); frames/s over ``--batches`` batches after
   the first (workers started).
3. **ours**: :func:`~hvla_platform.lib.training.frame_store.open_frame_store` of the cache's train
   split (built once per cache version; its time is printed separately) and
   :class:`~hvla_platform.lib.training.frame_store.BatchPrefetcher` over shuffled epochs, same
   batch size, cameras and horizon; frames/s over ``5 × --batches`` batches after the first.
4. **flatness**: the cache made ``--scale`` × larger by repeating its episodes under new episode
   ids (``.vla`` files copied, manifest rows added: the bytes a 10 × release's cache would have,
   not new recordings), then ours again, and the previous in-RAM path (``load_split`` +
   ``stack_frames``) at 1 × and ``--scale`` ×: peak RSS of each.

Every measurement runs in its own fresh Python process (peak RSS = that process's ``ru_maxrss``;
the reference adds its DataLoader workers' peak). ``run(...) -> dict`` returns everything printed
(``benchmarks/scale.py`` imports it). On a busy shared machine compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

TARGET_RATIO = 10.0
BATCH_SIZE = 32
HORIZON = 10


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _rss_now_mb() -> float:
    return _status_mb("VmRSS")


def _peaks() -> dict[str, float]:
    """This process's peak RSS (``VmHWM``: reset by ``exec``, unlike ``ru_maxrss``, which a child
    started by ``subprocess`` inherits from the forking parent) and the largest peak of its
    terminated child processes (``ru_maxrss`` of ``RUSAGE_CHILDREN``: the DataLoader workers, which
    are forked from it and so include its pages at fork time)."""
    return {"peak_rss_mb": _status_mb("VmHWM"),
            "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


# ----------------------------------------------------------------------------- children

def _child_reference(a: dict[str, Any]) -> dict[str, Any]:
    import torch  # noqa: F401  (imported before the baseline, like LeRobot does)
    from torch.utils.data import DataLoader

    from hvla_platform.lib.core.compat import import_lerobot_dataset
    from hvla_platform.lib.dataset.lerobot_release import DEFAULT_VIDEO_BACKEND

    LeRobotDataset = import_lerobot_dataset()
    base = _rss_now_mb()
    fps = a["fps"]
    ds = LeRobotDataset(a["repo_id"], root=a["root"], episodes=a["episodes"], video_backend=DEFAULT_VIDEO_BACKEND,
                        delta_timestamps={"action": [k / fps for k in range(a["horizon"])]})
    dl = DataLoader(ds, batch_size=a["batch_size"], shuffle=True, num_workers=a["workers"], drop_last=False,
                    persistent_workers=a["workers"] > 0)
    it = iter(dl)
    n, t0, first = 0, None, None

    def batches():
        nonlocal it
        while True:
            try:
                yield next(it)
            except StopIteration:
                it = iter(dl)

    gen = batches()
    for k in range(a["batches"] + 1):
        b = next(gen)
        if k == 0:
            t0 = time.perf_counter()
            first = {key: list(b[key].shape) for key in b if hasattr(b[key], "shape")}
            continue
        n += int(b["action"].shape[0])
    dt = time.perf_counter() - t0
    del gen, it, dl
    return {"frames": n, "seconds": dt, "frames_per_s": n / dt, "baseline_rss_mb": base, "batch_shapes": first,
            "video_backend": DEFAULT_VIDEO_BACKEND, **_peaks()}


def _child_ours(a: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from hvla_platform.lib.training.frame_store import BatchPrefetcher, epoch_batches, open_frame_store

    base = _rss_now_mb()
    t = time.perf_counter()
    store = open_frame_store(a["cache"], a["store_root"], split="train")
    build_s = time.perf_counter() - t
    after_build = _peaks()["peak_rss_mb"]
    n_frames = store.num_frames
    # one epoch including the store build (what a first run pays)
    t = time.perf_counter()
    with BatchPrefetcher(store, epoch_batches(n_frames, a["batch_size"], np.random.default_rng(0)),
                         a["horizon"]) as pf:
        epoch = sum(len(b.index) for b in pf)
    epoch_s = time.perf_counter() - t
    rng = np.random.default_rng(1)
    pf = BatchPrefetcher(store, epoch_batches(n_frames, a["batch_size"], rng, epochs=10**9), a["horizon"])
    n, t0, shapes = 0, None, None
    for k in range(a["batches"] + 1):
        b = next(pf)
        if k == 0:
            t0 = time.perf_counter()
            shapes = {"state": list(b.state.shape), "chunks": list(b.chunks.shape),
                      **{f"images.{c}": list(v.shape) for c, v in b.images.items()}}
            continue
        n += len(b.index)
    dt = time.perf_counter() - t0
    pf.close()
    store_bytes = sum(p.stat().st_size for p in store.root.iterdir())
    store.close()
    return {"frames": n, "seconds": dt, "frames_per_s": n / dt, "store_build_s": build_s,
            "store_frames": n_frames, "store_bytes": store_bytes, "first_epoch_frames_per_s_with_build":
            epoch / (build_s + epoch_s), "baseline_rss_mb": base, "peak_rss_after_build_mb": after_build,
            "batch_shapes": shapes, "max_ahead": pf.max_ahead, **_peaks()}


def _child_in_ram(a: dict[str, Any]) -> dict[str, Any]:
    from hvla_platform.lib.training.data import load_split, stack_frames

    base = _rss_now_mb()
    t = time.perf_counter()
    frames = stack_frames(load_split(a["cache"], "train"), a["horizon"])
    dt = time.perf_counter() - t
    return {"frames": frames.num_frames, "load_s": dt, "baseline_rss_mb": base, **_peaks()}


CHILDREN = {"reference": _child_reference, "ours": _child_ours, "in_ram": _child_in_ram}


def _in_child(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; its JSON result."""
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind, json.dumps(args)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{kind} measurement failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- setup

def build_demo_release(work: Path) -> dict[str, Any]:
    """The demo's release and Robo-DM cache in a fresh lake under ``work``."""
    from hvla_platform.lib.core.lake import LocalLake
    from hvla_platform.lib.core.manifest import LeRobotDatasetManifest, RoboDMCacheManifest, require_manifest
    from hvla_platform.lib.dataset.build import build_release
    from hvla_platform.lib.dataset.releases import lerobot_prefix, register_release
    from hvla_platform.lib.dataset.robodm_build import build_cache, robodm_prefix
    from hvla_platform_tests.fixtures.lakes import land_and_convert

    lake = LocalLake(work / "lake")
    t = time.perf_counter()
    recordings = REPO_ROOT / "data" / "recordings"
    for day in sorted(p.name for p in recordings.iterdir() if p.is_dir()):
        for robot in sorted(p.name for p in (recordings / day).iterdir() if p.is_dir()):
            land_and_convert(lake, recordings / day / robot, day, robot)
    t_ingest = time.perf_counter() - t
    spec = register_release(lake, (REPO_ROOT / "releases" / "g1-reach-v1.yaml").read_text())
    t = time.perf_counter()
    rel = build_release(lake, spec)
    t_release = time.perf_counter() - t
    spec = rel.spec
    src = require_manifest(lake, lerobot_prefix(spec), LeRobotDatasetManifest)
    t = time.perf_counter()
    build_cache(lake, spec)
    t_cache = time.perf_counter() - t
    cm = require_manifest(lake, robodm_prefix(spec.name), RoboDMCacheManifest)
    root = lake.path(lerobot_prefix(spec))
    return {"lake": lake, "spec": spec, "root": root, "cache": lake.path(robodm_prefix(spec.name)),
            "train_indices": list(src.train_episode_indices), "fps": int(src.fps), "num_frames": src.num_frames,
            "cache_manifest": cm, "seconds": {"ingest": t_ingest, "release": t_release, "cache": t_cache}}


def scaled_cache(cache: Path, out: Path, scale: int) -> Path:
    """``cache`` with every episode repeated ``scale`` times under new ids (``<id>-r<k>``), as a
    cache directory the training read path accepts (same ``manifest.parquet`` schema)."""
    from hvla_platform.lib.formats.robodm_manifest import read_cache_manifest, write_cache_manifest

    rows = read_cache_manifest(cache)
    out.mkdir(parents=True)
    new = []
    for k in range(scale):
        for r in rows:
            idx = k * len(rows) + int(r["source_episode_index"])
            name = f"episode_{idx:06d}.vla"
            shutil.copyfile(cache / Path(r["vla_path"]).name, out / name)
            new.append({**r, "vla_path": name, "source_episode_index": idx,
                        "episode_id": f"{r['episode_id']}-r{k}"})
    write_cache_manifest(out, new)
    return out


def _tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- run

def run(*, batches: int = 100, scale: int = 10, workers: int = 2, batch_size: int = BATCH_SIZE,
        horizon: int = HORIZON, work: Path | None = None) -> dict[str, Any]:
    """Build the demo release and its cache, measure the reference and ours; returns the results.

    Keys: ``release`` (frames, bytes, cache bytes, ``bytes_ratio``, build seconds), ``reference``,
    ``ours``, ``ours_scaled``, ``in_ram``, ``in_ram_scaled`` (per measurement: frames/s or load
    time, peak RSS MB), ``ratio`` (ours / reference frames/s) and ``target_met``.
    """
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="hvla-bench-read-")) if own else Path(work)
    try:
        rel = build_demo_release(work)
        cm = rel["cache_manifest"]
        release_bytes = _tree_bytes(rel["root"])
        common = {"batch_size": batch_size, "horizon": horizon}
        ref = _in_child("reference", {**common, "repo_id": rel["spec"].repo_id, "root": str(rel["root"]),
                                      "episodes": rel["train_indices"], "fps": rel["fps"], "batches": batches,
                                      "workers": workers})
        ours = _in_child("ours", {**common, "cache": str(rel["cache"]), "store_root": str(work / "stores"),
                                  "batches": 5 * batches})
        big = scaled_cache(rel["cache"], work / "cache-x", scale)
        ours_big = _in_child("ours", {**common, "cache": str(big), "store_root": str(work / "stores-x"),
                                      "batches": 5 * batches})
        ram = _in_child("in_ram", {**common, "cache": str(rel["cache"])})
        ram_big = _in_child("in_ram", {**common, "cache": str(big)})
        return {
            "release": {"episodes": cm.num_episodes, "frames": rel["num_frames"],
                        "train_frames": ours["store_frames"], "release_bytes": release_bytes,
                        "cache_bytes": cm.bytes, "bytes_ratio": cm.bytes / release_bytes,
                        "manifest_bytes_ratio": cm.bytes_ratio, "codec": cm.config["video_codec"],
                        "roundtrip_ok": bool(cm.roundtrip.get("ok")), "seconds": rel["seconds"],
                        "scaled_cache_bytes": _tree_bytes(big), "scale": scale},
            "config": {"batch_size": batch_size, "horizon": horizon, "workers": workers, "batches": batches,
                       "cameras": list(rel["spec"].cameras)},
            "reference": ref, "ours": ours, "ours_scaled": ours_big, "in_ram": ram, "in_ram_scaled": ram_big,
            "ratio": ours["frames_per_s"] / ref["frames_per_s"],
            "ratio_scaled": ours_big["frames_per_s"] / ref["frames_per_s"],
            "target_met": ours["frames_per_s"] >= TARGET_RATIO * ref["frames_per_s"],
        }
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def print_result(r: dict[str, Any]) -> None:
    """Print :func:`run`'s result."""
    rel, cfg = r["release"], r["config"]
    ref, ours, big, ram, ram_big = r["reference"], r["ours"], r["ours_scaled"], r["in_ram"], r["in_ram_scaled"]
    print(f"release: {rel['episodes']} episodes, {rel['frames']} frames ({rel['train_frames']} train), cameras "
          f"{cfg['cameras']}; built in ingest {rel['seconds']['ingest']:.1f} s, release {rel['seconds']['release']:.1f} s, "
          f"Robo-DM cache {rel['seconds']['cache']:.1f} s (from the HDF5 frames, {rel['codec']}, round trip ok: "
          f"{rel['roundtrip_ok']})")
    print(f"bytes: release {rel['release_bytes'] / 1e6:.2f} MB, Robo-DM cache {rel['cache_bytes'] / 1e6:.2f} MB "
          f"-> cache / release = {rel['bytes_ratio']:.2f} x (manifest says {rel['manifest_bytes_ratio']}); frame "
          f"store of the train split {ours['store_bytes'] / 1e6:.1f} MB (decoded, local)")
    print(f"batch {cfg['batch_size']}, action horizon {cfg['horizon']}:")
    print(f"  reference LeRobotDataset + DataLoader ({cfg['workers']} workers, {ref['video_backend']}): "
          f"{ref['frames_per_s']:,.0f} frames/s; peak RSS {ref['peak_rss_mb']:.0f} MB + workers "
          f"{ref['children_peak_rss_mb']:.0f} MB")
    print(f"  ours (frame store + prefetch):  {ours['frames_per_s']:,.0f} frames/s; peak RSS {ours['peak_rss_mb']:.0f} MB "
          f"(baseline after imports {ours['baseline_rss_mb']:.0f} MB); store built once in {ours['store_build_s']:.2f} s; "
          f"first epoch incl. the build {ours['first_epoch_frames_per_s_with_build']:,.0f} frames/s")
    print(f"  RATIO ours / reference = {r['ratio']:.1f} x (target >= {TARGET_RATIO:.0f}: "
          f"{'met' if r['target_met'] else 'NOT met'})")
    print(f"flatness ({rel['scale']} x release by repeating its episodes, cache {rel['scaled_cache_bytes'] / 1e6:.1f} MB, "
          f"{big['store_frames']} train frames):")
    print(f"  ours:   peak RSS {ours['peak_rss_mb']:.0f} MB at 1 x -> {big['peak_rss_mb']:.0f} MB at {rel['scale']} x "
          f"({big['frames_per_s']:,.0f} frames/s, ratio {r['ratio_scaled']:.1f} x)")
    print(f"  in-RAM path (load_split + stack_frames, before): peak RSS {ram['peak_rss_mb']:.0f} MB at 1 x -> "
          f"{ram_big['peak_rss_mb']:.0f} MB at {rel['scale']} x")


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(json.dumps(CHILDREN[argv[1]](json.loads(argv[2]))))
        return None
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=100, help="reference batches timed (ours: 5x)")
    p.add_argument("--scale", type=int, default=10, help="size of the larger cache, x the release")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers of the reference")
    p.add_argument("--json", type=Path, help="also write the result here")
    a = p.parse_args(argv)
    r = run(batches=a.batches, scale=a.scale, workers=a.workers)
    print_result(r)
    if a.json:
        a.json.write_text(json.dumps(r, indent=1, default=str))
    return r


if __name__ == "__main__":
    main()
