"""openpi norm stats of an exported (v2.1, train-only) dataset, as openpi's ``compute_norm_stats``
sees the data: state per frame, actions per **action chunk** element, absolute or delta.

openpi (``scripts/compute_norm_stats.py``) loads ``LeRobotDataset(repo_id, delta_timestamps={
"action": [t / fps for t in range(action_horizon)]})``, applies the config's repack and data
transforms and feeds every batch to ``RunningStats``, which flattens all leading axes: the
``state`` statistics count each frame once, the ``actions`` statistics count each of the
``action_horizon`` elements of each frame's chunk. LeRobot pads a chunk past the episode end by
repeating the episode's last frame (its query indices are clamped to the episode), so the last
frames' chunks repeat the last action. openpi's joint-space configs then apply
``DeltaActions(mask)``: ``actions[..., :L] -= where(mask, state[..., :L], 0)`` for every chunk
element, with the **current** frame's state (``transforms.py``), in float32.

``DeltaActions`` pairs action dimension ``i`` with state dimension ``i``. Our actions are arm joint
targets and our state starts with other joints (the G1's waist), so the state must be reordered
before it: :func:`delta_layout` gives the order (``state_order``: first the state joint of each
action joint, by name, in action order; then the other state joints in release order) and the mask
(``True`` where the action joint has a state joint of the same name). The policy's input transform
applies ``state = state[..., state_order]`` (docs/training.md, "openpi: training on a release"),
so both norm-stats files describe that reordered state.

Differences from running openpi's script on the export (docs/training.md): every frame is counted
(openpi drops the last ``len % batch_size`` frames: ``num_batches = len // batch_size`` without
shuffling); q01/q99 are exact inverted-CDF quantiles
(:mod:`hvla_platform.lib.formats.norm_stats_stream`) where openpi approximates them with a 5000-bin
histogram; std is the same population std computed without ``E[x^2] - mean^2`` cancellation.

Memory: the chunk vectors are written episode by episode to a scratch Parquet file (``T x H x A``
float32 twice per episode in memory), whose statistics are streamed by
:func:`~hvla_platform.lib.formats.norm_stats_stream.stream_train_stats` in bounded memory; the
scratch file holds ``N x H x A x 8`` bytes (N frames).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hvla_platform.lib.core import features
from hvla_platform.lib.formats.norm_stats_stream import NormStatsError, fixed_list_to_numpy, stream_train_stats

ABSOLUTE, DELTA = "absolute", "delta"


@dataclass(frozen=True)
class DeltaLayout:
    """How openpi's ``DeltaActions`` lines up our state with our actions.

    Attributes:
        state_order: indices into ``observation.state`` (D,): the policy's ``state`` is
            ``observation.state[..., state_order]``.
        state_names: joint names in that order.
        mask: openpi's ``DeltaActions`` mask (L ≤ A booleans): action dim ``i`` becomes
            ``action[i] - state[i]`` where true (state in ``state_order``), stays absolute where false.
    """

    state_order: list[int]
    state_names: list[str]
    mask: list[bool]


def delta_layout(state_names: list[str], action_names: list[str]) -> DeltaLayout:
    """The state order and delta mask that make openpi's positional ``DeltaActions`` subtract, from
    each action joint target, the current position of the state joint **of the same name**.

    Positions ``0..L-1`` of the reordered state follow the actions (L = last action dim with a
    same-named state joint, + 1): a matched action dim gets its joint; an unmatched one (mask
    false, e.g. a gripper command) gets the next state joint no action names (it is not
    subtracted). The remaining state joints follow in release order.

    Raises:
        ValueError: no action joint has a state joint of the same name, or too few unmatched state
            joints to fill the unmatched action positions.
    """
    pos = {n: j for j, n in enumerate(state_names)}
    matched = {i: pos[a] for i, a in enumerate(action_names) if a in pos}
    if not matched:
        raise ValueError(f"no action joint {action_names} is a state joint {state_names}: delta actions undefined")
    length = max(matched) + 1
    spare = [j for j in range(len(state_names)) if j not in matched.values()]
    order: list[int] = []
    for i in range(length):
        if i in matched:
            order.append(matched[i])
        elif spare:
            order.append(spare.pop(0))
        else:
            raise ValueError(f"action dim {i} ({action_names[i]}) has no state joint and no spare state joint "
                             "is left to hold its place")
    order += [j for j in range(len(state_names)) if j not in order]
    return DeltaLayout(state_order=order, state_names=[state_names[j] for j in order],
                       mask=[i in matched for i in range(length)])


def action_chunks(actions: np.ndarray, horizon: int) -> np.ndarray:
    """Every frame's chunk of the next ``horizon`` actions, padded past the episode end with its
    last action (LeRobot's ``delta_timestamps`` query indices clamped to the episode).

    Args:
        actions: (T, A) one episode's actions.
        horizon: chunk length H ≥ 1.

    Returns:
        (T, H, A), same dtype: ``out[t, k] = actions[min(t + k, T - 1)]``.
    """
    t = actions.shape[0]
    idx = np.minimum(np.arange(t)[:, None] + np.arange(horizon)[None, :], t - 1)
    return actions[idx]


def delta_chunks(chunks: np.ndarray, state: np.ndarray, layout: DeltaLayout) -> np.ndarray:
    """openpi's ``DeltaActions`` on chunks: ``chunks[..., :L] -= where(mask, state[..., order][:L], 0)``
    with each frame's current state (float32 arithmetic as openpi's, on a copy).

    Args:
        chunks: (T, H, A) float32 absolute action chunks.
        state: (T, D) float32 ``observation.state`` (release order).
        layout: :func:`delta_layout`.

    Returns:
        (T, H, A) float32.
    """
    mask = np.asarray(layout.mask)
    dims = mask.shape[-1]
    s = state[:, layout.state_order][:, :dims]
    out = np.array(chunks, copy=True)
    out[..., :dims] -= np.expand_dims(np.where(mask, s, 0).astype(out.dtype), axis=-2)
    return out


@dataclass
class ChunkStats:
    """Result of :func:`openpi_chunk_stats`.

    Attributes:
        stats: ``{"absolute" | "delta": {"state" | "actions": {"mean" | "std" | "q01" | "q99":
            (D,) / (A,) float64}}}``: openpi ``norm_stats`` documents of the two variants.
        num_frames: frames (state vectors) counted.
        num_action_vectors: chunk elements counted (``num_frames x horizon``).
    """

    stats: dict[str, dict[str, dict[str, np.ndarray]]]
    num_frames: int
    num_action_vectors: int


def _episode_arrays(root: Path) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """Per data file (one episode each in v2.1), sorted, one at a time: (path, state (T, D),
    action (T, A)) as stored (float32)."""
    files = sorted((root / "data").rglob("*.parquet"))
    if not files:
        raise NormStatsError(f"{root}/data has no Parquet files")
    for f in files:
        t = pq.read_table(f, columns=["episode_index", "frame_index", features.STATE, features.ACTION])
        if len(set(t.column("episode_index").to_pylist())) != 1:
            raise NormStatsError(f"{f} holds more than one episode (a v2.1 data file holds one)")
        t = t.sort_by("frame_index")
        yield (f, fixed_list_to_numpy(t.column(features.STATE), features.STATE, None),
               fixed_list_to_numpy(t.column(features.ACTION), features.ACTION, None))


def openpi_chunk_stats(dataset_root: str | Path, *, horizon: int, layout: DeltaLayout,
                       scratch: str | Path | None = None) -> ChunkStats:
    """Norm stats of an exported v2.1 dataset (every episode counts: export only the train split)
    for openpi, absolute and delta (module docstring).

    ``state``: per frame, ``observation.state[..., layout.state_order]`` (the same in both
    variants). ``actions``: per chunk element of every frame's ``horizon``-chunk (padded with the
    episode's last action); absolute, or :func:`delta_chunks`.

    Args:
        dataset_root: the v2.1 dataset (``data/chunk-*/episode_*.parquet``).
        horizon: openpi's ``model.action_horizon``.
        layout: :func:`delta_layout` of the dataset's state and action names.
        scratch: directory for the scratch Parquet file (default: the system's temporary directory).

    Raises:
        NormStatsError: no data, more than one episode per file, a column missing or ragged.
        ValueError: ``horizon`` < 1.
    """
    if horizon < 1:
        raise ValueError(f"action horizon must be >= 1, got {horizon}")
    root = Path(dataset_root)
    with tempfile.TemporaryDirectory(prefix="openpi-chunks-", dir=scratch) as tmp:
        (Path(tmp) / "data").mkdir()
        writer = None
        frames = count = 0
        try:
            for e, (_, state, action) in enumerate(_episode_arrays(root)):
                chunks = action_chunks(action, horizon)
                delta = delta_chunks(chunks, state, layout)
                t, h, a = chunks.shape
                n = t * h
                cols = {
                    "episode_index": pa.array(np.full(n, e, np.int64)),
                    ABSOLUTE: pa.FixedSizeListArray.from_arrays(pa.array(chunks.reshape(-1)), a),
                    DELTA: pa.FixedSizeListArray.from_arrays(pa.array(delta.reshape(-1)), a),
                }
                table = pa.table(cols)
                if writer is None:
                    writer = pq.ParquetWriter(Path(tmp) / "data" / "chunks.parquet", table.schema)
                writer.write_table(table)
                frames += t
                count += 1
        finally:
            if writer is not None:
                writer.close()
        acts = stream_train_stats(Path(tmp), list(range(count)), {ABSOLUTE: ABSOLUTE, DELTA: DELTA})
    state_stats = stream_train_stats(root, _episode_indices(root), {"state": features.STATE}).stats["state"]
    state_stats = {k: v[layout.state_order] for k, v in state_stats.items()}
    return ChunkStats(
        stats={v: {"state": state_stats, "actions": acts.stats[v]} for v in (ABSOLUTE, DELTA)},
        num_frames=frames, num_action_vectors=acts.num_frames)


def _episode_indices(root: Path) -> list[int]:
    idx: set[int] = set()
    for f in sorted((root / "data").rglob("*.parquet")):
        idx.update(int(i) for i in pq.read_table(f, columns=["episode_index"]).column(0).to_pylist())
    return sorted(idx)


__all__ = ["ABSOLUTE", "DELTA", "ChunkStats", "DeltaLayout", "action_chunks", "delta_chunks", "delta_layout",
           "openpi_chunk_stats"]
