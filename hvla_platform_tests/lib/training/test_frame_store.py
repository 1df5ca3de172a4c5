"""The streaming training read path (frame store + prefetch) against the in-RAM path it replaces,
on a small real Robo-DM cache."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hvla_platform.lib.training.data import CacheError, load_split, stack_frames
from hvla_platform.lib.training import frame_store as fs
from hvla_platform_tests.lib.training import tiny_cache as tc

HORIZON = 10


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fs-cache")
    # episodes of different lengths, so chunks are padded at different global indices
    tc.write_cache(root / "c", [-0.9, 0.8, 0.1], ["train", "heldout", "train"], frames=23)
    tc.write_cache(root / "d", [0.4], ["train"], frames=7)
    return root / "c"


@pytest.fixture(scope="module")
def store(cache, tmp_path_factory):
    with fs.open_frame_store(cache, tmp_path_factory.mktemp("stores"), split="train") as s:
        yield s


@pytest.fixture(scope="module")
def in_ram(cache):
    return stack_frames(load_split(cache, "train"), HORIZON)


def test_store_holds_the_split_as_the_in_ram_path_does(store, in_ram):
    assert store.num_frames == in_ram.num_frames == 46
    assert store.cameras == ["head", "wrist_right"] and store.episode_ids == in_ram.episode_ids == ["ep000", "ep002"]
    assert store.camera_shapes == {"head": (96, 128, 3), "wrist_right": (96, 128, 3)}
    assert (store.state_dim, store.action_dim) == (17, 14) and store.tasks == [tc.TASK]
    files = {p.name: p.stat().st_size for p in store.root.iterdir()}
    assert files["state.f32"] == 46 * 17 * 4 and files["images-head.u8"] == 46 * 96 * 128 * 3


def test_batches_equal_the_in_ram_samples(store, in_ram):
    """Every frame, in a shuffled order with repeats: the same (state, images, chunk, mask) as
    stack_frames gives for it (the cache is rawvideo, so exactly)."""
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.permutation(46), rng.integers(0, 46, 20)])
    b = store.read_batch(idx, HORIZON)
    np.testing.assert_array_equal(b.index, idx)
    np.testing.assert_array_equal(b.state, in_ram.state[idx])
    np.testing.assert_array_equal(b.chunks, in_ram.chunks[idx])
    np.testing.assert_array_equal(b.valid, in_ram.valid[idx])
    for cam in store.cameras:
        np.testing.assert_array_equal(b.images[cam], in_ram.images[cam][idx])
    # the last frame of the first episode (index 22): its chunk is its own action, padded
    last = store.read_batch([22], HORIZON)
    assert last.valid[0].tolist() == [True] + [False] * (HORIZON - 1)
    np.testing.assert_array_equal(last.chunks[0], np.repeat(in_ram.chunks[22, :1], HORIZON, axis=0))


def test_an_epoch_through_the_prefetcher_yields_the_same_pairs(store, in_ram):
    """Streaming an epoch in batches of 8 yields each (state, action chunk) pair of the old path once."""
    got_state, got_chunks = [], []
    with fs.BatchPrefetcher(store, fs.epoch_batches(46, 8, np.random.default_rng(3)), HORIZON, depth=2) as pf:
        sizes = []
        for b in pf:
            sizes.append(len(b.index))
            got_state.append(b.state)
            got_chunks.append(b.chunks)
    assert sizes == [8] * 5 + [6]
    pairs = {(s.tobytes(), c.tobytes()) for s, c in zip(np.concatenate(got_state), np.concatenate(got_chunks))}
    old = {(s.tobytes(), c.tobytes()) for s, c in zip(in_ram.state, in_ram.chunks)}
    assert pairs == old and len(pairs) == 46


def test_uniform_batches_are_the_draws_training_made_before():
    a = fs.uniform_batches(46, 32, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    for _ in range(3):
        np.testing.assert_array_equal(next(a), rng.integers(0, 46, size=32).astype(np.int32))


def test_prefetch_buffer_is_bounded(store):
    """A slow consumer: the reader thread never takes more than depth + 1 index batches ahead."""
    taken = []

    def indices():
        for i in range(40):
            taken.append(i)
            yield np.array([i % 46])

    depth = 3
    ahead = []
    with fs.BatchPrefetcher(store, indices(), HORIZON, depth=depth) as pf:
        for k, b in enumerate(pf):
            time.sleep(0.005)
            ahead.append(len(taken) - (k + 1))
            assert int(b.index[0]) == k % 46  # in order
    assert max(ahead) <= depth + 1 and pf.max_ahead <= depth + 1
    assert max(ahead) >= depth - 1  # it did read ahead
    assert len(taken) == 40


def test_prefetch_stops_early_and_reports_errors(store):
    endless = fs.uniform_batches(46, 4, np.random.default_rng(0))
    pf = fs.BatchPrefetcher(store, endless, HORIZON, depth=2)
    next(pf)
    pf.close()
    assert not pf._thread.is_alive()
    with fs.BatchPrefetcher(store, iter([np.array([0]), np.array([46])]), HORIZON) as bad:
        next(bad)
        with pytest.raises(ValueError, match=r"in \[0, 46\)"):
            next(bad)


def test_store_is_built_once_per_cache_version(cache, tmp_path):
    first = fs.open_frame_store(cache, tmp_path, split="train", cameras=["head"])
    first.close()
    stamp = (first.root / "images-head.u8").stat().st_mtime_ns
    again = fs.open_frame_store(cache, tmp_path, split="train", cameras=["head"])
    again.close()
    assert again.root == first.root and (again.root / "images-head.u8").stat().st_mtime_ns == stamp
    assert again.cameras == ["head"] and not (again.root / "images-wrist_right.u8").exists()
    held = fs.open_frame_store(cache, tmp_path, split="heldout")
    held.close()
    assert held.root != first.root and held.episode_ids == ["ep001"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no half-built store
    # another cache version (its manifest changed): another store
    other = fs.store_fingerprint(cache.parent / "d", "train", ["head"])
    assert other != fs.store_fingerprint(cache, "train", ["head"])


def test_errors(cache, tmp_path, store):
    with pytest.raises(CacheError, match="split must be"):
        fs.open_frame_store(cache, tmp_path, split="test")
    with pytest.raises(CacheError, match="lacks feature"):
        fs.open_frame_store(cache, tmp_path, split="train", cameras=["head", "left_eye"])
    assert not any(tmp_path.iterdir()) or all(not p.name.startswith(".") for p in tmp_path.iterdir())
    with pytest.raises(CacheError, match="manifest.parquet"):
        fs.open_frame_store(tmp_path, tmp_path / "s")
    with pytest.raises(ValueError, match="horizon"):
        store.read_batch([0], 0)
    with pytest.raises(CacheError, match="not a complete frame store"):
        fs.FrameStore(tmp_path)


def test_concurrent_reads_are_consistent(store, in_ram):
    out: dict[int, np.ndarray] = {}

    def read(k: int) -> None:
        out[k] = store.read_batch(np.arange(46)[::-1], HORIZON).state

    threads = [threading.Thread(target=read, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for v in out.values():
        np.testing.assert_array_equal(v, in_ram.state[::-1])


def test_each_frame_carries_its_episode_task(tmp_path):
    """The per-episode task of meta.json, as the position in the store's sorted tasks (what training
    turns into the prompt's word ids); the store's files are the same as without tasks."""
    tasks = ["touch the green sphere with the right hand", "touch the blue cube with the left hand",
             "touch the green sphere with the right hand"]
    cache = tc.write_cache(tmp_path / "c", [0.1, 0.2, 0.3], ["train"] * 3, frames=4, tasks=tasks)
    with fs.open_frame_store(cache, tmp_path / "stores", split="train") as store:
        assert store.tasks == sorted(set(tasks))
        assert [e.task for e in store.episodes] == tasks
        idx = np.array([11, 0, 5, 4, 3, 8])  # episodes 2, 0, 1, 1, 0, 2
        b = store.read_batch(idx, HORIZON)
        assert [store.tasks[i] for i in b.task_index] == [tasks[2], tasks[0], tasks[1], tasks[1], tasks[0], tasks[2]]
        assert b.task_index.dtype == np.int64 and b.task_index.shape == (6,)
        assert sorted(p.name for p in store.root.iterdir()) == [
            "action.f32", "images-head.u8", "images-wrist_right.u8", "meta.json", "state.f32"]
