"""`hvla ingest` tells the truth (issue 12 §3, §4): exit 0 only when every recording made it, 5 when
some were rejected, quarantined or in conflict, with one table saying where each went and why; every
refusal keeps its evidence in the lake and is recorded on the raw_mcap partition in Dagster."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ingest.landing import land_recording
from hvla_platform_tests.fixtures.recordings import write_recording

HVLA = [sys.executable, "-m", "hvla_platform.cli"]
PART = "2026-11-10|g1-001"


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HVLA_HOME": str(home)}
    for var in ("HVLA_LAKE_ROOT", "HVLA_LAKE_BACKEND", "DAGSTER_HOME"):
        env.pop(var, None)
    return subprocess.run(HVLA + args, env=env, capture_output=True, text=True, timeout=600)


def _observations(home: Path) -> list:
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home / "dagster")
    try:
        with dg.DagsterInstance.get() as inst:
            return list(inst.fetch_observations(dg.AssetKey("raw_mcap"), limit=100).records)
    finally:
        del os.environ["DAGSTER_HOME"]


@pytest.fixture()
def upload(tmp_path):
    """A folder of five recordings: one good, one failing a raw check, one with two MCAPs, one whose
    metadata does not parse, and a changed re-upload of an episode that already landed."""
    home, up = tmp_path / "home", tmp_path / "upload"
    lake = LocalLake(home / "lake")
    first = write_recording(tmp_path / "before", episode_id="ep-again", seed=3)
    land_recording(lake, first)
    write_recording(up, episode_id="ep-good", seed=1)
    write_recording(up, episode_id="ep-no-topic", seed=2, defect="missing_topic")
    two = write_recording(up, episode_id="ep-two-mcaps", seed=4)
    shutil.copy(two / "ep-two-mcaps_0.mcap", two / "ep-two-mcaps_1.mcap")
    bad = write_recording(up, episode_id="ep-bad-yaml", seed=5)
    (bad / "metadata.yaml").write_text("episode_id: [unclosed\n")
    again = shutil.copytree(first, up / "ep-again")
    (again / "operator_notes.md").write_text("re-uploaded with different notes\n")
    return home, up


def test_ingest_exits_5_with_a_table_and_keeps_evidence_of_every_refusal(upload):
    home, up = upload
    proc = _run(["ingest", str(up), "--materialize"], home)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    table = proc.stdout[proc.stdout.index("where it went"):].splitlines()
    rows = {line.split()[0]: line.split()[2] for line in table[1:-1]}
    assert rows == {"ep-good": "converted", "ep-no-topic": "quarantined", "ep-two-mcaps": "rejected",
                    "(ep-bad-yaml)": "rejected", "ep-again": "conflict"}, proc.stdout
    assert "missing /camera" in next(r for r in table if r.startswith("ep-no-topic"))
    assert "expected exactly one .mcap" in next(r for r in table if r.startswith("ep-two-mcaps"))
    assert table[-1] == "= 5 recording(s): 1 conflict, 1 converted, 1 quarantined, 2 rejected"
    assert proc.stderr.strip().splitlines()[-1].startswith("hvla ingest: 4 of 5 recording(s) did not make it")

    # evidence in the lake: the conflicting re-upload like the drop area keeps it, rejections with reason.json
    lake = home / "lake"
    conflict = json.loads(next((lake / "quarantine/_conflicts/2026-11-10/g1-001/ep-again").glob("*/reason.json")).read_text())
    assert conflict["status"] == "conflict" and "operator_notes.md" in conflict["differing_files"]
    assert next((lake / "quarantine/_conflicts/2026-11-10/g1-001/ep-again").glob("*/files/operator_notes.md")).read_text() \
        == "re-uploaded with different notes\n"
    rejected = [json.loads(p.read_text()) for p in (lake / "quarantine/_rejected").glob("*/reason.json")]
    assert sorted(r.get("episode_id", "?") for r in rejected) == ["?", "ep-two-mcaps"]

    # in Dagster: each refusal is an observation on raw_mcap naming the episode (the CLI's at landing,
    # the asset's when the partition materialized)
    obs = _observations(home)
    named = {(o.partition_key, o.asset_observation.metadata["hvla/episode_id"].value,
              o.asset_observation.metadata["hvla/landing_refusal"].value) for o in obs}
    assert {(PART, "ep-two-mcaps", "rejected"), (PART, "ep-again", "conflict"),
            (None, "(none named)", "rejected")} <= named
    from_run = [o for o in obs if o.run_id]
    assert {o.asset_observation.metadata["hvla/episode_id"].value for o in from_run} == {"ep-two-mcaps", "ep-again"}


def test_ingest_exits_0_only_when_everything_landed(tmp_path):
    write_recording(tmp_path / "up", episode_id="ep-a", seed=1)
    write_recording(tmp_path / "up", episode_id="ep-b", seed=2)
    proc = _run(["ingest", str(tmp_path / "up")], tmp_path / "home")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "= 2 recording(s): 2 landed"
    again = _run(["ingest", str(tmp_path / "up")], tmp_path / "home")  # the same upload again: nothing refused
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == "= 2 recording(s): 2 landed", again.stdout
