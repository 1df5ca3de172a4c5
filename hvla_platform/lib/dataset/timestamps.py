"""The written LeRobot release's timing, checked on its parquet (``lerobot_dataset``'s
``timestamps_regular`` asset check; our counterpart of lerobot-doctor's Temporal Consistency group)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq


def check_lerobot_timestamps(dataset_root: str | os.PathLike[str], *, tolerance: float = 0.5) -> dict[int, dict[str, Any]]:
    """Dataset-level timing check on a written LeRobot dataset's parquet (our counterpart of
    doctor's Temporal Consistency group): per ``episode_index``, ``timestamp`` must start at 0 and
    step by ``1/fps`` (± ``tolerance``/fps), ``frame_index`` must be ``0..n-1``, and the global
    ``index`` must continue the previous episode's.

    Returns ``{episode_index: {"passed", "detail", "frames"}}`` with ``frames`` the frame indices
    *before* each bad step (doctor's convention). The pipeline runs it on every release it writes
    (``lerobot_dataset``'s ``timestamps_regular`` check): it resamples onto a uniform grid, so this
    guards the writer, not the recordings.

    Raises:
        FileNotFoundError: no ``meta/info.json`` or no data parquet.
    """
    root = Path(dataset_root)
    info = json.loads((root / "meta" / "info.json").read_text())
    fps = float(info["fps"])
    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no data parquet under {root / 'data'}")
    cols = ["episode_index", "frame_index", "timestamp", "index"]
    tables = [pq.read_table(f, columns=cols).to_pandas() for f in files]
    df = pd.concat(tables, ignore_index=True).sort_values(["episode_index", "index"], kind="stable")
    out: dict[int, dict[str, Any]] = {}
    next_index = 0
    dt = 1.0 / fps
    for ep, g in df.groupby("episode_index", sort=True):
        ts = g["timestamp"].to_numpy(np.float64)
        fi = g["frame_index"].to_numpy(np.int64)
        idx = g["index"].to_numpy(np.int64)
        problems: list[str] = []
        frames: list[int] = []
        steps = np.diff(ts)
        bad = np.where(np.abs(steps - dt) > tolerance * dt)[0]
        if len(ts) and abs(ts[0]) > tolerance * dt:
            problems.append(f"first timestamp {ts[0]:.3f} s, not 0")
        if bad.size:
            frames += [int(fi[i]) for i in bad]
            worst = int(bad[np.argmax(np.abs(steps[bad] - dt))])
            problems.append(f"{bad.size} timestamp step(s) off 1/fps={dt:.4f} s, largest {steps[worst]:+.3f} s "
                            f"after frame {int(fi[worst])}")
        if not np.array_equal(fi, np.arange(len(fi))):
            problems.append("frame_index is not 0..n-1")
        if not np.array_equal(idx, np.arange(next_index, next_index + len(idx))):
            problems.append(f"index does not continue from {next_index}")
        next_index = int(idx[-1]) + 1 if len(idx) else next_index
        out[int(ep)] = {"passed": not problems,
                        "detail": "; ".join(problems) or f"{len(ts)} frames at 1/{fps:g} s",
                        "frames": sorted(set(frames))}
    return out
