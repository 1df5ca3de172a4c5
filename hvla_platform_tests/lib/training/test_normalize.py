"""openpi-format normalization: formulas, round trips and validation."""

import numpy as np
import pytest

from hvla_platform.lib.training import TrainConfig
from hvla_platform.lib.training.normalize import NormStats, normalize, unnormalize
from hvla_platform_tests.fixtures.norm_stats import norm_stats_doc


def _stats():
    rng = np.random.default_rng(0)
    return NormStats.from_dict(norm_stats_doc(rng.normal(1.0, 2.0, (500, 3)), rng.uniform(-1, 3, (500, 2))))


def test_quantile_maps_q01_q99_to_minus_one_one():
    s = _stats().state
    np.testing.assert_allclose(normalize(s.q01, s, "quantile"), -1.0, atol=1e-5)
    np.testing.assert_allclose(normalize(s.q99, s, "quantile"), 1.0, atol=1e-5)


def test_zscore_formula():
    s = _stats().actions
    x = np.array([0.5, 2.0], np.float32)
    np.testing.assert_allclose(normalize(x, s, "zscore"), (x - s.mean) / (s.std + 1e-6), rtol=1e-6)


@pytest.mark.parametrize("kind", ["quantile", "zscore"])
def test_round_trip(kind):
    s = _stats().state
    x = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    np.testing.assert_allclose(unnormalize(normalize(x, s, kind), s, kind), x, atol=1e-5)


def test_validation():
    good = norm_stats_doc(np.zeros((3, 2)), np.zeros((3, 1)))
    NormStats.from_dict(good)
    with pytest.raises(ValueError, match="'actions'"):
        NormStats.from_dict({"norm_stats": {"state": good["norm_stats"]["state"]}})
    bad = {"norm_stats": {"state": dict(good["norm_stats"]["state"], q01=[0.0]), "actions": good["norm_stats"]["actions"]}}
    with pytest.raises(ValueError, match="differ in length"):
        NormStats.from_dict(bad)
    nan = {"norm_stats": {"state": dict(good["norm_stats"]["state"], mean=[float("nan"), 0.0]),
                          "actions": good["norm_stats"]["actions"]}}
    with pytest.raises(ValueError, match="non-finite"):
        NormStats.from_dict(nan)
    with pytest.raises(ValueError, match="normalization"):
        normalize(np.zeros(2), NormStats.from_dict(good).state, "minmax")


def test_train_config_validation():
    TrainConfig(exp_name="e", release="r").validate()
    for kwargs, msg in [({"steps": 0}, "steps"), ({"exp_name": "a/b"}, "exp_name"), ({"image_size": (4, 4)}, "image_size"),
                        ({"cameras": ()}, "cameras"), ({"learning_rate": 0}, "learning_rate")]:
        with pytest.raises(ValueError, match=msg):
            TrainConfig(**{"exp_name": "e", "release": "r", **kwargs}).validate()
    cfg = TrainConfig(exp_name="e", release="r", cameras=("head",))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
