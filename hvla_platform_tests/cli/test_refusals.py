"""A refused request is one line on stderr naming the cause, exit code 2, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HVLA = [sys.executable, "-m", "hvla_platform.cli"]


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HVLA_HOME": str(home)}
    env.pop("HVLA_LAKE_ROOT", None)
    env.pop("HVLA_LAKE_BACKEND", None)
    return subprocess.run(HVLA + args, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("spec", "expected"), [
    ("name: bad-v1\nrepo_id: hvla/bad\nmin_qualty: 0.99\n",
     "unknown key 'min_qualty' (did you mean 'min_quality'?)"),
    ("name: bad-v1\nrepo_id: hvla/bad\npartitions:\n  - capture_day: '2026-11-10'\n",
     "partitions[0]: missing required field 'robot_id'"),
])
def test_a_misspelled_release_spec_is_refused_in_one_line(tmp_path, spec, expected):
    path = tmp_path / "bad-v1.yaml"
    path.write_text(spec)
    proc = _run(["release", "register", str(path)], tmp_path / "home")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"hvla release: {path}: ") and expected in lines[0]


def test_a_missing_spec_file_is_refused_in_one_line(tmp_path):
    proc = _run(["release", "register", str(tmp_path / "nope.yaml")], tmp_path / "home")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"hvla release: [Errno 2] No such file or directory: '{tmp_path / 'nope.yaml'}'"]


def test_a_bug_is_not_disguised_as_a_refusal():
    """Only the platform's own error classes (and a missing file the user named) are refusals."""
    from hvla_platform.cli.common import is_refusal
    from hvla_platform.lib.dataset.spec import ReleaseSpecError

    assert is_refusal(ReleaseSpecError("x"))
    assert is_refusal(FileNotFoundError(2, "No such file", "/x.yaml"))
    assert not is_refusal(ValueError("a bug"))
    assert not is_refusal(KeyError("a bug"))
    assert not is_refusal(FileNotFoundError("no filename: an internal lookup"))


# ---- issue 12 §3: each routine mistake is one line naming the cause, exit 2, no traceback ---------
TRACE_MARKERS = ("Traceback", "Stack Trace", 'File "')


def _run_clean(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HVLA_HOME": str(home)}
    for var in ("HVLA_LAKE_ROOT", "HVLA_LAKE_BACKEND", "DAGSTER_HOME"):
        env.pop(var, None)
    return subprocess.run(HVLA + args, env=env, capture_output=True, text=True, timeout=300)


def _refused_in_one_line(proc: subprocess.CompletedProcess, prefix: str) -> str:
    """Exit 2, no traceback text anywhere, exactly one stderr line starting with ``prefix``."""
    both = proc.stdout + proc.stderr
    assert proc.returncode == 2, both
    assert not any(m in both for m in TRACE_MARKERS), both
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A home whose lake holds one ingested partition (two episodes, consent ``consent-2026-0001``)
    and the registered spec of release ``tiny-v1``."""
    from hvla_platform.lib.core.lake import LocalLake
    from hvla_platform.lib.dataset.releases import register_release
    from hvla_platform.lib.ingest.landing import find_recordings, land_recording
    from hvla_platform.lib.ingest.raw import ingest_partition
    from hvla_platform_tests.fixtures.recordings import write_recording

    root = tmp_path_factory.mktemp("refusals")
    lake = LocalLake(root / "home" / "lake")
    for i in (1, 2):
        write_recording(root / "recs", episode_id=f"ep-reach-00{i}", seed=i)
    for rec in find_recordings(root / "recs"):
        land_recording(lake, rec)
    ingest_partition(lake, "2026-11-10", "g1-001")
    register_release(lake, "name: tiny-v1\nrepo_id: hvla/tiny\npartitions: all\nfps: 20\n")
    return root / "home"


def test_qa_approve_without_a_reason_is_one_line(home):
    line = _refused_in_one_line(_run_clean(["qa", "approve", "ep-reach-001"], home), "hvla qa: ")
    assert "a decision needs a reason" in line


def test_a_decision_on_a_mistyped_episode_is_refused_and_not_stored(home):
    line = _refused_in_one_line(_run_clean(["qa", "reject", "ep-reach-01", "--reason", "moved by hand"], home),
                                "hvla qa: ")
    assert "unknown episode 'ep-reach-01' (did you mean 'ep-reach-001'?)" in line
    assert not (home / "lake" / "qa-decisions").exists()  # nothing stored


def test_lineage_downstream_of_an_unknown_consent_is_refused_with_a_suggestion(home):
    line = _refused_in_one_line(_run_clean(["lineage", "downstream", "consent:consent-2026-001"], home),
                                "hvla lineage: ")
    assert "no episode carries consent 'consent-2026-001'" in line and "did you mean 'consent-2026-0001'?" in line


def test_rights_revoke_of_an_unknown_consent_is_one_line(home):
    line = _refused_in_one_line(_run_clean(["rights", "revoke", "--consent", "consent-2026-0002", "--reason", "x"], home),
                                "hvla rights: ")
    assert "no episode carries consent 'consent-2026-0002'" in line and "did you mean 'consent-2026-0001'?" in line
    assert not (home / "lake" / "rights-revocations").exists()


def test_release_build_of_an_unknown_release_is_refused_before_any_run(home):
    line = _refused_in_one_line(_run_clean(["release", "build", "tiny-v2"], home), "hvla release: ")
    assert "unknown release 'tiny-v2' (did you mean 'tiny-v1'?)" in line


def test_train_on_an_unknown_or_unbuilt_release_is_one_line(home):
    line = _refused_in_one_line(_run_clean(["train", "--exp", "e1", "--release", "tiny-1"], home), "hvla train: ")
    assert "unknown release 'tiny-1' (did you mean 'tiny-v1'?)" in line
    line = _refused_in_one_line(_run_clean(["train", "--exp", "e1", "--release", "tiny-v1"], home), "hvla train: ")
    assert "release 'tiny-v1' has no Robo-DM cache yet" in line


def test_serve_a_checkpoint_key_with_dot_dot_segments_is_one_line(home):
    line = _refused_in_one_line(_run_clean(["serve", "--checkpoint", "checkpoints/../../etc"], home), "hvla serve: ")
    assert "'.' or '..' segments" in line


def test_serve_an_unknown_experiment_names_the_closest_checkpoint(home, tmp_path):
    proc = _run_clean(["serve", "--checkpoint", "checkpoints/cfg/exp-1/5"], home)
    line = _refused_in_one_line(proc, "hvla serve: ")
    assert "is neither a directory nor a committed artifact" in line


@pytest.fixture(scope="module")
def untrainable_home(tmp_path_factory):
    """A home with release ``lab-v1`` built (dataset, norm stats, cache) from episodes whose rights
    allow lab_robot only, not internal_training."""
    from hvla_platform.lib.core.lake import LocalLake
    from hvla_platform.lib.dataset.build import build_release
    from hvla_platform.lib.dataset.norm_stats_build import build_norm_stats
    from hvla_platform.lib.dataset.releases import register_release
    from hvla_platform.lib.dataset.robodm_build import build_cache
    from hvla_platform.lib.ingest.landing import find_recordings, land_recording
    from hvla_platform.lib.ingest.raw import ingest_partition
    from hvla_platform.lib.processing.build import convert_partition
    from hvla_platform_tests.fixtures.recordings import default_rights, write_recording

    root = tmp_path_factory.mktemp("untrainable")
    lake = LocalLake(root / "home" / "lake")
    for i in (1, 2):
        write_recording(root / "recs", episode_id=f"ep-lab-{i}", seed=i, rights=default_rights(allowed_uses=["lab_robot"]))
    for rec in find_recordings(root / "recs"):
        land_recording(lake, rec)
    ingest_partition(lake, "2026-11-10", "g1-001")
    convert_partition(lake, "2026-11-10", "g1-001")
    spec = register_release(lake, "name: lab-v1\nrepo_id: hvla/lab\npartitions: all\nfps: 20\nheldout: {fraction: 0.0}\n")
    build_release(lake, spec)
    build_norm_stats(lake, spec)
    build_cache(lake, spec)
    return root / "home"


def test_train_on_a_release_the_rights_refuse_is_one_line_and_no_run(untrainable_home):
    line = _refused_in_one_line(_run_clean(["train", "--exp", "e1", "--release", "lab-v1", "--steps", "2"],
                                           untrainable_home), "hvla train: ")
    assert "do not allow 'internal_training'" in line
    assert not (untrainable_home / "lake" / "checkpoints").exists()


# A run that fails inside: one asset refuses (a platform error), one crashes (a bug). Run in a
# process of its own, as `hvla` runs them, on a fresh instance.
FAILING_RUNS = r"""
import sys
import dagster as dg
from hvla_platform.cli.outcome import run_and_report
from hvla_platform.lib.core.rights import RightsError

parts = dg.StaticPartitionsDefinition(["p1"])


@dg.asset(partitions_def=parts)
def refusing() -> None:
    raise RightsError("the training data's rights do not allow 'internal_training' (allowed: ['lab_robot'])")


@dg.asset(partitions_def=parts)
def crashing() -> None:
    raise KeyError("a bug")


defs = dg.Definitions(assets=[refusing, crashing], jobs=[
    dg.define_asset_job("refusing_job", selection=[refusing]), dg.define_asset_job("crashing_job", selection=[crashing])])
with dg.instance_for_test(temp_dir=sys.argv[2]) as inst:
    _, code = run_and_report("train", defs, inst, sys.argv[1], "p1")
sys.exit(code)
"""


@pytest.mark.parametrize(("job", "code", "cause"), [
    ("refusing_job", 2, "the training data's rights do not allow 'internal_training' (allowed: ['lab_robot'])"),
    ("crashing_job", 1, "step crashing failed: KeyError: 'a bug'"),
])
def test_a_failed_run_prints_its_root_cause_in_one_line(tmp_path, job, code, cause):
    """The run's summary names the root cause (not Dagster's 'Error occurred while executing op'),
    stderr ends with one line naming it, no stack trace anywhere; exit 2 when the cause is one of
    the platform's refusals, 1 for anything else."""
    proc = subprocess.run([sys.executable, "-c", FAILING_RUNS, job, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, env={k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"})
    both = proc.stdout + proc.stderr
    assert proc.returncode == code, both
    assert not any(m in both for m in TRACE_MARKERS), both
    assert "Error occurred while executing op" not in proc.stdout
    assert f"    error: {job.split('_')[0]}: {cause}" in proc.stdout.splitlines()
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("hvla train: run ") and last.endswith(f"failed: {cause}"), proc.stderr
