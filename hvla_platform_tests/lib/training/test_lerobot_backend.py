"""LeRobot's own trainer (``lerobot-train``, LeRobot 0.4.4) as a training backend: a real release
in a real lake, ACT and diffusion trained a few steps on CPU, the checkpoint, its manifest and
rights, the MLflow run, and the normalisation stats (the train split's, never all episodes')."""

from __future__ import annotations

import json
import shutil

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from hvla_platform.lib.core.manifest import require_manifest, LeRobotDatasetManifest
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.training import lerobot_backend as lb
from hvla_platform.lib.training.build import train_experiment
from hvla_platform.lib.training.train import TrainConfig
from hvla_platform_tests.lib.training import lerobot_checkpoint as lc


@pytest.fixture(scope="module")
def act(tmp_path_factory) -> lc.LeRobotFixture:
    return lc.trained_act(tmp_path_factory.getbasetemp())


def _release_frames(lake) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``episode_index`` and the state/action columns of every frame of the release."""
    root = lake.path(lc.RELEASE_PREFIX)
    tables = [pq.read_table(f) for f in sorted((root / "data").rglob("*.parquet"))]
    ep = np.concatenate([np.asarray(t["episode_index"]) for t in tables])
    cols = {k: np.concatenate([np.stack(t[k].to_numpy(zero_copy_only=False)) for t in tables]).astype(np.float64)
            for k in ("observation.state", "action")}
    return ep, cols


# ---- the command line LeRobot gets --------------------------------------------------------------

def test_action_chunk_options_follow_the_action_horizon():
    assert lb.chunk_args("act", 10) == {"chunk_size": 10, "n_action_steps": 10}
    # diffusion: horizon a multiple of 8 with n_action_steps <= horizon - n_obs_steps + 1
    assert lb.chunk_args("diffusion", 10) == {"n_obs_steps": 2, "horizon": 16, "n_action_steps": 10,
                                              "drop_n_last_frames": 5}
    assert lb.chunk_args("diffusion", 7)["horizon"] == 8 and lb.chunk_args("diffusion", 8)["horizon"] == 16
    argv = lb.lerobot_train_argv(repo_id="hvla/x", dataset_root="/d", output_dir="/o", policy="act", episodes=[0, 2],
                                 steps=7, batch_size=3, seed=5, learning_rate=2e-4, action_horizon=10)
    for a in ("--dataset.episodes=[0,2]", "--policy.pretrained_backbone_weights=null", "--policy.device=cpu",
              "--policy.push_to_hub=false", "--wandb.enable=false", "--steps=7", "--batch_size=3", "--seed=5",
              "--policy.optimizer_lr=0.0002", "--policy.chunk_size=10", "--log_freq=1"):
        assert a in argv, a
    assert argv[1:3] == ["-m", "lerobot.scripts.lerobot_train"]


def test_unknown_backend_or_policy_names_the_closest():
    with pytest.raises(lb.BackendError, match="unknown training backend 'lerobt' .*did you mean 'lerobot'"):
        lb.check_backend("lerobt", "act")
    with pytest.raises(lb.BackendError, match="unknown LeRobot policy 'difusion' .*did you mean 'diffusion'"):
        lb.check_backend("lerobot", "difusion")
    assert lb.parse_losses("x step:1 smpl:4 ep:0 epch:0.03 loss:77.406 grdn:1.0\n"
                           "step:2 smpl:8 ep:0 epch:0.07 loss:60.855 grdn:1.0") == [77.406, 60.855]
    assert lb.summary_losses([5.0] + [3.0] * 18 + [1.0]) == (5.0, 2.0)  # last 20 // 10 = 2 steps averaged


# ---- ACT, trained by lerobot-train through train_experiment -------------------------------------

def test_act_checkpoint_has_the_checkpoint_files_and_lerobots_model(act):
    d = act.step_dir
    assert act.published.prefix == "checkpoints/c/lr-act/4" and act.published.status == "materialized"
    for name in ("params", "norm_stats.json", "config.json", "checkpoint_manifest.yaml", "loss_curve.json",
                 "training_data_summary.md", "lerobot-train.log"):
        assert (d / name).exists(), name
    for name in ("model.safetensors", "config.json", "train_config.json", "policy_preprocessor.json",
                 "policy_postprocessor.json"):
        assert (d / "params" / name).is_file(), name
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["backend"] == "lerobot" and cfg["policy"] == "act" and cfg["lerobot_version"] == "0.4.4"
    assert cfg["action_horizon"] == 10 and cfg["lerobot_chunk"] == {"chunk_size": 10, "n_action_steps": 10}
    assert cfg["train_episode_ids"] == ["ep-0", "ep-1", "ep-2"] and cfg["train_episode_indices"] == [0, 1, 2]
    assert cfg["tasks"] == [lc.TRAIN_TASK]  # the held-out episode's task is not a training task
    assert cfg["cameras"] == ["head", "wrist_right"]
    assert cfg["camera_shapes"] == {"head": [96, 128, 3], "wrist_right": [96, 128, 3]}
    assert len(cfg["state_names"]) == cfg["state_dim"] == 17 and len(cfg["action_names"]) == cfg["action_dim"] == 14
    lr_cfg = json.loads((d / "params" / "config.json").read_text())
    assert lr_cfg["type"] == "act" and lr_cfg["chunk_size"] == 10 and lr_cfg["pretrained_backbone_weights"] is None
    train_cfg = json.loads((d / "params" / "train_config.json").read_text())
    assert train_cfg["dataset"]["episodes"] == [0, 1, 2] and train_cfg["steps"] == lc.ACT_STEPS
    assert train_cfg["wandb"]["enable"] is False and train_cfg["batch_size"] == lc.ACT_BATCH
    # nothing in the checkpoint names the scratch directory it was trained in
    for f in d.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".yaml", ".md", ".log"):
            assert str(act.root) not in f.read_text(errors="replace"), f


def test_manifest_carries_rights_training_data_and_the_lake_manifest_the_backend(act):
    m = yaml.safe_load((act.step_dir / "checkpoint_manifest.yaml").read_text())
    rel = require_manifest(act.lake, lc.RELEASE_PREFIX, LeRobotDatasetManifest)
    rights = Rights.from_dict(rel.rights)
    assert m["serving_allowed"] == rights.serving_allowed() == ["lab_robot", "staging_demo"]
    assert m["serving_blocked"] == rights.serving_blocked()
    assert m["backend"] == "lerobot" and m["lerobot_policy"] == "act"
    data = m["training_data"][0]
    assert data["release"] == lc.RELEASE and data["repo_id"] == lc.REPO_ID and data["split"] == "train"
    assert data["episode_ids"] == ["ep-0", "ep-1", "ep-2"] and "internal_training" in data["allowed_use"]
    assert m["norm_stats"] == f"{lc.RELEASE_PREFIX}/meta/stats.json"
    lake_m = act.published.manifest
    assert lake_m.config["backend"] == "lerobot" and lake_m.config["lerobot_policy"] == "act"
    assert [i.key for i in lake_m.inputs] == [lc.RELEASE_PREFIX]  # lineage: the release, train episodes only
    assert lake_m.inputs[0].episode_ids == ["ep-0", "ep-1", "ep-2"]
    summary = (act.step_dir / "training_data_summary.md").read_text()
    assert "train split: 3 episodes" in summary and "ep-3" in summary


def test_mlflow_run_has_params_and_the_loss_series_of_the_loss_curve(act):
    curve = json.loads((act.step_dir / "loss_curve.json").read_text())
    assert curve["step"] == [1, 2, 3, 4] and all(np.isfinite(curve["loss"])) and curve["loss"][0] > 0
    run = mlflow.MlflowClient(act.tracking_uri).get_run(act.published.manifest.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["backend"] == "lerobot" and run.data.params["lerobot_policy"] == "act"
    assert run.data.params["train.steps"] == str(lc.ACT_STEPS) and run.data.params["num_train_frames"] == "123"
    assert run.data.tags["hvla.checkpoint"] == "checkpoints/c/lr-act/4"
    series = mlflow.MlflowClient(act.tracking_uri).get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in series] == [1, 2, 3, 4]
    assert [m.value for m in series] == pytest.approx(curve["loss"])
    assert run.data.metrics["train/initial_loss"] == pytest.approx(curve["loss"][0])
    assert act.published.manifest.initial_loss == pytest.approx(curve["loss"][0])
    # progress reached the caller's log while lerobot-train ran (the last step at least)
    assert any(line.startswith(f"lerobot-train step 4/4 loss {curve['loss'][-1]:.3f}") for line in act.logs), act.logs


def test_normalisation_stats_are_the_train_episodes_not_all_episodes(act):
    ep, cols = _release_frames(act.lake)
    train = ep < 3  # episodes 0..2 are the train split, 3 is held out
    ns = json.loads((act.step_dir / "norm_stats.json").read_text())
    # what LeRobot's saved pre-processor really normalises with, read back from its own files
    saved = lb.saved_norm_stats(act.step_dir / "params")
    for key, ours in (("observation.state", "state"), ("action", "actions")):
        x = cols[key]
        for stat, fn in (("mean", np.mean), ("std", np.std)):
            np.testing.assert_allclose(ns["norm_stats"][ours][stat], fn(x[train], 0), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(saved["lerobot"][key][stat], fn(x[train], 0), rtol=1e-4, atol=1e-6)
        assert saved["lerobot"][key]["count"] == int(train.sum()) == 123
        assert not np.allclose(ns["norm_stats"][ours]["mean"], x.mean(0), rtol=1e-4, atol=1e-6)
    assert saved["norm_map"]["ACTION"] == "MEAN_STD"


def test_retraining_the_same_config_is_cached_and_a_release_with_all_episode_stats_is_refused(act, tmp_path):
    again = train_experiment(act.lake, lc.ACT_CONFIG, tracking_uri=act.tracking_uri, backend="lerobot",
                             lerobot_policy="act")
    assert again.status == "cached"
    # a copy of the release whose stats.json counts every episode: LeRobot would normalise with it
    bad = tmp_path / "rel"
    shutil.copytree(act.lake.path(lc.RELEASE_PREFIX), bad)
    stats = json.loads((bad / "meta" / "stats.json").read_text())
    stats["action"]["count"] = [164]
    (bad / "meta" / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(ValueError, match="counts 164 frames for 'action', but the train episodes"):
        lb.check_train_only_stats(bad, [0, 1, 2])
    assert lb.check_train_only_stats(act.lake.path(lc.RELEASE_PREFIX), [0, 1, 2]) == 123


def test_bad_requests_are_refused_before_training(act):
    with pytest.raises(ValueError, match="did you mean 'lerobot'"):
        train_experiment(act.lake, lc.ACT_CONFIG, tracking_uri=None, backend="lerobo")
    with pytest.raises(ValueError, match="did you mean 'act'"):
        train_experiment(act.lake, lc.ACT_CONFIG, tracking_uri=None, backend="lerobot", lerobot_policy="actt")
    one_cam = TrainConfig(config_name="c", exp_name="x", release=lc.RELEASE, steps=1, cameras=("head",))
    with pytest.raises(ValueError, match="trains on every camera"):
        train_experiment(act.lake, one_cam, tracking_uri=None, backend="lerobot")
    with pytest.raises(ValueError, match="own train-split stats"):
        train_experiment(act.lake, lc.ACT_CONFIG, tracking_uri=None, backend="lerobot", norm_stats_release="other")


def test_a_failing_lerobot_train_raises_with_its_output_and_publishes_nothing(act, monkeypatch):
    real = lb.lerobot_train_argv

    def bad_episodes(**kw):  # episode 99 does not exist: LeRobot itself fails
        return [a if not a.startswith("--dataset.episodes=") else "--dataset.episodes=[99]" for a in real(**kw)]

    monkeypatch.setattr(lb, "lerobot_train_argv", bad_episodes)
    cfg = TrainConfig(config_name="c", exp_name="lr-fail", release=lc.RELEASE, steps=2, batch_size=2)
    with pytest.raises(lb.LeRobotTrainError, match="lerobot-train exited with status") as err:
        train_experiment(act.lake, cfg, tracking_uri=act.tracking_uri, backend="lerobot")
    assert "its last lines" in str(err.value) and len(str(err.value).splitlines()) > 2
    assert act.lake.read_manifest("checkpoints/c/lr-fail/2") is None
    assert not act.lake.path("checkpoints/c/lr-fail").exists()
    runs = mlflow.MlflowClient(act.tracking_uri).search_runs(
        [mlflow.MlflowClient(act.tracking_uri).get_experiment_by_name("hvla-training").experiment_id],
        filter_string="tags.`hvla.exp_name` = 'lr-fail'")
    assert [r.info.status for r in runs] == ["FAILED"]


#: Diffusion's U-Net channels for the test run: LeRobot's default (512, 1024, 2048) is a ~260M-parameter
#: model whose checkpoint (weights + optimizer state) is ~3 GB to write and copy; the same three levels
#: (so the same multiple-of-8 horizon) at 1/8 of the width train the same code path in a fraction of it.
SMALL_DOWN_DIMS = [64, 128, 256]


def test_diffusion_trains_two_steps_with_a_horizon_of_16(act, monkeypatch):
    real = lb.lerobot_train_argv
    monkeypatch.setattr(lb, "lerobot_train_argv",
                        lambda **kw: [*real(**kw), f"--policy.down_dims=[{','.join(map(str, SMALL_DOWN_DIMS))}]"])
    cfg = TrainConfig(config_name="c", exp_name="lr-diffusion", release=lc.RELEASE, steps=2, batch_size=2)
    pub = train_experiment(act.lake, cfg, tracking_uri=None, backend="lerobot", lerobot_policy="diffusion")
    d = act.lake.path(pub.prefix)
    cfg_doc = json.loads((d / "config.json").read_text())
    assert cfg_doc["policy"] == "diffusion" and cfg_doc["lerobot_chunk"]["horizon"] == 16
    lr_cfg = json.loads((d / "params" / "config.json").read_text())
    assert lr_cfg["type"] == "diffusion" and lr_cfg["horizon"] == 16 and lr_cfg["n_action_steps"] == 10
    assert lr_cfg["down_dims"] == SMALL_DOWN_DIMS  # the test's width reached LeRobot's config
    assert lr_cfg["scheduler_warmup_steps"] == 1
    assert len(json.loads((d / "loss_curve.json").read_text())["loss"]) == 2
    assert pub.manifest.config["lerobot_policy"] == "diffusion"
