"""openpi norm stats from LeRobot Parquet: equal to numpy on the train rows, held-out excluded."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from hvla_platform.lib.dataset import lerobot_release as lr
from hvla_platform.lib.formats import norm_stats as ns
from hvla_platform.lib.formats.episode_h5 import write_episode_h5
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform_tests.lib.episode_factory import make_episode


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ns")
    paths = [write_episode_h5(tmp / "h5" / f"ep-{i:03d}.h5",
                              make_episode(f"ep-{i:03d}", num_frames=20, seed=10 + i, height=32, width=32,
                                           state_scale=1000.0 if i == 1 else 1.0))
             for i in range(3)]
    spec = ReleaseSpec.from_mapping({"name": "ns", "repo_id": "hvla/ns", "fps": 20,
                                     "heldout": {"episode_ids": ["ep-001"]}})
    return lr.build_lerobot_dataset(spec, paths, tmp / "ds")


def _rows(res):
    t = pq.read_table(sorted((res.root / "data").rglob("*.parquet"))[0]).to_pydict()
    ep = np.asarray(t["episode_index"])
    return ep, np.asarray(t["observation.state"], np.float64), np.asarray(t["action"], np.float64)


def test_equals_numpy_on_train_rows_only(dataset):
    res = dataset
    assert res.heldout_episode_indices == [2]  # train episodes come first, the held-out one last
    out = ns.compute_norm_stats(res.root, train_episode_indices=res.train_episode_indices)
    ep, state, action = _rows(res)
    train = np.isin(ep, [0, 1])
    assert out.num_frames == int(train.sum()) == 40
    for key, x in (("state", state[train]), ("actions", action[train])):
        s = out.stats[key]
        np.testing.assert_allclose(s["mean"], x.mean(0), rtol=1e-12, atol=0)
        np.testing.assert_allclose(s["std"], x.std(0), rtol=1e-12, atol=0)
        np.testing.assert_allclose(s["q01"], np.quantile(x, 0.01, axis=0, method="inverted_cdf"), rtol=1e-12, atol=0)
        np.testing.assert_allclose(s["q99"], np.quantile(x, 0.99, axis=0, method="inverted_cdf"), rtol=1e-12, atol=0)
    # the planted held-out episode (values x1000) does not leak: train stats stay within joint range
    assert np.abs(out.stats["state"]["q99"]).max() < 3.0 and np.abs(out.stats["actions"]["mean"]).max() < 3.0
    leaked = ns.compute_norm_stats(res.root, train_episode_indices=[0, 1, 2])
    assert np.abs(leaked.stats["state"]["std"]).max() > 50.0
    assert out.names["state"][0] == "waist_yaw_joint" and len(out.names["actions"]) == 14


def test_json_roundtrip_openpi_format(dataset, tmp_path):
    out = ns.compute_norm_stats(dataset.root, train_episode_indices=dataset.train_episode_indices)
    p = ns.write_norm_stats_json(out, tmp_path / "norm_stats.json")
    doc = json.loads(p.read_text())
    assert set(doc) == {"norm_stats"} and set(doc["norm_stats"]) == {"state", "actions"}
    assert set(doc["norm_stats"]["state"]) == {"mean", "std", "q01", "q99"}
    assert len(doc["norm_stats"]["state"]["mean"]) == 17 and len(doc["norm_stats"]["actions"]["q99"]) == 14
    back = ns.read_norm_stats_json(p)
    for k in ("state", "actions"):
        for f in ns.STAT_FIELDS:
            np.testing.assert_array_equal(back[k][f], out.stats[k][f])
    assert ns.check_norm_stats(out) == []
    assert ns.check_norm_stats(back) == []


def test_check_flags_constant_dim_and_nan(dataset):
    out = ns.compute_norm_stats(dataset.root, train_episode_indices=dataset.train_episode_indices)
    out.stats["state"]["std"][3] = 0.0
    out.stats["actions"]["mean"][5] = np.nan
    problems = ns.check_norm_stats(out)
    assert any("std 0 < 0.0001 at state[3] (left_shoulder_pitch_joint)" in p for p in problems), problems
    assert any("non-finite mean at actions[5] (left_wrist_pitch_joint)" in p for p in problems), problems
    assert len(problems) == 2
    assert any("missing key 'actions'" in p for p in ns.check_norm_stats({"state": out.stats["state"]}))


def test_constant_joint_in_data_is_flagged(tmp_path):
    ep = make_episode("ep-c", num_frames=12, height=16, width=16)
    ep.state[:, ep.state_names.index("waist_roll_joint")] = 0.25
    p = write_episode_h5(tmp_path / "ep-c.h5", ep)
    spec = ReleaseSpec.from_mapping({"name": "c", "repo_id": "hvla/c", "fps": 20, "heldout": {"fraction": 0}})
    res = lr.build_lerobot_dataset(spec, [p], tmp_path / "ds")
    out = ns.compute_norm_stats(res.root, train_episode_indices=res.train_episode_indices)
    assert ns.check_norm_stats(out) == ["state: std 0 < 0.0001 at state[1] (waist_roll_joint)"]


def test_errors(dataset):
    with pytest.raises(ns.NormStatsError, match="no train episodes"):
        ns.compute_norm_stats(dataset.root, train_episode_indices=[])
    with pytest.raises(ns.NormStatsError, match=r"\[7\] have no rows"):
        ns.compute_norm_stats(dataset.root, train_episode_indices=[0, 7])


@pytest.mark.parametrize("batch_rows,workers", [(65536, 1), (3, 2)])
def test_streaming_equals_the_in_memory_reference_on_a_release(dataset, batch_rows, workers):
    """The streaming computation gives today's numbers on a real release: quantiles bit-identical,
    mean/std equal up to float64 summation order; same frames, files and joint names."""
    ref = ns.compute_norm_stats_in_memory(dataset.root, train_episode_indices=dataset.train_episode_indices)
    out = ns.compute_norm_stats(dataset.root, train_episode_indices=dataset.train_episode_indices,
                                workers=workers, batch_rows=batch_rows)
    assert (out.num_frames, out.files, out.names) == (ref.num_frames, ref.files, ref.names)
    for k in ("state", "actions"):
        np.testing.assert_array_equal(out.stats[k]["q01"], ref.stats[k]["q01"])
        np.testing.assert_array_equal(out.stats[k]["q99"], ref.stats[k]["q99"])
        np.testing.assert_allclose(out.stats[k]["mean"], ref.stats[k]["mean"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(out.stats[k]["std"], ref.stats[k]["std"], rtol=1e-12, atol=1e-15)
