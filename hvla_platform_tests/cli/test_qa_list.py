"""`hvla qa list` shows every episode the lake has seen, with its partition and status (issue 12 §4):
converted ones with their QA, quarantined ones, landed-not-ingested ones, rejected and conflicting
uploads with the reason and the evidence; `--json` gives the same rows."""

import json
import shutil

from hvla_platform.cli.main import main
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ingest.drop_watch import record_conflict
from hvla_platform.lib.ingest.landing import land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.processing.qa.decisions import record_decision
from hvla_platform_tests.fixtures.recordings import write_recording


def test_qa_list_shows_every_landed_episode_and_every_refusal(tmp_path, monkeypatch, capsys):
    lake = LocalLake(tmp_path / "lake")
    recs = tmp_path / "recs"
    for ep, seed, defect in (("ep-ok", 1, None), ("ep-no-topic", 2, "missing_topic")):
        land_recording(lake, write_recording(recs, episode_id=ep, seed=seed, defect=defect))
    ingest_partition(lake, "2026-11-10", "g1-001")
    convert_partition(lake, "2026-11-10", "g1-001")
    land_recording(lake, write_recording(recs, episode_id="ep-later", robot_id="g1-002", seed=3))  # not ingested
    two = write_recording(recs, episode_id="ep-two", seed=4)
    shutil.copy(two / "ep-two_0.mcap", two / "ep-two_1.mcap")
    assert land_recording(lake, two).status == "rejected"
    again = shutil.copytree(recs / "ep-ok", tmp_path / "again" / "ep-ok")
    (again / "operator_notes.md").write_text("changed\n")
    res = land_recording(lake, again)
    record_conflict(lake, res, again)
    record_decision(lake, "ep-ok", "reject", "object moved by hand", by="sup-anna")

    monkeypatch.setenv("HVLA_LAKE_ROOT", str(lake.root))
    monkeypatch.setenv("HVLA_LAKE_BACKEND", "local")
    assert main(["qa", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["episodes"]
    got = [(r["episode_id"], r["partition"], r["status"]) for r in rows]
    assert got == [("ep-no-topic", "2026-11-10|g1-001", "quarantined"), ("ep-ok", "2026-11-10|g1-001", "converted"),
                   ("ep-ok", "2026-11-10|g1-001", "conflict"), ("ep-two", "2026-11-10|g1-001", "rejected"),
                   ("ep-later", "2026-11-10|g1-002", "landed")]
    by = {(r["episode_id"], r["status"]): r for r in rows}
    assert "missing /camera" in by[("ep-no-topic", "quarantined")]["why"]
    assert by[("ep-no-topic", "quarantined")]["where"].endswith("quarantine/2026-11-10/g1-001/ep-no-topic")
    assert by[("ep-ok", "converted")]["quality_score"] > 0.6
    assert by[("ep-ok", "converted")]["decision"]["decision"] == "reject"
    assert "/quarantine/_conflicts/2026-11-10/g1-001/ep-ok/" in by[("ep-ok", "conflict")]["where"]
    assert "expected exactly one .mcap" in by[("ep-two", "rejected")]["why"]

    assert main(["qa", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["episode", "partition", "status", "score"]
    assert any(line.split()[:3] == ["ep-no-topic", "2026-11-10|g1-001", "quarantined"] for line in out)
    assert any(line.split()[:3] == ["ep-two", "2026-11-10|g1-001", "rejected"] for line in out)
    assert out[-1] == "= 5 row(s): 1 conflict, 1 converted, 1 landed, 1 quarantined, 1 rejected"
