"""Streaming norm stats: the same numbers as the in-memory reference on adversarial Parquet files
(heavy ties, a constant dim, signed zeros, subnormals, +-inf, NaN, float64 columns), for any batch
size and number of workers; numpy's inverted-CDF rank and the sortable float keys."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hvla_platform.lib.formats import norm_stats as ns
from hvla_platform.lib.formats import norm_stats_stream as nss

STATE_D, ACTION_D = 9, 4


def _state(rng: np.random.Generator, n: int, with_nan: bool) -> np.ndarray:
    """(n, 9) float32 with one adversarial distribution per dim."""
    x = np.empty((n, STATE_D), np.float32)
    x[:, 0] = 0.25                                                    # constant
    x[:, 1] = (rng.random(n) < 0.03).astype(np.float32)               # gripper: 97 % zeros, ties at both quantiles
    x[:, 2] = rng.choice(np.array([-0.0, 0.0, 1e-3, -1e-3], np.float32), n)  # few values, signed zeros
    x[:, 3] = rng.standard_cauchy(n).astype(np.float32)               # heavy tails, many exponents
    x[:, 4] = (rng.standard_normal(n) * 1e-39).astype(np.float32)     # subnormals of both signs
    x[:, 5] = rng.standard_normal(n).astype(np.float32)
    x[rng.random(n) < 0.02, 5] = np.inf                               # +inf above q99
    x[:, 6] = rng.standard_normal(n).astype(np.float32)
    if with_nan:
        x[rng.integers(0, n), 6] = np.nan                             # one NaN: the whole dim is NaN, as numpy
    x[:, 7] = np.round(rng.standard_normal(n), 1).astype(np.float32)  # quantised: heavy ties everywhere
    x[:, 8] = (rng.standard_normal(n) * 3 + 100).astype(np.float32)
    return x


def _action(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) float64 (the 4-pass path): ties, negatives, -inf, a fine-grained normal."""
    a = np.empty((n, ACTION_D), np.float64)
    a[:, 0] = rng.integers(-3, 3, n).astype(np.float64)
    a[:, 1] = rng.standard_normal(n) * 1e-12 - 5.0
    a[:, 2] = rng.standard_normal(n)
    a[rng.random(n) < 0.03, 2] = -np.inf
    a[:, 3] = rng.standard_normal(n) * 1e300
    return a


def _write(root: Path, *, files: int = 3, eps_per_file: int = 6, ep_len: int = 37, with_nan: bool = False,
           seed: int = 0) -> tuple[list[int], np.ndarray, np.ndarray]:
    """A LeRobot-v3-shaped ``data/`` with one row group per episode; every third episode is held
    out (values x1e6). State is fixed_size_list<float>, action list<double>. Returns the train
    episode indices and their (N, 9) state / (N, 4) action rows in file order."""
    rng = np.random.default_rng(seed)
    train, st_rows, ac_rows = [], [], []
    ep = 0
    for fi in range(files):
        tables = []
        for _ in range(eps_per_file):
            n = ep_len + int(rng.integers(0, 5))
            st, ac = _state(rng, n, with_nan and ep == 4), _action(rng, n)
            held = ep % 3 == 2
            if held:
                st, ac = st * np.float32(1e6), ac * 1e6
            else:
                train.append(ep)
                st_rows.append(st)
                ac_rows.append(ac)
            tables.append(pa.table({
                "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(st.ravel()), STATE_D),
                "action": pa.array(list(ac), type=pa.list_(pa.float64())),
                "episode_index": pa.array(np.full(n, ep, np.int64)),
            }))
            ep += 1
        path = root / "data" / "chunk-000" / f"file-{fi:03d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(path, tables[0].schema) as w:
            for t in tables:
                w.write_table(t)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta" / "info.json").write_text(json.dumps({"features": {
        "observation.state": {"dtype": "float32", "shape": [STATE_D], "names": [f"s{i}" for i in range(STATE_D)]},
        "action": {"dtype": "float64", "shape": [ACTION_D], "names": ["a0", "a1"]}}}))  # wrong length: no names
    return train, np.concatenate(st_rows), np.concatenate(ac_rows)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _assert_moments_close(got: dict, ref: dict, x: np.ndarray) -> None:
    """mean/std equal up to float64 summation order: relative 1e-12, or, for an ill-conditioned dim
    (actions[1]: std 1e-12 around -5, where any summation order moves the std by ~1e-5 of itself),
    within 64 ulps of the data's magnitude; NaN where the other is NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN / inf dims
        scale = np.nanmax(np.where(np.isfinite(x), np.abs(x), np.nan), axis=0)
        for f in ("mean", "std"):
            diff = np.abs(got[f] - ref[f])
            ok = ((got[f] == ref[f]) | (np.isnan(got[f]) & np.isnan(ref[f])) | (diff <= 1e-12 * np.abs(ref[f]))
                  | (diff <= 64 * np.finfo(np.float64).eps * scale))
            assert ok.all(), (f, got[f][~ok], ref[f][~ok])


@pytest.fixture(scope="module")
def adversarial(tmp_path_factory):
    root = tmp_path_factory.mktemp("adv")
    train, state, action = _write(root)
    return root, train, state, action


@pytest.mark.parametrize("batch_rows,workers", [(65536, 1), (7, 1), (1, 1), (50, 2)])
def test_streaming_equals_numpy_on_adversarial_columns(adversarial, batch_rows, workers):
    root, train, state, action = adversarial
    out = ns.compute_norm_stats(root, train_episode_indices=train, workers=workers, batch_rows=batch_rows)
    assert out.num_frames == state.shape[0] == action.shape[0]
    for key, x in (("state", state), ("actions", action)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's inf - inf in std
            ref = ns.stats_of(x)
        got = out.stats[key]
        for f in ("q01", "q99"):  # exact: the same sample, bit for bit
            assert _same(got[f], ref[f]), (key, f, got[f], ref[f])
        _assert_moments_close(got, ref, x)
    s = out.stats["state"]
    assert s["std"][0] == 0.0 and s["q01"][0] == s["q99"][0] == np.float32(0.25)  # constant dim
    assert s["q01"][1] == 0.0 and s["q99"][1] == 1.0                            # gripper ties
    assert s["mean"][5] == np.inf and np.isnan(s["std"][5]) and s["q99"][5] == np.inf  # +inf as numpy
    assert np.isfinite(s["q01"][5])
    a = out.stats["actions"]
    assert a["mean"][2] == -np.inf and np.isnan(a["std"][2]) and a["q01"][2] == -np.inf
    assert abs(s["mean"][8] - 100) < 1 and np.abs(s["q99"][:5][np.isfinite(s["q99"][:5])]).max() < 1e5  # held-out out
    assert out.names["state"] == [f"s{i}" for i in range(STATE_D)] and out.names["actions"] is None


def test_the_same_numbers_for_any_batch_size_and_worker_count(adversarial):
    root, train, state, action = adversarial
    base = ns.compute_norm_stats(root, train_episode_indices=train)
    for batch_rows, workers in ((3, 1), (11, 2), (1000, 3)):
        other = ns.compute_norm_stats(root, train_episode_indices=train, workers=workers, batch_rows=batch_rows)
        for k, x in (("state", state), ("actions", action)):
            for f in ("q01", "q99"):
                assert _same(other.stats[k][f], base.stats[k][f]), (batch_rows, workers, k, f)
            _assert_moments_close(other.stats[k], base.stats[k], x)  # batch boundaries: summation order only
    # and the same workers/batches merge in unit order: bit-identical whatever the thread count
    one = ns.compute_norm_stats(root, train_episode_indices=train, workers=1, batch_rows=17)
    two = ns.compute_norm_stats(root, train_episode_indices=train, workers=2, batch_rows=17)
    for k in one.stats:
        for f in ns.STAT_FIELDS:
            assert _same(one.stats[k][f], two.stats[k][f]), (k, f)


def test_a_nan_makes_the_dim_nan_like_numpy_and_check_reports_it(tmp_path):
    train, _, _ = _write(tmp_path, with_nan=True)
    out = ns.compute_norm_stats(tmp_path, train_episode_indices=train, batch_rows=13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's inf - inf / 1e300 ** 2 in std
        ref = ns.compute_norm_stats_in_memory(tmp_path, train_episode_indices=train)
    for f in ns.STAT_FIELDS:
        assert np.isnan(out.stats["state"][f][6]) and np.isnan(ref.stats["state"][f][6])
        assert np.isfinite(out.stats["state"][f][8])
    assert any("non-finite q01 at state[6] (s6)" in p for p in ns.check_norm_stats(out))
    # the JSON writer keeps the format: NaN is written as JSON's NaN token, as before
    doc = json.loads(ns.write_norm_stats_json(out, tmp_path / "ns.json").read_text())
    assert set(doc["norm_stats"]["state"]) == set(ns.STAT_FIELDS) and np.isnan(doc["norm_stats"]["state"]["q99"][6])


def test_inverted_cdf_index_is_numpys_rank():
    for n in list(range(1, 400)) + [1000, 4097, 99_999, 1_000_000]:
        x = np.arange(n)
        for q in (0.01, 0.99, 0.5, 0.25, 0.0, 1.0):
            assert nss.inverted_cdf_index(n, q) == int(np.quantile(x, q, method="inverted_cdf")), (n, q)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sortable_keys_sort_like_the_floats_and_round_trip(dtype):
    rng = np.random.default_rng(1)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.finfo(dtype).tiny, -np.finfo(dtype).tiny,
                        np.finfo(dtype).max, -np.finfo(dtype).max, 1e-45 if dtype == np.float32 else 5e-324], dtype)
    x = np.concatenate([special, rng.standard_cauchy(2000).astype(dtype)]).reshape(-1, 1)
    keys = nss.sortable_keys(x)
    order = np.argsort(keys[:, 0], kind="stable")
    assert np.all(np.diff(x[order, 0].astype(np.float64)) >= 0)
    np.testing.assert_array_equal(nss.key_to_float(keys, x.dtype.itemsize * 8), x.astype(np.float64))
    width = x.dtype.itemsize * 8
    np.testing.assert_array_equal(nss.top_digit(x), (keys >> keys.dtype.type(width - 16)).astype(np.uint16))


def test_errors_are_those_of_the_in_memory_reader(tmp_path):
    train, _, _ = _write(tmp_path / "ok", files=1, eps_per_file=3)
    with pytest.raises(ns.NormStatsError, match="no train episodes"):
        ns.compute_norm_stats(tmp_path / "ok", train_episode_indices=[])
    with pytest.raises(ns.NormStatsError, match=r"\[99\] have no rows"):
        ns.compute_norm_stats(tmp_path / "ok", train_episode_indices=[*train, 99])
    with pytest.raises(ns.NormStatsError, match="has no Parquet files"):
        ns.compute_norm_stats(tmp_path / "empty", train_episode_indices=[0])

    def write(name: str, table: pa.Table) -> Path:
        (tmp_path / name / "data").mkdir(parents=True)
        pq.write_table(table, tmp_path / name / "data" / "file-000.parquet")
        return tmp_path / name

    ep = pa.array([0, 0, 0], pa.int64())
    ok_action = pa.array([[1.0], [2.0], [3.0]], pa.list_(pa.float32()))
    cases = {
        "null_row": (pa.array([[1.0, 2.0], None, [3.0, 4.0]], pa.list_(pa.float32())), "1 null rows"),
        "null_elem": (pa.array([[1.0, None], [2.0, 3.0], [3.0, 4.0]], pa.list_(pa.float32())), "1 null elements"),
        "ragged": (pa.array([[1.0, 2.0], [2.0], [3.0, 4.0]], pa.list_(pa.float32())), "rows of different lengths"),
        "scalar": (pa.array([1.0, 2.0, 3.0], pa.float32()), "expected a list of floats"),
    }
    for name, (state, msg) in cases.items():
        root = write(name, pa.table({"observation.state": state, "action": ok_action, "episode_index": ep}))
        with pytest.raises(ns.NormStatsError, match=msg):
            ns.compute_norm_stats(root, train_episode_indices=[0])
    root = write("missing", pa.table({"observation.state": ok_action, "episode_index": ep}))
    with pytest.raises(ns.NormStatsError, match="has no column 'action'"):
        ns.compute_norm_stats(root, train_episode_indices=[0])
