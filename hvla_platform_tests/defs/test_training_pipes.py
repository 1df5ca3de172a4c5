"""The ``checkpoint`` asset trains out of process through Dagster Pipes (the subprocess launcher of
the embedded default): the training process' log lines, materialization and ``loss_fell`` check
come back through Pipes; a killed or failing training process fails the run with its cause, leaves
no process behind and publishes no checkpoint.

A real small lake: three recordings → ingest → HDF5 → release ``pipes-v1`` (one episode held out)
→ norm stats → Robo-DM cache; the asset is materialized with ``dg.materialize`` on a SQLite
Dagster instance, as ``hvla train`` does.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import psutil
import pytest

from hvla_platform.defs.resources import LakeResource, MlflowResource
from hvla_platform.defs.training.assets import checkpoint
from hvla_platform.defs.training.launcher import TrainingLauncherResource
from hvla_platform.defs.training.pipes_worker import WORKER_MODULE
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.norm_stats_build import build_norm_stats
from hvla_platform.lib.dataset.releases import register_release
from hvla_platform.lib.dataset.robodm_build import build_cache
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.recordings import write_recording

SPEC = "name: pipes-v1\nrepo_id: hvla/pipes\npartitions: all\nheldout: {episode_ids: [ep-2]}\n"
#: What the asset reported when it trained in process (before Pipes), plus the trainer, lineage and rights.
METADATA_KEYS = {
    "dagster/uri", "hvla/experiment", "hvla/release", "hvla/backend", "hvla/step", "hvla/initial_loss", "hvla/final_loss",
    "hvla/num_train_frames", "hvla/num_params", "hvla/train_seconds", "hvla/mlflow_run_id", "hvla/serving_allowed",
    "hvla/serving_blocked", "status", "hvla/lineage_upstream", "hvla/lineage_command", "hvla/allowed_uses",
    "hvla/license", "hvla/data_owners", "hvla/customers", "hvla/sites", "hvla/consent_refs",
    "hvla/retention_until", "hvla/contains_human_video", "hvla/contains_customer_environment", "hvla/mlflow_run",
}
#: The training stack, which must stay out of the run's process.
HEAVY = ("jax", "flax", "optax", "orbax", "torch", "lerobot", "mujoco")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pipes")
    lake = LocalLake(root / "lake")
    for i in range(3):
        write_recording(root / "recs", episode_id=f"ep-{i}", robot_id="g1-a", seed=i)
    land_and_convert(lake, root / "recs", "2026-11-10", "g1-a")
    spec = register_release(lake, SPEC)
    build_release(lake, spec)
    build_norm_stats(lake, spec)
    build_cache(lake, spec)
    return root


def materialize(root: Path, inst: dg.DagsterInstance, exp: str, **config) -> dg.ExecuteInProcessResult:
    """``checkpoint`` of experiment ``exp`` with ``config`` (release ``pipes-v1`` unless given)."""
    if exp not in inst.get_dynamic_partitions("experiment"):
        inst.add_dynamic_partitions("experiment", [exp])
    return dg.materialize(
        [checkpoint], instance=inst, partition_key=exp, raise_on_error=False,
        resources={"lake": LakeResource(root=str(root / "lake")),
                   "mlflow": MlflowResource(tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
                                            artifact_root=(root / "mlruns").as_uri()),
                   "training_launcher": TrainingLauncherResource(launcher="subprocess", termination_timeout_s=5)},
        run_config={"ops": {"checkpoint": {"config": {"release": "pipes-v1", "batch_size": 8, **config}}}})


def log_messages(inst: dg.DagsterInstance, run_id: str) -> list[str]:
    return [e.user_message for e in inst.all_logs(run_id)]


def worker_processes() -> list[psutil.Process]:
    """Training worker processes started by this test process (any depth)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if WORKER_MODULE in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def step_failure(result: dg.ExecuteInProcessResult) -> str:
    (failure,) = result.get_step_failure_events()
    return failure.step_failure_data.error.message


@pytest.fixture()
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


def test_materialization_comes_back_through_pipes_with_the_same_metadata_and_check(root, instance):
    heavy_before = {m for m in HEAVY if m in sys.modules}
    res = materialize(root, instance, "exp-ok", steps=5)
    assert res.success
    # the training ran in another process, and the training stack stayed out of this one
    assert {m for m in HEAVY if m in sys.modules} == heavy_before
    logs = log_messages(instance, res.run_id)
    started = [m for m in logs if m.startswith("training process pid ") and " started " in m]
    assert len(started) == 1 and int(started[0].split()[3]) != os.getpid()
    # the worker's progress lines were streamed through Pipes into the run's log
    assert any(m.startswith("step 5/5 loss ") for m in logs), logs
    assert any(m.startswith("final train loss ") for m in logs)

    (mat,) = res.asset_materializations_for_node("checkpoint")
    md = mat.metadata
    assert set(md) == METADATA_KEYS
    assert md["dagster/uri"].value.endswith("checkpoints/hvla_g1_reach_small/exp-ok/5")
    assert md["hvla/step"].value == 5 and md["hvla/experiment"].value == "exp-ok" and md["hvla/backend"].value == "jax"
    assert md["status"].value == "materialized" and md["hvla/release"].value == "pipes-v1"
    assert md["hvla/mlflow_run"].value.endswith(f"/#/runs/{md['hvla/mlflow_run_id'].value}")  # a link to the MLflow UI
    assert isinstance(md["hvla/final_loss"].value, float) and md["hvla/final_loss"].value > 0
    assert "ep-0" in md["hvla/lineage_upstream"].value and "ep-2" not in md["hvla/lineage_upstream"].value
    assert md["hvla/allowed_uses"].value == "internal_training, lab_robot, staging_demo"
    evals = {c.check_name: c for c in res.get_asset_check_evaluations()}
    assert set(evals) == {"loss_fell", "rights_standing"} and evals["rights_standing"].passed  # nothing withdrawn
    check = evals["loss_fell"]
    assert check.check_name == "loss_fell" and check.asset_key == dg.AssetKey("checkpoint")
    ratio = md["hvla/final_loss"].value / md["hvla/initial_loss"].value
    assert check.metadata["hvla/loss_ratio"].value == round(ratio, 4)
    assert check.passed == (ratio <= 0.9)
    # the checkpoint the worker published is in the lake
    lake = LocalLake(root / "lake")
    assert lake.read_manifest("checkpoints/hvla_g1_reach_small/exp-ok/5")["release"] == "pipes-v1"
    assert worker_processes() == []


def test_a_killed_training_process_fails_the_run_with_its_cause(root, instance):
    out: dict = {}
    runner = threading.Thread(target=lambda: out.setdefault("res", materialize(root, instance, "exp-kill",
                                                                               steps=100_000)))
    runner.start()
    try:
        # wait until the worker has loaded the train split into its staging area (the line arrives
        # through Pipes), then kill it mid-build
        deadline = time.monotonic() + 180
        victim = None
        while time.monotonic() < deadline and runner.is_alive():
            runs = instance.get_runs()
            if runs and any(m.startswith("loaded ") and " train episodes" in m for m in log_messages(instance, runs[0].run_id)):
                (victim,) = worker_processes()
                break
            time.sleep(0.5)
        assert victim is not None, "the training loop never started"
        victim.send_signal(signal.SIGKILL)
    finally:
        runner.join(timeout=120)
    assert not runner.is_alive()
    res = out["res"]
    assert not res.success
    assert instance.get_run_by_id(res.run_id).status == dg.DagsterRunStatus.FAILURE
    msg = step_failure(res)
    assert f"training process (pid {victim.pid}) was killed by SIGKILL (signal 9)" in msg, msg
    assert "no checkpoint was published" in msg
    # no half checkpoint in the lake, no materialization, and no process left (nor a zombie)
    lake = LocalLake(root / "lake")
    assert not [k for k in lake.list_keys("checkpoints") if "/exp-kill/" in k]
    assert res.asset_materializations_for_node("checkpoint") == []
    assert not psutil.pid_exists(victim.pid) or victim.status() != psutil.STATUS_ZOMBIE
    assert worker_processes() == []


def test_a_refusal_in_the_training_process_fails_the_run_as_a_refusal(root, instance):
    from hvla_platform.cli.outcome import run_cause  # noqa: PLC0415  (the command's exit-code rule)

    res = materialize(root, instance, "exp-bad", release="pipes-v9", steps=5)
    assert not res.success
    msg = step_failure(res)
    # the platform's own error, in its own words (no "exited with code 1" wrapper) ...
    assert "pipes-v9" in msg and "exited with code" not in msg, msg
    (failure,) = res.get_step_failure_events()
    cls = failure.step_failure_data.user_failure_data.metadata["hvla/error_class"].value
    assert cls.startswith("hvla_platform.lib."), cls
    # ... so `hvla train` exits 2 (refused), as when the run refused in process
    cause = run_cause(instance, res.run_id)
    assert cause is not None and cause.is_refusal and cause.error_class == cls and "pipes-v9" in cause.line()
    assert worker_processes() == []


def test_a_crash_in_the_training_process_names_the_exit_code_and_error(root, instance):
    # not a platform refusal: batch size 0 is a ValueError of the training config
    res = materialize(root, instance, "exp-crash", steps=5, batch_size=0)
    assert not res.success
    msg = step_failure(res)
    assert "exited with code 1" in msg and "no checkpoint was published" in msg, msg
    assert worker_processes() == []


def test_the_training_process_dies_with_the_process_that_launched_it(tmp_path):
    """``die_with_parent`` (``PR_SET_PDEATHSIG``): when the run's process is SIGKILLed (a redeploy,
    the OOM killer), its training process does not live on as an orphan."""
    import subprocess

    launcher = (
        "import os, subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'from {WORKER_MODULE} import die_with_parent; "
        "import time; die_with_parent(); print(\"ready\", flush=True); time.sleep(120)'], "
        "env={**os.environ, 'HVLA_TRAINING_PARENT_PID': str(os.getpid())}, stdout=sys.stdout)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        lines = [parent.stdout.readline().strip() for _ in range(2)]
        child_pid = int(next(x for x in lines if x.isdigit()))
        assert "ready" in lines and psutil.pid_exists(child_pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and psutil.pid_exists(child_pid) \
                and psutil.Process(child_pid).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.1)
        assert not psutil.pid_exists(child_pid) or psutil.Process(child_pid).status() == psutil.STATUS_ZOMBIE
    finally:
        parent.kill()
        parent.wait()
        if child_pid is not None and psutil.pid_exists(child_pid):  # the test failed: do not leave it running
            try:
                psutil.Process(child_pid).kill()
            except psutil.NoSuchProcess:
                pass
