"""Lineage after a consent withdrawal: flags shown on the flagged nodes and hits, withdrawn inputs
named, and the summary still counts what the checkpoint was trained on (issue 13 §3).

Reuses the session-cached pipeline lake of ``test_graph`` (checkpoint trained on ``ep-a-1, ep-a-2``
of robot g1-001 on 2026-11-10 under consent-A and ``ep-b-1`` of g1-002 on 2026-11-11 under
consent-B) and withdraws consent-A on a copy. Before the fix the summary read "1 raw episode(s) from
1 robot(s), 1 capture day(s)": the withdrawn episodes' raw manifests (and their whole HDF5
partition) are gone, so the tree's raw leaves are only ``ep-b-1``.
"""

from __future__ import annotations

import json
import shutil

import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.lineage import graph as lin
from hvla_platform.lib.ops.revocation import RevocationError, revoke_consent
from hvla_platform_tests.cli.test_lineage_cli import _run
from hvla_platform_tests.lib.lineage.test_graph import CKPT, EVAL, build_pipeline_lake

REASON = "demonstrator withdrew consent (ticket 4711)"


@pytest.fixture(scope="module")
def revoked(tmp_path_factory):
    """A copy of the pipeline lake after ``revoke_consent(consent-A)``; returns ``(lake, result)``.

    The release rebuild is not run (``rebuild_release`` only records the name): lineage of the old
    artifacts is what is tested, and the fully withdrawn HDF5 partition is removed as in production.
    """
    home, _ = build_pipeline_lake()
    dst = tmp_path_factory.mktemp("lin-flags") / "lake"
    shutil.copytree(home / "lake", dst, ignore=shutil.ignore_patterns(".hvla-tmp", "_index"))
    lake = LocalLake(dst)
    res = revoke_consent(lake, "consent-A", reason=REASON, by="dpo", rebuild_release=lambda name: None)
    return lake, res


@pytest.fixture()
def _env(revoked, monkeypatch):
    monkeypatch.setenv("HVLA_LAKE_ROOT", str(revoked[0].root))
    monkeypatch.delenv("HVLA_LAKE_BACKEND", raising=False)


def test_upstream_text_counts_withdrawn_episodes_and_shows_flags(revoked, _env, capsys):
    lake, res = revoked
    assert [n.episode_ids for n in lin.upstream(lake, CKPT).raw_episodes()] == [["ep-b-1"]]  # what the old count used
    rc, out, err = _run(["lineage", "upstream", CKPT, "--no-config"], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[-1] == ("= 3 raw episode(s) from 2 robot(s), 2 capture day(s) (2 withdrawn: consent consent-A); "
                         "flagged: 3 do_not_use, 1 retrain_required")
    assert lines[0].startswith(f"checkpoint {CKPT}") and lines[0].endswith(
        f"[RETRAIN_REQUIRED: consent consent-A withdrawn {lake.read_json(res.record_key)['at']}: {REASON}; "
        f"record {res.record_key}]")
    assert any(ln.lstrip("│├└─ ").startswith("norm_stats norm-stats/lin-v1") and "[DO_NOT_USE: consent consent-A" in ln
               for ln in lines)
    withdrawn = [ln for ln in lines if "WITHDRAWN input" in ln]
    assert [ln.split("WITHDRAWN input ")[1].split(":")[0] for ln in withdrawn] == [
        "episodes-hdf5/2026-11-10/g1-001/ep-a-1.h5", "episodes-hdf5/2026-11-10/g1-001/ep-a-2.h5"]
    assert all(REASON in ln and res.record_key in ln for ln in withdrawn)
    # the kept consent-B partition is not flagged
    assert not any("episodes-hdf5/2026-11-11/g1-002" in ln and "DO_NOT_USE" in ln for ln in lines)


def test_upstream_json_carries_flags_and_summary(revoked, _env, capsys):
    lake, res = revoked
    rc, out, _ = _run(["lineage", "upstream", CKPT, "--json"], capsys)
    assert rc == 0
    d = json.loads(out)
    flag = d["tree"]["flag"]
    assert flag["status"] == "retrain_required" and flag["consent"] == "consent-A" and flag["reason"] == REASON
    assert flag["revocation"] == res.record_key and flag["by"] == "dpo"
    s = d["summary"]
    assert (s["raw_episodes"], s["robots"], s["capture_days"]) == (3, 2, 2)
    assert s["episode_ids"] == ["ep-a-1", "ep-a-2", "ep-b-1"] and s["robot_ids"] == ["g1-001", "g1-002"]
    assert sorted(s["withdrawn_episodes"]) == ["ep-a-1", "ep-a-2"] and s["missing_episodes"] == []
    assert s["withdrawn_episodes"]["ep-a-1"]["revocation"] == res.record_key
    assert {k: f["status"] for k, f in s["flagged"].items()} == {
        CKPT: "retrain_required", "norm-stats/lin-v1": "do_not_use", "robodm-cache/lin-v1": "do_not_use",
        "lerobot/hvla/lin/lin-v1": "do_not_use"}
    kept = [c for c in d["tree"]["children"][0]["children"][0]["children"] if c["type"] == "episodes_hdf5"]
    assert kept and kept[0]["flag"] is None and kept[0]["withdrawn"] is None
    gone = [c for c in d["tree"]["children"][0]["children"][0]["children"] if c["withdrawn"]]
    assert [c["episode_ids"] for c in gone] == [["ep-a-1"], ["ep-a-2"]] and all(c["type"] == "missing" for c in gone)


def test_downstream_shows_flags(revoked, _env, capsys):
    rc, out, _ = _run(["lineage", "downstream", "ep-b-1", "--json", "--no-raw"], capsys)
    assert rc == 0
    status = {a["key"]: (a["flag"] or {}).get("status") for a in json.loads(out)["artifacts"]}
    assert status[CKPT] == "retrain_required" and status[EVAL] == "do_not_use"
    assert status["episodes-hdf5/2026-11-11/g1-002"] is None
    rc, out, _ = _run(["lineage", "downstream", "ep-b-1"], capsys)
    assert rc == 0
    line = next(ln for ln in out.splitlines() if CKPT in ln)
    assert "[RETRAIN_REQUIRED: consent consent-A" in line and REASON in line


def test_downstream_of_a_withdrawn_consent_still_answers(revoked, _env, capsys):
    lake, res = revoked
    rc, out, err = _run(["lineage", "downstream", "consent:consent-A", "--json"], capsys)
    assert rc == 0, err
    arts = {a["key"]: a for a in json.loads(out)["artifacts"]}
    assert not any(k.startswith("raw-mcap/") for k in arts)  # moved to restricted/
    assert arts[CKPT]["episode_ids"] == ["ep-a-1", "ep-a-2"] and arts[CKPT]["flag"]["status"] == "retrain_required"
    with pytest.raises(RevocationError, match=f"consent 'consent-A' was already withdrawn \\({res.record_key}\\)"):
        revoke_consent(lake, "consent-A", reason="again")


def test_reingest_of_withdrawn_partition_says_withdrawn(revoked):
    lake, res = revoked
    with pytest.raises(ValueError) as exc:
        ingest_partition(lake, "2026-11-10", "g1-001")
    assert str(exc.value) == (f"partition 2026-11-10|g1-001 withdrawn: 2 episodes of this partition were withdrawn "
                              f"(consent consent-A, {REASON}; record {res.record_key}); nothing left to ingest")
