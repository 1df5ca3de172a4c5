"""An MLflow store copied with ``HVLA_HOME`` writes its artifacts into the copy, never into the
original home (issue 11, section 3): artifact locations follow the store's folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hvla_platform.lib.core import settings, tracking


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _log_one(artifact_dir: str, name: str, tmp: Path) -> tracking.TrackedRun:
    src = tmp / f"src-{name}"
    src.mkdir()
    (src / "report.txt").write_text(name)
    run = tracking.TrackedRun(settings.mlflow_tracking_uri(), "hvla-reloc", run_name=name, artifact_dir=artifact_dir)
    run.log_artifacts(src, "qa")
    run.finish()
    return run


@pytest.fixture()
def homes(tmp_path, monkeypatch):
    for k in ("MLFLOW_TRACKING_URI", "HVLA_MLFLOW_ARTIFACT_ROOT"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow creates its Default experiment under the working directory
    return tmp_path / "site-a" / "home", tmp_path / "site-b" / "moved" / "home"


def test_a_copied_store_writes_into_the_new_home_and_names_the_old_one_nowhere(homes, tmp_path, monkeypatch):
    old, new = homes
    monkeypatch.setenv("HVLA_HOME", str(old))
    first = _log_one(settings.mlflow_artifact_root(), "first", tmp_path)
    assert (old / "mlruns" / first.run_id / "artifacts" / "qa" / "report.txt").is_file()

    shutil.copytree(old, new)
    before = _files(old)
    monkeypatch.setenv("HVLA_HOME", str(new))
    second = _log_one(settings.mlflow_artifact_root(), "second", tmp_path)

    assert _files(old) == before  # nothing written to the original home
    assert (new / "mlruns" / second.run_id / "artifacts" / "qa" / "report.txt").read_text() == "second"
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow_tracking_uri())
    assert client.get_run(first.run_id).info.artifact_uri == (new / "mlruns" / first.run_id / "artifacts").as_uri()
    assert [a.path for a in client.list_artifacts(first.run_id, "qa")] == ["qa/report.txt"]  # the copied one
    exp = client.get_experiment_by_name("hvla-reloc")
    assert exp.artifact_location == (new / "mlruns").as_uri()
    assert exp.tags[tracking.RELATIVE_LOCATION_TAG] == "mlruns"
    assert str(old).encode() not in (new / "mlflow.db").read_bytes()  # not even in freed pages


def test_a_store_written_before_the_tag_is_adopted_and_other_locations_are_left_alone(homes, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    old, new = homes
    monkeypatch.setenv("HVLA_HOME", str(old))
    uri = settings.mlflow_tracking_uri()
    tracking.ensure_store(uri)
    client = MlflowClient(uri)  # what the previous code did: an absolute location, no tag
    legacy = client.create_experiment("hvla-training", artifact_location=settings.mlflow_artifact_root())
    elsewhere = tmp_path / "shared-artifacts"
    kept = client.create_experiment("someone-elses", artifact_location=elsewhere.as_uri())
    run = client.create_run(legacy)

    shutil.copytree(old, new)
    monkeypatch.setenv("HVLA_HOME", str(new))
    moved = tracking.relocate_store(settings.mlflow_tracking_uri())
    assert {(e, o) for e, o, _ in moved} >= {(legacy, (old / "mlruns").as_uri())}
    client = MlflowClient(settings.mlflow_tracking_uri())
    assert client.get_experiment(legacy).artifact_location == (new / "mlruns").as_uri()
    assert client.get_run(run.info.run_id).info.artifact_uri.startswith((new / "mlruns").as_uri() + "/")
    assert client.get_experiment(kept).artifact_location == elsewhere.as_uri()  # the operator's choice
    assert tracking.relocate_store(settings.mlflow_tracking_uri()) == []  # idempotent
