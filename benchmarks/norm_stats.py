"""Benchmark: column-wise norm stats (ours) vs the openpi way (frame-by-frame LeRobotDataset).

Usage::

    .venv/bin/python benchmarks/norm_stats.py                    # build a synthetic release, then time
    .venv/bin/python benchmarks/norm_stats.py --root DIR --repo-id org/name   # time an existing release

In ONE invocation it times

(a) ours: :func:`hvla_platform.lib.formats.norm_stats.compute_norm_stats` (pyarrow columns of the train
    rows, numpy mean/std/exact quantiles, no video decoding);
(b) the reference, the way openpi's ``scripts/compute_norm_stats.py`` consumes a LeRobot
    dataset: ``LeRobotDataset.__getitem__`` frame by frame over the train frames (which decodes
    every camera's video frame), accumulating ``observation.state`` and ``action`` into
    :class:`ReferenceRunningStats` -- OUR OWN re-implementation of openpi's ``RunningStats``
    semantics (mean and std from running sums, std = sqrt(E[x^2] - mean^2); q01/q99 from a
    5000-bin histogram per dimension over the running [min, max], re-binned when the range grows),
    written for this benchmark, not openpi's code;

and prints both times, the speedup, the largest relative mean/std difference and the largest
q01/q99 difference in units of the reference's histogram bin width ``(max - min) / 5000``.
Targets: >= 100x faster, mean/std within 1e-5 relative, quantiles within one bin.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hvla_platform.lib.core.compat import import_lerobot_dataset  # noqa: E402
from hvla_platform.lib.formats.norm_stats import compute_norm_stats  # noqa: E402

NUM_BINS = 5000
KEYS = {"state": "observation.state", "actions": "action"}


class ReferenceRunningStats:
    """openpi-style running statistics (reference for this benchmark; our own code).

    ``update(batch)`` takes (B, D); the histogram of each dimension spans the running
    [min, max] with :data:`NUM_BINS` equal bins. When a batch widens the range, the existing
    counts are re-binned into the new edges by placing each old bin's count at its left edge
    (openpi's approximation); quantile q is the left edge of the first bin whose cumulative count
    reaches ``q * count``.
    """

    def __init__(self) -> None:
        self.count = 0
        self.sum: np.ndarray | None = None
        self.sumsq: np.ndarray | None = None
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None
        self.hist: np.ndarray | None = None  # (D, NUM_BINS)
        self.edges: np.ndarray | None = None  # (D, NUM_BINS + 1)

    def _edges(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        hi = np.where(hi > lo, hi, lo + 1e-10)
        return np.linspace(lo, hi, NUM_BINS + 1, axis=1)

    def update(self, batch: np.ndarray) -> None:
        x = np.asarray(batch, dtype=np.float64).reshape(-1, batch.shape[-1])
        d = x.shape[1]
        bmin, bmax = x.min(0), x.max(0)
        if self.count == 0:
            self.sum, self.sumsq = np.zeros(d), np.zeros(d)
            self.min, self.max = bmin, bmax
            self.edges = self._edges(self.min, self.max)
            self.hist = np.zeros((d, NUM_BINS))
        else:
            new_min, new_max = np.minimum(self.min, bmin), np.maximum(self.max, bmax)
            grown = (new_min < self.min) | (new_max > self.max)
            if grown.any():
                new_edges = self._edges(new_min, new_max)
                for i in np.flatnonzero(grown):
                    self.hist[i], _ = np.histogram(self.edges[i, :-1], bins=new_edges[i], weights=self.hist[i])
                    self.edges[i] = new_edges[i]
                self.min, self.max = new_min, new_max
        for i in range(d):
            h, _ = np.histogram(x[:, i], bins=self.edges[i])
            self.hist[i] += h
        self.count += x.shape[0]
        self.sum += x.sum(0)
        self.sumsq += (x * x).sum(0)

    def stats(self) -> dict[str, np.ndarray]:
        """mean, std, q01, q99 and the final bin width, each (D,) float64."""
        mean = self.sum / self.count
        std = np.sqrt(np.maximum(self.sumsq / self.count - mean * mean, 0.0))
        cum = np.cumsum(self.hist, axis=1)
        q = {}
        for name, p in (("q01", 0.01), ("q99", 0.99)):
            idx = np.array([np.searchsorted(cum[i], p * self.count, side="left") for i in range(cum.shape[0])])
            q[name] = self.edges[np.arange(cum.shape[0]), np.minimum(idx, NUM_BINS)]
        bin_width = (self.edges[:, -1] - self.edges[:, 0]) / NUM_BINS
        return {"mean": mean, "std": std, **q, "bin_width": bin_width}


def histogram_quantiles(x: np.ndarray) -> dict[str, np.ndarray]:
    """q01/q99 from ONE 5000-bin histogram per dim over the final [min, max] (no re-binning):
    isolates the histogram discretisation from the streaming re-binning drift."""
    out: dict[str, np.ndarray] = {"q01": np.empty(x.shape[1]), "q99": np.empty(x.shape[1]),
                                  "bin_width": np.empty(x.shape[1])}
    for i in range(x.shape[1]):
        lo, hi = x[:, i].min(), x[:, i].max()
        hi = hi if hi > lo else lo + 1e-10
        edges = np.linspace(lo, hi, NUM_BINS + 1)
        cum = np.cumsum(np.histogram(x[:, i], bins=edges)[0])
        for name, p in (("q01", 0.01), ("q99", 0.99)):
            out[name][i] = edges[min(np.searchsorted(cum, p * x.shape[0], side="left"), NUM_BINS)]
        out["bin_width"][i] = (hi - lo) / NUM_BINS
    return out


def build_release(work: Path, episodes: int, frames: int, height: int, width: int, repo_id: str):
    from hvla_platform.lib.dataset.lerobot_release import build_lerobot_dataset
    from hvla_platform.lib.dataset.spec import ReleaseSpec
    from hvla_platform_tests.lib.episode_factory import write_episodes

    t0 = time.perf_counter()
    paths = write_episodes(work / "h5", episodes, num_frames=frames, height=height, width=width)
    t1 = time.perf_counter()
    spec = ReleaseSpec.from_mapping({"name": "bench", "repo_id": repo_id, "fps": 20,
                                     "heldout": {"fraction": 0.25, "seed": 0}})
    res = build_lerobot_dataset(spec, paths, work / "lerobot")
    t2 = time.perf_counter()
    print(f"built {episodes} episodes x {frames} frames, 2 cameras {height}x{width}: "
          f"HDF5 {t1 - t0:.1f} s, LeRobot {t2 - t1:.1f} s", flush=True)
    return res.root, res.train_episode_indices


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, help="existing LeRobot release (with meta/hvla_episodes.parquet)")
    ap.add_argument("--repo-id", default="hvla/bench-norm-stats")
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32, help="reference: frames per RunningStats.update")
    ap.add_argument("--video-backend", default="torchcodec")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    tmp = None
    if args.root is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-norm-")
        root, train = build_release(Path(tmp.name), args.episodes, args.frames, args.height, args.width,
                                    args.repo_id)
    else:
        from hvla_platform.lib.dataset.lerobot_release import read_hvla_episodes

        root = args.root
        train = [r["episode_index"] for r in read_hvla_episodes(root) if r["split"] == "train"]

    # (a) ours
    t0 = time.perf_counter()
    ours = compute_norm_stats(root, train_episode_indices=train)
    t_ours = time.perf_counter() - t0

    # (b) reference: frame by frame through LeRobotDataset (decodes video), openpi-style stats
    LeRobotDataset = import_lerobot_dataset()
    import datasets

    datasets.disable_progress_bars()
    t0 = time.perf_counter()
    ds = LeRobotDataset(args.repo_id, root=root, episodes=train, video_backend=args.video_backend)
    ref = {k: ReferenceRunningStats() for k in KEYS}
    buf: dict[str, list[np.ndarray]] = {k: [] for k in KEYS}
    seen: dict[str, list[np.ndarray]] = {k: [] for k in KEYS}  # for the final-range histogram only
    n = 0
    for i in range(len(ds)):
        item = ds[i]
        if int(item["episode_index"]) not in train:
            raise RuntimeError("reference iterated a non-train frame")
        for k, col in KEYS.items():
            buf[k].append(item[col].numpy())
        n += 1
        if len(buf["state"]) == args.batch:
            for k in KEYS:
                batch = np.stack(buf[k])
                ref[k].update(batch)
                seen[k].append(batch.astype(np.float64))
                buf[k] = []
    if buf["state"]:
        for k in KEYS:
            ref[k].update(np.stack(buf[k]))
            seen[k].append(np.stack(buf[k]).astype(np.float64))
    t_ref = time.perf_counter() - t0
    if n != ours.num_frames:
        raise RuntimeError(f"reference saw {n} frames, ours {ours.num_frames}")

    worst = {"mean_rel": 0.0, "std_rel": 0.0, "q_bins": 0.0, "q_range": 0.0, "q_bins_final": 0.0,
             "icdf_bins_final": 0.0, "icdf_bins": 0.0}
    for k in KEYS:
        r, o = ref[k].stats(), ours.stats[k]
        x = np.concatenate(seen[k])
        h = histogram_quantiles(x)
        # the same exact quantiles under the inverted-CDF definition (smallest x with F(x) >= q),
        # which is what a histogram's "first bin reaching q * count" approximates
        icdf = np.quantile(x, [0.01, 0.99], axis=0, method="inverted_cdf")
        for j, q in enumerate(("q01", "q99")):
            worst["icdf_bins_final"] = max(worst["icdf_bins_final"], float(np.max(np.abs(icdf[j] - h[q]) / h["bin_width"])))
            worst["icdf_bins"] = max(worst["icdf_bins"], float(np.max(np.abs(icdf[j] - r[q]) / r["bin_width"])))
        for q in ("q01", "q99"):
            worst["q_bins_final"] = max(worst["q_bins_final"], float(np.max(np.abs(o[q] - h[q]) / h["bin_width"])))
            worst["q_range"] = max(worst["q_range"], float(np.max(np.abs(o[q] - r[q]) / (r["bin_width"] * NUM_BINS))))
        worst["mean_rel"] = max(worst["mean_rel"], float(np.max(np.abs(o["mean"] - r["mean"]) /
                                                               np.maximum(np.abs(r["mean"]), 1e-12))))
        worst["std_rel"] = max(worst["std_rel"], float(np.max(np.abs(o["std"] - r["std"]) /
                                                             np.maximum(np.abs(r["std"]), 1e-12))))
        for q in ("q01", "q99"):
            worst["q_bins"] = max(worst["q_bins"], float(np.max(np.abs(o[q] - r[q]) / r["bin_width"])))
    out = {
        "root": str(root), "train_frames": n, "train_episodes": len(train),
        "ours_s": t_ours, "reference_s": t_ref, "speedup": t_ref / t_ours,
        "max_rel_diff_mean": worst["mean_rel"], "max_rel_diff_std": worst["std_rel"],
        "max_quantile_diff_bins": worst["q_bins"],
        "max_quantile_diff_range_fraction": worst["q_range"],
        "max_quantile_diff_bins_final_range_histogram": worst["q_bins_final"],
        "inverted_cdf_diff_bins_final_range_histogram": worst["icdf_bins_final"],
        "inverted_cdf_diff_bins_streaming": worst["icdf_bins"],
    }
    print(f"train frames: {n} in {len(train)} episodes")
    print(f"ours (column-wise Parquet):        {t_ours * 1000:9.1f} ms")
    print(f"reference (LeRobotDataset frames): {t_ref * 1000:9.1f} ms")
    print(f"speedup:                           {t_ref / t_ours:9.1f} x   (target >= 100x)")
    print(f"max relative diff mean / std:      {worst['mean_rel']:.2e} / {worst['std_rel']:.2e}   (target <= 1e-5)")
    print(f"max q01/q99 diff vs streaming ref: {worst['q_bins']:.3f} bins = {worst['q_range']:.2e} of the range"
          "   (openpi-style re-binning drift included)")
    print(f"max q01/q99 diff vs one histogram: {worst['q_bins_final']:.3f} bins over the final range   (target <= 1)")
    print(f"  same with np.quantile(method='inverted_cdf'): {worst['icdf_bins_final']:.3f} bins vs one histogram, "
          f"{worst['icdf_bins']:.3f} bins vs streaming ref")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return out


if __name__ == "__main__":
    main()
