"""The metadata.yaml contract: every key a recorder writes is known; anything else is refused with
the key, the file and the closest valid key."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
import yaml

from hvla_platform.lib.core.rights import Rights, RightsError
from hvla_platform.lib.formats.recording.metadata import (
    RecordingMetadata,
    RecordingMetadataError,
    parse_recording_metadata,
)
from hvla_platform.lib.sim.recorder import record_episode
from hvla_platform_tests.fixtures.recordings import default_rights, write_recording
from hvla_platform_tests.paths import REPO_ROOT

COMMITTED = sorted((REPO_ROOT / "data" / "recordings").glob("*/*/*/metadata.yaml"))
SOURCE = "recs/ep-1/metadata.yaml"


@pytest.fixture(scope="module")
def good() -> dict:
    return yaml.safe_load(COMMITTED[0].read_text())


def refused(meta: dict) -> str:
    with pytest.raises(RecordingMetadataError) as err:
        parse_recording_metadata(meta, source=SOURCE)
    return str(err.value)


def test_every_committed_recording_keeps_the_contract():
    assert len(COMMITTED) == 8
    for path in COMMITTED:
        meta = parse_recording_metadata(yaml.safe_load(path.read_text()), source=str(path))
        assert meta.robot is not None and meta.rights is not None and meta.outcome is not None


def test_what_the_sim_recorder_and_the_test_fixtures_write_keeps_the_contract(tmp_path):
    sim = record_episode(tmp_path / "sim", episode_id="ep-sim", robot_id="g1-009", capture_day="2026-11-12",
                         seed=1, duration_s=0.3)
    fixture = write_recording(tmp_path / "fx", episode_id="ep-fx", duration_s=0.5)
    no_rights = write_recording(tmp_path / "fx", episode_id="ep-nr", duration_s=0.5, defect="no_rights")
    for folder in (sim, fixture, no_rights):
        meta = parse_recording_metadata(yaml.safe_load((folder / "metadata.yaml").read_text()))
        assert meta.episode_id == folder.name
    assert parse_recording_metadata(yaml.safe_load((no_rights / "metadata.yaml").read_text())).rights is None


def test_a_misspelled_rights_flag_is_refused_not_read_as_false(good):
    meta = copy.deepcopy(good)
    del meta["rights"]["contains_customer_environment"]
    meta["rights"]["contains_customer_enviroment"] = True
    assert refused(meta) == (f"{SOURCE}: rights: unknown key 'contains_customer_enviroment' "
                             "(did you mean 'contains_customer_environment'?)")
    # the rights parser itself refuses it too (it used to return contains_customer_environment=False)
    with pytest.raises(RightsError, match=r"^rights: unknown key 'contains_customer_enviroment' \(did you mean "
                                          r"'contains_customer_environment'\?\)$"):
        Rights.from_episode_metadata(meta)


@pytest.mark.parametrize("edit,expected", [
    (lambda m: m.update(opertor="op-1"), "unknown key 'opertor' (did you mean 'operator'?)"),
    (lambda m: m["scene"]["object"].update(color="red"), "scene.object: unknown key 'color' (did you mean 'colour'?)"),
    (lambda m: m["outcome"].update(succes=True), "outcome: unknown key 'succes' (did you mean 'success'?)"),
    (lambda m: m["robot"].update(modle="g1"), "robot: unknown key 'modle' (did you mean 'model'?)"),
    (lambda m: m.pop("episode_id"), "missing required field 'episode_id'"),
    (lambda m: m.pop("capture_date"), "missing required field 'capture_date'"),
    (lambda m: m.pop("robot"), "missing required field 'robot' (a mapping with the robot's 'id'; or a top-level "
                               "'robot_id')"),
    (lambda m: m["robot"].pop("id"), "robot: missing required field 'id'"),
    (lambda m: m["rights"].pop("license"), "rights: missing required field 'license'"),
    (lambda m: m["outcome"].update(success="yes"), "outcome.success: expected true or false, got 'yes'"),
    (lambda m: m.update(duration_s="long"), "duration_s: expected a number, got 'long'"),
    (lambda m: m.update(topics="/joint_states"), "topics: expected a list, got '/joint_states'"),
])
def test_unknown_missing_and_mistyped_keys_are_named(good, edit, expected):
    meta = copy.deepcopy(good)
    edit(meta)
    assert refused(meta) == f"{SOURCE}: {expected}"


def test_optional_sections_stay_optional_and_robot_id_may_be_top_level(good):
    minimal = {"episode_id": "ep-1", "robot_id": "g1-001", "capture_date": dt.date(2026, 11, 10)}
    meta = parse_recording_metadata(minimal)
    assert isinstance(meta, RecordingMetadata) and meta.capture_date == "2026-11-10" and meta.rights is None
    full = parse_recording_metadata(copy.deepcopy(good))
    assert full.rights is not None and full.rights.contains_customer_environment is False


def test_a_rights_block_with_site_and_customer_and_default_rights_is_accepted():
    rights = default_rights(site="lab-2", customer="acme")
    meta = {"episode_id": "ep-1", "robot": {"id": "g1-001"}, "capture_date": "2026-11-10", "rights": rights}
    assert parse_recording_metadata(meta).rights is not None
    assert Rights.from_episode_metadata(meta).customers == {"acme"}
