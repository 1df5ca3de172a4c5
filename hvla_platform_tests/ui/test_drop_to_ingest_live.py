"""Without a click: the real Dagster daemon (as `hvla ui` / `dagster dev` / production run it) picks up
a recording copied into the drop area, lands it and ingests its partition through raw_mcap and
episodes_hdf5 — no run launched by the test."""

import shutil
import time
from pathlib import Path

import pytest

from hvla_platform_tests.ui.dagster_ui import DagsterUI, graphql

REPO = Path(__file__).resolve().parents[2]
RECORDING = REPO / "data" / "recordings" / "2026-11-10" / "g1-001" / "ep-20261110-g1-001-001"

MATERIALIZATIONS = """{ assetOrError(assetKey: {path: ["%s"]}) { __typename ... on Asset {
  assetMaterializations(limit: 10) { partition runId } } } }"""
RUNS = """{ runsOrError { ... on Runs { results { runId status jobName tags { key value } } } } }"""
TICKS = """query($after: Float) { repositoriesOrError { ... on RepositoryConnection { nodes { sensors { name
  sensorState { ticks(limit: 5, afterTimestamp: $after) { status timestamp skipReason } } } } } } }"""


def materializations(base_url: str, asset: str) -> list[dict]:
    a = graphql(base_url, MATERIALIZATIONS % asset)["assetOrError"]
    return a.get("assetMaterializations", []) if a["__typename"] == "Asset" else []


def finished_landing_ticks(base_url: str, after: float) -> list[dict]:
    """The landing sensor's ticks that started after ``after`` (epoch seconds) and have finished."""
    nodes = graphql(base_url, TICKS, variables={"after": after})["repositoriesOrError"]["nodes"]
    return [t for n in nodes for s in n["sensors"] if s["name"] == "landing_sensor"
            for t in s["sensorState"]["ticks"] if t["status"] != "STARTED" and t["timestamp"] > after]


@pytest.mark.browser
def test_a_dropped_recording_is_ingested_by_the_daemon(tmp_path, monkeypatch):
    home = tmp_path / "home"
    drop = home / "drop"
    drop.mkdir(parents=True)
    (home / "dagster").mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")  # what `hvla` sets up
    monkeypatch.setenv("HVLA_DROP_SETTLE_SECONDS", "0")  # the copy below is complete at once
    monkeypatch.setenv("HVLA_LANDING_INTERVAL_SECONDS", "5")  # a tick every 5 s instead of 30
    with DagsterUI(home, tmp_path / "logs") as ui:
        # an upload in progress: the MCAP first ...
        target = drop / "upload-1"
        target.mkdir()
        shutil.copy2(next(RECORDING.glob("*.mcap")), target)
        copied = time.time()
        # until a landing-sensor tick (one every 5 s here) that started after the copy has finished: it
        # saw the partial upload, and skipped it as waiting for metadata.yaml
        deadline = time.monotonic() + 120
        while not (ticks := finished_landing_ticks(ui.base_url, copied)):
            assert time.monotonic() < deadline, f"no landing-sensor tick within 120 s; see {tmp_path / 'logs'}"
            time.sleep(1)
        assert "partial upload(s) waiting for metadata.yaml" in (ticks[-1]["skipReason"] or ""), ticks
        assert materializations(ui.base_url, "raw_mcap") == []
        assert not (home / "lake" / "landing").exists() or not any((home / "lake" / "landing").rglob("*.mcap"))
        # ... then the notes and, last, metadata.yaml: the upload is complete
        for f in sorted(RECORDING.iterdir(), key=lambda f: f.name == "metadata.yaml"):
            if not f.name.endswith(".mcap"):
                shutil.copy2(f, target)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # until the sensor's run has finished
            runs = graphql(ui.base_url, RUNS)["runsOrError"]["results"]
            if runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs):
                break
            time.sleep(3)
        else:
            pytest.fail(f"the dropped recording was not ingested within 240 s; see {tmp_path / 'logs'}")
        assert "2026-11-10|g1-001" in {m["partition"] for m in materializations(ui.base_url, "episodes_hdf5")}
        assert len(runs) == 1 and runs[0]["jobName"] == "ingest_job" and runs[0]["status"] == "SUCCESS"
        tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
        assert tags["dagster/sensor_name"] == "landing_sensor" and tags["hvla/stage"] == "ingest"
        assert [m["partition"] for m in materializations(ui.base_url, "raw_mcap")] == ["2026-11-10|g1-001"]
    # the drop area is only read
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in RECORDING.iterdir())
    assert (home / "lake" / "raw-mcap" / "2026-11-10" / "g1-001" / RECORDING.name).is_dir()
