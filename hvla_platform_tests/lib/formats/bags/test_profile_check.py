"""How a bag maps to a robot profile: matching bags in every layout, renamed topics explained with
the closest topics found, mistyped topics, rates off by more than 20 %, extra topics."""

from __future__ import annotations

import pytest

from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.bags.profile_check import (
    RATE_TOLERANCE,
    best_matching_profile,
    check_bag_against_profile,
)
from hvla_platform.lib.formats.recording.profile import DEFAULT_PROFILE, load_profile
from hvla_platform_tests.fixtures.bags import as_layout, rewrite_mcap
from hvla_platform_tests.fixtures.recordings import write_recording
from hvla_platform_tests.paths import TESTDATA

HEAD = "/camera/head/image_raw/compressed"
KEY = f"{DEFAULT_PROFILE}@{load_profile().version}"


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile-check")
    src = write_recording(root / "src", episode_id="ep-g1", duration_s=1.0, seed=2)
    return {
        "source": src,
        "ros1": as_layout(src, root / "l" / "ep-ros1", "ros1"),
        "sqlite3_split": as_layout(src, root / "l" / "ep-sq", "sqlite3_split"),
        "renamed": rewrite_mcap(src, root / "ep-renamed", rename={HEAD: "/cam_front/compressed",
                                                                 "/joint_states": "/robot/joint_states"}),
        "mistyped": rewrite_mcap(src, root / "ep-mistyped", rename={"/task/instruction": "/arm_controller/joint_command",
                                                                   "/arm_controller/joint_command": "/arm/targets"}),
        "slow": rewrite_mcap(src, root / "ep-slow", keep=lambda raw, n: raw.topic != "/joint_states" or n % 2 == 0),
    }


@pytest.mark.parametrize("which", ["source", "ros1", "sqlite3_split"])
def test_a_recording_of_the_profile_matches_in_every_layout(recs, which):
    m = check_bag_against_profile(open_bag(recs[which]), load_profile())
    assert m.ok and m.topics_ok and m.problems == [] and m.missing_message() == ""
    assert m.profile == KEY and m.extra_topics == ()
    by = {s.stream: s for s in m.streams}
    assert set(by) == {"joint_state", "commands.arm", "locomotion", "task", "cameras.head", "cameras.wrist_right"}
    for s in m.streams:
        assert s.status == "ok" and s.found_type == s.expected_type
        assert s.rate_from == "log times" if s.expected_type == "std_msgs/msg/String" else s.rate_from == "header stamps"
        assert abs(s.rate_hz - s.nominal_rate_hz) <= RATE_TOLERANCE * s.nominal_rate_hz
    assert by["joint_state"].message_count == 101 and by["joint_state"].rate_hz == pytest.approx(100.0)
    assert by["cameras.head"].rate_hz == pytest.approx(15.0)


def test_renamed_topics_are_explained_with_the_closest_topics_found(recs):
    m = check_bag_against_profile(open_bag(recs["renamed"]), load_profile())
    assert not m.ok and not m.topics_ok
    by = {s.topic: s for s in m.streams}
    head, js = by[HEAD], by["/joint_states"]
    assert (head.status, head.closest) == ("missing", ("/cam_front/compressed",))
    assert head.closest_types == ("sensor_msgs/msg/CompressedImage",)
    assert (js.status, js.closest[0]) == ("missing", "/robot/joint_states")
    assert "/arm_controller/joint_command" not in js.closest  # claimed by the profile's arm command
    msg = m.missing_message()
    assert "\n" not in msg
    for words in (f"missing {HEAD} (sensor_msgs/msg/CompressedImage)", "missing /joint_states", f"robot profile {KEY}",
                  f"{HEAD} -> /cam_front/compressed (sensor_msgs/msg/CompressedImage)",
                  "/joint_states -> /robot/joint_states (sensor_msgs/msg/JointState)"):
        assert words in msg, msg
    assert {t.topic for t in m.extra_topics} == {"/cam_front/compressed", "/robot/joint_states"}
    text = m.format_text()
    assert "missing; closest: /cam_front/compressed (sensor_msgs/msg/CompressedImage)" in text
    assert "topics the profile does not name:" in text and "/robot/joint_states  sensor_msgs/msg/JointState  101 msgs" in text
    d = m.to_dict()
    assert d["ok"] is False and {s["status"] for s in d["streams"]} == {"ok", "missing"}


def test_a_topic_of_another_type(recs):
    m = check_bag_against_profile(open_bag(recs["mistyped"]), load_profile())
    arm = next(s for s in m.streams if s.stream == "commands.arm")
    assert arm.status == "wrong_type" and arm.found_type == "std_msgs/msg/String"
    assert arm.closest == ("/arm/targets",)  # the JointState topic nobody else claims
    assert "/arm_controller/joint_command has type 'std_msgs/msg/String', expected 'sensor_msgs/msg/JointState'" \
           in m.missing_message()
    task = next(s for s in m.streams if s.stream == "task")
    assert task.status == "missing"


def test_a_stream_at_half_its_rate(recs):
    m = check_bag_against_profile(open_bag(recs["slow"]), load_profile())
    js = next(s for s in m.streams if s.stream == "joint_state")
    assert js.status == "rate_off" and js.rate_hz == pytest.approx(50.0)
    assert m.topics_ok and not m.ok and m.missing_message() == ""
    assert m.problems == ["/joint_states runs at 50 Hz (header stamps), nominal 100 Hz (more than 20% off)"]
    no_rates = check_bag_against_profile(open_bag(recs["slow"]), load_profile(), measure_rates=False)
    assert no_rates.ok and all(s.rate_hz is None for s in no_rates.streams)


def test_the_best_matching_profile_is_suggested(recs):
    assert best_matching_profile(open_bag(recs["source"]))[0] == (KEY, 6, 6)
    renamed = best_matching_profile(open_bag(recs["renamed"]))
    assert renamed[0] == (KEY, 4, 6)
    assert best_matching_profile(open_bag(TESTDATA / "rosbag2" / "talker")) == []
