"""Robot profiles: strict validation, lookup with did-you-mean, and the G1 profile = the recording contract."""

from __future__ import annotations

from pathlib import Path

import mujoco
import pytest

from hvla_platform.lib.formats.recording import contract
from hvla_platform.lib.formats.recording.profile import (
    DEFAULT_PROFILE,
    ProfileError,
    available_profiles,
    load_profile,
    load_profile_file,
    parse_profile,
)

G1_TEXT = available_profiles()[DEFAULT_PROFILE].read_text()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_default_profile_is_the_recording_contract():
    prof = load_profile()
    assert prof.key == "unitree_g1_29dof@1"
    assert prof.state_names == contract.G1_JOINTS
    assert prof.action_names == contract.G1_ARM_JOINTS
    assert prof.required_topics == contract.REQUIRED_TOPICS
    assert prof.nominal_rates_hz == contract.NOMINAL_RATES_HZ
    assert {c: p.topic for c, p in prof.cameras.items()} == contract.CAMERA_TOPICS
    assert {(c.height, c.width) for c in prof.cameras.values()} == {(contract.CAMERA_HEIGHT, contract.CAMERA_WIDTH)}
    assert prof.rgb_cameras == ["head", "wrist_right"] and prof.depth_cameras == []


@pytest.mark.parametrize("name", sorted(available_profiles()))
def test_every_shipped_profile_loads_and_its_joints_are_in_its_model(name):
    prof = load_profile(name)
    names = set()
    for path in prof.robot.description_paths():
        model = mujoco.MjModel.from_xml_path(str(path))
        names |= {model.joint(i).name for i in range(model.njnt)}
    missing = [j for j in prof.state_names + prof.action_names if j not in names]
    assert not missing, f"{name}: joints not in {prof.robot.description_paths()}: {missing}"
    assert set(prof.action_names) <= set(prof.state_names)


def test_misspelled_key_names_the_key_and_the_closest(tmp_path):
    bad = G1_TEXT.replace("rate_hz: 15", "rate_hzz: 15", 1)
    with pytest.raises(ProfileError) as exc:
        load_profile_file(_write(tmp_path, DEFAULT_PROFILE, bad))
    msg = str(exc.value)
    assert "\n" not in msg and "rate_hzz" in msg and "rate_hz" in msg and str(tmp_path) in msg


def test_bad_values_are_refused_with_a_reason():
    with pytest.raises(ProfileError, match="encoding 'rgb8' is not one of"):
        parse_profile(G1_TEXT.replace("encoding: jpeg", "encoding: rgb8", 1))
    with pytest.raises(ProfileError, match="features.action names command stream 'armm'.*did you mean 'arm'"):
        parse_profile(G1_TEXT.replace("action: [arm]", "action: [armm]"))
    with pytest.raises(ProfileError, match="is used by both"):
        parse_profile(G1_TEXT.replace("/camera/wrist_right/image_raw/compressed", "/camera/head/image_raw/compressed"))
    with pytest.raises(ProfileError, match="not valid YAML"):
        parse_profile("profile: [unclosed")


def test_lookup_suggests_and_checks_versions(tmp_path):
    with pytest.raises(ProfileError, match="unknown robot profile 'unitree_g1_29do' \\(did you mean 'unitree_g1_29dof'"):
        load_profile("unitree_g1_29do")
    with pytest.raises(ProfileError, match="at version 1 .* not version 2"):
        load_profile("unitree_g1_29dof@2")
    assert load_profile("unitree_g1_29dof@1").version == 1
    # a lab's own directory comes first, and a file must be named after its profile
    _write(tmp_path, "lab_g1", G1_TEXT.replace("profile: unitree_g1_29dof", "profile: lab_g1"))
    assert load_profile("lab_g1", search_dirs=[tmp_path]).profile == "lab_g1"
    _write(tmp_path, "other_name", G1_TEXT)
    with pytest.raises(ProfileError, match="must be in a file named unitree_g1_29dof.yaml"):
        load_profile("other_name", search_dirs=[tmp_path])


def test_float64_commands_carry_one_joint():
    text = G1_TEXT.replace("type: sensor_msgs/msg/JointState\n    rate_hz: 50", "type: std_msgs/msg/Float64\n    rate_hz: 50")
    with pytest.raises(ProfileError, match="carries one value"):
        parse_profile(text)
