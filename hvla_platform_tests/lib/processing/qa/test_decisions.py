"""Quarantine by quality and supervisor decisions: releases leave out what fails, honour approvals
and rejections, and the decision history is append-only."""

import pytest

from hvla_platform.lib.ingest.landing import find_recordings, land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.processing.qa.decisions import DecisionError, decision_history, latest_decisions, record_decision
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.dataset.releases import select_episodes
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.fixtures.recordings import write_recording

SPEC = ReleaseSpec.from_yaml("name: qa-v1\nrepo_id: hvla/qa\npartitions: all\nfps: 20\n")


@pytest.fixture()
def lake(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    recs = tmp_path / "recs"
    write_recording(recs, episode_id="ep-clean-1", seed=1)
    write_recording(recs, episode_id="ep-clean-2", seed=2)
    write_recording(recs, episode_id="ep-limits", seed=3, defects=("out_of_limits",))
    for rec in find_recordings(recs):
        land_recording(lake, rec)
    ingest_partition(lake, "2026-11-10", "g1-001")
    conv = convert_partition(lake, "2026-11-10", "g1-001")
    assert {e.episode_id: e.status for e in conv.episodes} == dict.fromkeys(["ep-clean-1", "ep-clean-2", "ep-limits"], "converted")
    return lake


def test_low_quality_is_left_out_with_reason_and_raw_kept(lake):
    sel = select_episodes(lake, SPEC)
    assert [e.episode_id for e in sel.episodes] == ["ep-clean-1", "ep-clean-2"]
    assert "joint_limits" in sel.excluded["ep-limits"]
    assert lake.read_manifest("raw-mcap/2026-11-10/g1-001/ep-limits") is not None  # evidence stays


def test_approval_brings_a_flagged_episode_in_and_rejection_takes_one_out(lake):
    record_decision(lake, "ep-limits", "approve", "elbow overshoot is a calibration offset, reviewed", by="sup-anna")
    record_decision(lake, "ep-clean-2", "reject", "operator notes say the object was moved by hand", by="sup-anna")
    sel = select_episodes(lake, SPEC)
    assert [e.episode_id for e in sel.episodes] == ["ep-clean-1", "ep-limits"]
    assert "approved by sup-anna" in sel.approved["ep-limits"]
    assert sel.excluded["ep-clean-2"].startswith("rejected by sup-anna")
    # the latest decision wins; the history keeps both
    record_decision(lake, "ep-clean-2", "approve", "re-checked the video: the object was not touched", by="sup-ben")
    assert latest_decisions(lake)["ep-clean-2"]["by"] == "sup-ben"
    assert [d["decision"] for d in decision_history(lake, "ep-clean-2")] == ["reject", "approve"]
    assert "ep-clean-2" in [e.episode_id for e in select_episodes(lake, SPEC).episodes]


@pytest.mark.parametrize("args", [("ep-x", "maybe", "r"), ("ep-x", "approve", "  "), ("../x", "approve", "r")])
def test_malformed_decisions_are_refused(lake, args):
    with pytest.raises(DecisionError):
        record_decision(lake, *args)


def test_cli_records_decisions_and_lists_qa(lake, monkeypatch, capsys):
    from hvla_platform.cli.main import main

    monkeypatch.setenv("HVLA_LAKE_ROOT", str(lake.root))
    monkeypatch.setenv("HVLA_LAKE_BACKEND", "local")
    assert main(["qa", "approve", "ep-limits", "--reason", "calibration offset", "--by", "sup-cli"]) == 0
    assert latest_decisions(lake)["ep-limits"]["by"] == "sup-cli"
    assert main(["qa", "list"]) == 0
    out = capsys.readouterr().out
    assert "ep-limits" in out and "joint_limits" in out and "approve by sup-cli" in out


# ---- the decision record is a strict contract -----------------------------------------------------
@pytest.fixture()
def bare_lake(tmp_path):
    """A lake where only episode ``ep-1`` has landed (its metadata.yaml, nothing else)."""
    lake = LocalLake(tmp_path / "bare-lake")
    lake.write_bytes("landing/2026-11-10/g1-001/ep-1/metadata.yaml", b"episode_id: ep-1\n")
    return lake


def test_a_decision_on_an_unknown_episode_is_refused_with_a_suggestion(bare_lake):
    with pytest.raises(DecisionError) as err:
        record_decision(bare_lake, "ep-11", "reject", "object moved by hand", by="sup-anna")
    assert str(err.value).startswith("unknown episode 'ep-11' (did you mean 'ep-1'?)")
    assert bare_lake.list_keys("qa-decisions") == []  # nothing stored


@pytest.mark.parametrize("args,expected", [
    (("ep-x", "maybe", "r"), "QA decision: decision: expected one of 'approve' or 'reject', got 'maybe'"),
    (("ep-x", "approve", "  "), "QA decision: reason: a decision needs a reason (it is empty)"),
])
def test_a_malformed_decision_names_the_field(bare_lake, args, expected):
    with pytest.raises(DecisionError) as err:
        record_decision(bare_lake, *args, by="sup-anna")
    assert str(err.value) == expected
    assert bare_lake.list_keys("qa-decisions") == []  # nothing written


def test_a_stored_decision_with_an_unknown_key_is_an_error_naming_it(bare_lake):
    rec = record_decision(bare_lake, "ep-1", "reject", "object moved by hand", by="sup-anna")
    assert latest_decisions(bare_lake)["ep-1"] == rec  # a good record reads back unchanged
    key = "qa-decisions/ep-1/20990101T000000000000Z-hand.json"
    bare_lake.write_json(key, {"episode_id": "ep-1", "decision": "approve", "reason": "re-checked", "by": "sup-ben",
                               "at": "2099-01-01T00:00:00+00:00", "aproved_until": "2099-02-01"})
    for read in (lambda: latest_decisions(bare_lake), lambda: decision_history(bare_lake, "ep-1")):
        with pytest.raises(DecisionError) as err:
            read()
        assert str(err.value) == f"{bare_lake.uri(key)}: unknown key 'aproved_until' (valid keys: at, by, decision, " \
                                 "episode_id, reason)"


def test_a_stored_decision_with_a_misspelled_or_missing_field_is_refused(bare_lake):
    key = "qa-decisions/ep-2/20990101T000000000000Z-hand.json"
    bare_lake.write_json(key, {"episode_id": "ep-2", "decision": "approve", "reson": "ok", "by": "sup-ben",
                               "at": "2099-01-01T00:00:00+00:00"})
    with pytest.raises(DecisionError) as err:
        latest_decisions(bare_lake)
    assert str(err.value) == (f"{bare_lake.uri(key)}: missing required field 'reason'; "
                              "unknown key 'reson' (did you mean 'reason'?)")
