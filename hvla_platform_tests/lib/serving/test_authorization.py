"""A checkpoint is served only for deployment targets its training data allows."""

import shutil

import pytest
import yaml

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.serving.authorization import ServingRefused, authorize_serving
from hvla_platform_tests.fixtures.checkpoints import commit_checkpoint

RIGHTS = {"data_owners": ["o"], "sites": ["s"], "customers": ["c"], "consent_refs": [], "licenses": ["l"],
          "allowed_uses": ["internal_training", "lab_robot", "staging_demo"], "retention_until": "2099-01-01",
          "contains_human_video": False, "contains_customer_environment": False}
EXTRA = {"experiment": "exp", "config_name": "cfg", "step": 100, "release": "r", "repo_id": "o/r", "initial_loss": 1.0,
         "final_loss": 0.5, "mlflow_run_id": None, "num_train_frames": 1, "num_params": 1, "train_seconds": 1.0,
         "timings": {}}


def committed(tmp_path, rights=RIGHTS, manifest=None):
    """A committed checkpoint folder (``serving_allowed`` from ``rights``) holding only its
    ``checkpoint_manifest.yaml`` (default: the allowance of ``rights``)."""
    src = tmp_path / "src"
    src.mkdir()
    allowed = sorted(u for u in rights["allowed_uses"] if u != "internal_training")
    (src / "checkpoint_manifest.yaml").write_text(yaml.safe_dump(manifest or {
        "checkpoint": "checkpoints/cfg/exp/100", "serving_allowed": allowed,
        "serving_blocked": sorted({"lab_robot", "staging_demo", "public_api", "third_party_resale"} - set(allowed))}))
    return commit_checkpoint(LocalLake(tmp_path / "lake"), src, "checkpoints/cfg/exp/100", rights=rights, extra=EXTRA)


@pytest.fixture()
def step_dir(tmp_path):
    return committed(tmp_path)


def test_allowed_target_is_served(step_dir):
    assert authorize_serving(step_dir, "lab_robot").artifact_key == "checkpoints/cfg/exp/100"


@pytest.mark.parametrize("use,needle", [("public_api", "may not be served for 'public_api'"),
                                        ("third_party_resale", "allows serving only for"),
                                        ("moon_base", "unknown deployment target")])
def test_forbidden_targets_are_refused_with_the_reason(step_dir, use, needle):
    with pytest.raises(ServingRefused, match=needle):
        authorize_serving(step_dir, use)


def test_expired_training_data_is_refused(tmp_path):
    step_dir = committed(tmp_path, {**RIGHTS, "allowed_uses": ["internal_training", "lab_robot"],
                                    "retention_until": "2020-01-01"})
    with pytest.raises(ServingRefused, match="retention ended on 2020-01-01"):
        authorize_serving(step_dir, "lab_robot")


def test_demo_checkpoint_manifest_blocks_public_api(tmp_path):
    """The checkpoint the pipeline writes (seed 000 manifest) is enforced the same way."""
    from hvla_platform.lib.training.checkpoint import build_checkpoint_manifest

    rights = {"data_owners": ["o"], "sites": ["s"], "customers": ["c"], "consent_refs": ["k"], "licenses": ["l"],
              "allowed_uses": ["internal_training", "staging_demo"], "retention_until": "2099-01-01",
              "contains_human_video": False, "contains_customer_environment": False}
    m = build_checkpoint_manifest(config_name="c", exp_name="e", step=1, base_model="none", release="r", repo_id="o/r",
                                  train_episode_ids=["ep"], norm_stats_ref="ns", rights=rights)
    d = committed(tmp_path, rights, manifest=m)
    assert authorize_serving(d, "staging_demo")
    with pytest.raises(ServingRefused):
        authorize_serving(d, "lab_robot")
    shutil.rmtree(d)
