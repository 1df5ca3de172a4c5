"""The simulated recorder writes what a real ros2 bag of the G1 would contain."""

import io

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from PIL import Image

from hvla_platform.lib.formats.recording.contract import CAMERA_TOPICS, G1_ARM_JOINTS, G1_JOINTS, NOMINAL_RATES_HZ, REQUIRED_TOPICS
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.sim.recorder import record_episode


@pytest.fixture(scope="module")
def episode(tmp_path_factory):
    return record_episode(tmp_path_factory.mktemp("rec"), episode_id="ep-t-001", robot_id="g1-009",
                          capture_day="2026-11-12", seed=3, duration_s=2.0)


def test_layout_and_metadata(episode):
    assert episode.parts[-3:] == ("2026-11-12", "g1-009", "ep-t-001")
    meta = yaml.safe_load((episode / "metadata.yaml").read_text())
    assert meta["robot"] == {"id": "g1-009", "model": "unitree_g1"}
    assert meta["task"].startswith("touch the ")
    rights = Rights.from_episode_metadata(meta)
    assert "internal_training" in rights.allowed_uses and not rights.contains_human_video
    assert (episode / "operator_notes.md").read_text().startswith("# ep-t-001")


def test_mcap_streams_follow_the_contract(episode):
    per_topic: dict[str, list] = {}
    with open(episode / "ep-t-001_0.mcap", "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert summary is not None and summary.chunk_indexes
        types = {ch.topic: summary.schemas[ch.schema_id].name for ch in summary.channels.values()}
        assert types == REQUIRED_TOPICS
        for _schema, channel, message, decoded in reader.iter_decoded_messages():
            per_topic.setdefault(channel.topic, []).append((message.log_time, decoded))
    for topic, msgs in per_topic.items():
        logs = [lt for lt, _ in msgs]
        assert logs == sorted(logs)
        if topic != "/task/instruction":
            stamps = np.array([m.header.stamp.sec * 1e9 + m.header.stamp.nanosec for _, m in msgs])
            assert np.all(np.diff(stamps) > 0), topic
            rate = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9)
            assert rate == pytest.approx(NOMINAL_RATES_HZ[topic], rel=0.05), topic
            latency = np.array(logs) - stamps
            assert np.all(latency > -5e6) and latency.std() > 0, f"{topic}: log times carry jitter"
    js = per_topic["/joint_states"][0][1]
    assert list(js.name) == G1_JOINTS and len(js.position) == 29 and len(js.velocity) == 29
    assert list(per_topic["/arm_controller/joint_command"][0][1].name) == G1_ARM_JOINTS
    for topic in CAMERA_TOPICS.values():
        frame = per_topic[topic][0][1]
        assert frame.format == "jpeg"
        assert np.asarray(Image.open(io.BytesIO(bytes(frame.data)))).shape == (96, 128, 3)
    loco = per_topic["/locomotion/command"][0][1]
    assert (loco.forward_flag, loco.lateral_flag, loco.yaw_flag) == (0, 0, 0) and loco.stance_height > 0.5
