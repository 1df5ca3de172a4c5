"""Release specs are validated strictly: a misspelled key, a missing field or a wrong type is a
ReleaseSpecError naming the file, the key and what was expected — never silently ignored."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from hvla_platform.lib.core.keys import spec_key
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.dataset.releases import load_release, register_release
from hvla_platform.lib.dataset.spec import ReleaseSpec, ReleaseSpecError
from hvla_platform_tests.paths import REPO_ROOT

DEMO_SPEC = REPO_ROOT / "releases" / "g1-reach-v1.yaml"
# a copy of the demo spec as committed when specs became strict; its digest is part of the demo's
# fingerprints, so parsing it must keep giving exactly this canonical form
DEMO_TEXT = """\
name: g1-reach-v1
repo_id: hvla/g1-reach
description: Simulated Unitree G1 reaching and touching a coloured object on a table (pelvis fixed).
partitions: all
fps: 20
cameras: [head, wrist_right]
heldout:
  fraction: 0.25
  seed: 0
video_codec: h264
"""
DEMO_DIGEST = "eaaa12f3f974f26f6d4d73b74acb7e750861276e5cfdf3011771a08b1d063899"
BASE = "name: strict-v1\nrepo_id: hvla/strict\n"


def refused(text: str, source: str = "releases/strict-v1.yaml") -> str:
    with pytest.raises(ReleaseSpecError) as err:
        ReleaseSpec.from_yaml(text, source=source)
    return str(err.value)


def test_a_misspelled_min_quality_is_refused_not_dropped():
    # before: the release silently kept the default 0.6
    assert refused(BASE + "min_qualty: 0.99\n") == \
        "releases/strict-v1.yaml: unknown key 'min_qualty' (did you mean 'min_quality'?)"
    assert ReleaseSpec.from_yaml(BASE + "min_quality: 0.99\n").min_quality == 0.99


def test_a_partition_without_robot_id_is_a_clear_error_not_a_key_error():
    assert refused(BASE + "partitions: [{capture_day: '2026-11-10'}]\n") == \
        "releases/strict-v1.yaml: partitions[0]: missing required field 'robot_id'"


@pytest.mark.parametrize("extra,expected", [
    ("min_quality: high\n", "min_quality: expected a number, got 'high'"),
    ("fps: 20.5\n", "fps: expected an integer, got 20.5"),
    ("fps: 5000\n", "fps: expected a value <= 1000, got 5000"),
    ("heldout: {fraction: 0.2, sed: 3}\n", "heldout: unknown key 'sed' (did you mean 'seed'?)"),
    ("heldout: {fraction: 1.0}\n", "heldout.fraction: expected a value < 1.0, got 1.0"),
    ("partitions: some\n", "partitions: must be 'all' or a list of {capture_day, robot_id}, got 'some'"),
    ("partitions: [{capture_day: 2026-11-10, robot: g1-001}]\n",
     "partitions[0]: missing required field 'robot_id'; partitions[0]: unknown key 'robot' (did you mean 'robot_id'?)"),
    ("cameras: [head, wrist_left]\n", "cameras: unknown camera(s) of robot profile unitree_g1_29dof: 'wrist_left' "
     "(did you mean 'wrist_right'?) — its colour cameras are ['head', 'wrist_right']"),
    ("cross_customer_grant: {reference: g, granted_by: legal, customers: [acme]}\n",
     "cross_customer_grant.customers: expected at least 2 item(s), got ['acme']"),
    ("cross_customer_grant: {reference: g, granted_by: legal, customer: [acme, globex]}\n",
     "cross_customer_grant: missing required field 'customers'; cross_customer_grant: unknown key 'customer' "
     "(did you mean 'customers'?)"),
])
def test_wrong_values_name_the_field_and_what_was_expected(extra, expected):
    assert refused(BASE + extra) == f"releases/strict-v1.yaml: {expected}"


def test_missing_and_malformed_identity():
    assert refused("repo_id: hvla/x\n") == "releases/strict-v1.yaml: missing required field 'name'"
    assert refused("name: 'a b'\nrepo_id: nope\n") == (
        "releases/strict-v1.yaml: name: must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter "
        "or digit), got 'a b'; repo_id: must look like '<org>/<name>', got 'nope'")
    assert refused("- name\n") == "releases/strict-v1.yaml: must be a mapping of keys to values, it holds a list"
    assert refused("name: [x\n").startswith("releases/strict-v1.yaml: not valid YAML: ")


def test_the_committed_demo_spec_with_a_typo_is_refused_naming_the_file():
    text = DEMO_SPEC.read_text().replace("video_codec:", "video_codex:")
    assert "video_codex" in text
    assert refused(text, source=str(DEMO_SPEC)) == \
        f"{DEMO_SPEC}: unknown key 'video_codex' (did you mean 'video_codec'?)"


def test_demo_spec_canonical_form_and_digest_are_unchanged():
    spec = ReleaseSpec.from_yaml(DEMO_TEXT)
    assert spec.digest() == DEMO_DIGEST
    assert spec.digest() == hashlib.sha256(yaml.safe_dump(spec.to_dict(), sort_keys=True).encode()).hexdigest()
    assert list(spec.to_dict()) == ["name", "repo_id", "partitions", "fps", "cameras", "state_joints", "action_joints",
                                    "video_codec", "robot_type", "description", "min_quality", "heldout"]
    assert spec.to_dict()["partitions"] == "all" and spec.to_dict()["min_quality"] == 0.6
    # the committed file parses (and to_dict round-trips through the strict parser)
    committed = ReleaseSpec.from_yaml(DEMO_SPEC.read_text(), source=str(DEMO_SPEC))
    assert ReleaseSpec.from_mapping(committed.to_dict()) == committed


def test_to_dict_round_trips_every_field_through_the_strict_parser():
    text = BASE + (
        "description: all fields\npartitions: [{capture_day: 2026-11-11, robot_id: g1-b}, "
        "{capture_day: '2026-11-10', robot_id: g1-a}]\nfps: 30\ncameras: [head]\n"
        "state_joints: [left_elbow_joint, waist_yaw_joint]\n"  # names of the (default) robot profile
        "action_joints: [left_elbow_joint]\nheldout: {episode_ids: [ep-2, ep-1], seed: 4, fraction: 0.5}\nvideo_codec: libsvtav1\n"
        "robot_type: other\nmin_quality: 1\ncross_customer_grant: {reference: g, granted_by: legal, "
        "customers: [globex, acme]}\n")
    spec = ReleaseSpec.from_yaml(text)
    assert spec.partitions == (("2026-11-10", "g1-a"), ("2026-11-11", "g1-b"))
    assert spec.heldout_episode_ids == ("ep-2", "ep-1") and spec.min_quality == 1.0
    assert spec.cross_customer_grant == {"reference": "g", "granted_by": "legal", "customers": ["acme", "globex"]}
    again = ReleaseSpec.from_mapping(spec.to_dict())
    assert again == spec and again.digest() == spec.digest()


def test_a_bad_stored_spec_names_its_lake_object(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    with pytest.raises(ReleaseSpecError, match=r"^my-spec\.yaml: unknown key 'min_qualty'"):
        register_release(lake, BASE + "min_qualty: 0.9\n", source="my-spec.yaml")
    assert not lake.exists(spec_key("strict-v1"))  # nothing registered
    lake.write_bytes(spec_key("strict-v1"), (BASE + "partitions: [{capture_day: '2026-11-10'}]\n").encode())
    with pytest.raises(ReleaseSpecError) as err:
        load_release(lake, "strict-v1")
    assert str(err.value) == f"{lake.uri(spec_key('strict-v1'))}: partitions[0]: missing required field 'robot_id'"
