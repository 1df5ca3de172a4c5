"""A checkpoint is served only for deployment targets its training data allows."""

import shutil

import pytest
import yaml

from hvla_platform.lib.serving.authorization import ServingRefused, authorize_serving


@pytest.fixture()
def step_dir(tmp_path):
    d = tmp_path / "checkpoints" / "cfg" / "exp" / "100"
    d.mkdir(parents=True)
    (d / "checkpoint_manifest.yaml").write_text(yaml.safe_dump({
        "checkpoint": "checkpoints/cfg/exp/100", "serving_allowed": ["lab_robot", "staging_demo"],
        "serving_blocked": ["public_api", "third_party_resale"]}))
    return d


def test_allowed_target_is_served(step_dir):
    assert authorize_serving(step_dir, "lab_robot")["checkpoint"] == "checkpoints/cfg/exp/100"


@pytest.mark.parametrize("use,needle", [("public_api", "may not be served for 'public_api'"),
                                        ("third_party_resale", "allows serving only for"),
                                        ("moon_base", "unknown deployment target")])
def test_forbidden_targets_are_refused_with_the_reason(step_dir, use, needle):
    with pytest.raises(ServingRefused, match=needle):
        authorize_serving(step_dir, use)


def test_expired_training_data_is_refused(step_dir):
    import json

    (step_dir / "_hvla_manifest.json").write_text(json.dumps({"rights": {
        "data_owners": ["o"], "sites": ["s"], "customers": ["c"], "consent_refs": [], "licenses": ["l"],
        "allowed_uses": ["internal_training", "lab_robot"], "retention_until": "2020-01-01",
        "contains_human_video": False, "contains_customer_environment": False}}))
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
    d = tmp_path / "ck"
    d.mkdir()
    (d / "checkpoint_manifest.yaml").write_text(yaml.safe_dump(m))
    assert authorize_serving(d, "staging_demo")
    with pytest.raises(ServingRefused):
        authorize_serving(d, "lab_robot")
    shutil.rmtree(d)
