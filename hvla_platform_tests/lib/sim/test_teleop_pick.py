"""The teleop recorder makes seed-003 episodes: the UR5e + 2F-85 approaches under teleop with pauses
(no-op frames), the skill's grasp closes on nothing and fails verification, the operator corrects
and grasps, and the skill resumes and lifts the cube; both cameras at 256 × 256, 30 Hz, the
folder read back strictly, ``metadata.yaml`` valid with ``format: seed003_pkl``. Recorded once
through ``hvla sim record --source teleop``."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hvla_platform.cli.main import main
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.formats.recording.metadata import parse_recording_metadata
from hvla_platform.lib.formats.teleop.pkl_episode import read_teleop_episode
from hvla_platform.lib.sim.teleop_pick import GRASP_THRESHOLD, PAUSE_S, RECORD_HZ, TELEOP_FORMAT

NOOP_RAD = 1e-4  # seed 003's no-op threshold


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("teleop")
    code = main(["sim", "record", "--source", "teleop", "--out", str(out), "--episodes", "1", "--seed", "3",
                 "--capture-days", "2026-11-12"])
    assert code == 0
    folder = out / "2026-11-12" / "ur5e-001" / "tp-20261112-ur5e-001-001"
    return folder, read_teleop_episode(folder)


def test_the_folder_is_a_seed_003_episode_with_platform_metadata(recorded):
    folder, ep = recorded
    names = sorted(p.name for p in folder.iterdir())
    assert names[:3] == ["episode_meta.json", "frame_0000.pkl", "frame_0001.pkl"]
    assert names[-2:] == ["metadata.yaml", "operator_notes.md"] and len(names) == ep.num_frames + 3
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    parsed = parse_recording_metadata(meta, source="metadata.yaml")
    assert parsed.format == TELEOP_FORMAT and parsed.profile_name == "ur5e_robotiq_2f85"
    assert parsed.episode_id == ep.episode_id == "tp-20261112-ur5e-001-001" and parsed.capture_date == "2026-11-12"
    assert "internal_training" in Rights.from_episode_metadata(meta).allowed_uses
    # a short episode: ~3-5 s at 30 Hz, stamped on the capture day
    assert 3.0 <= ep.num_frames / RECORD_HZ <= 5.5 and ep.fps == RECORD_HZ
    assert ep.meta["saved_at"].startswith("2026-11-12T")


def test_the_phases_run_teleop_skill_correction_skill_resume(recorded):
    _, ep = recorded
    order = list(dict.fromkeys(ep.phases))
    assert order == ["teleop", "skill", "correction", "skill_resume"]
    assert [s["phase"] for s in ep.meta["phase_segments"]] == order  # one segment each
    assert all(ep.phases.count(p) >= 10 for p in order)
    # recording pauses after the failed verification: the first correction frame comes PAUSE_S later
    first_corr = ep.phases.index("correction")
    gap = ep.timestamps[first_corr] - ep.timestamps[first_corr - 1]
    assert PAUSE_S <= gap <= PAUSE_S + 2.0 / RECORD_HZ
    steps = np.delete(np.diff(ep.timestamps), first_corr - 1)  # elsewhere 30 Hz (on the 2 ms physics clock)
    assert steps.min() >= 0.031 and steps.max() <= 0.035
    assert ep.meta["skill_outcome"] == "completed_after_correction"


def test_the_skill_grasp_fails_and_the_correction_grasp_holds(recorded):
    folder, ep = recorded
    assert ep.meta["grasp_verified"] is False and ep.meta["grasp_commanded"] == 255
    assert ep.meta["grasp_actual"] >= GRASP_THRESHOLD  # fingers closed on nothing
    skill = np.array([p == "skill" for p in ep.phases])
    assert ep.gripper_pos[skill].max() >= GRASP_THRESHOLD
    resume = np.array([p == "skill_resume" for p in ep.phases])
    held = ep.gripper_pos[resume]
    assert 20 < held.min() and held.max() < GRASP_THRESHOLD  # closed on the cube
    # the cube is carried: the pinch point rises during skill_resume
    z = ep.tcp_pose[:, 2]
    assert z[resume][-1] - z[resume][0] > 0.08
    assert "failed, corrected by hand" in (folder / "operator_notes.md").read_text()


def test_the_operator_holds_still_so_no_op_removal_has_work(recorded):
    _, ep = recorded
    still = np.abs(np.diff(ep.joint_positions, axis=0)).max(axis=1) < NOOP_RAD
    phases_after = np.array(ep.phases[1:])
    assert still[phases_after == "teleop"].sum() >= 5  # the operator's pauses
    assert still.sum() >= 15
    assert (~still).sum() >= ep.num_frames // 2  # and the arm does move


def test_cameras_are_256_rgb_that_follow_the_scene_with_their_own_stamps(recorded):
    _, ep = recorded
    for cam in ("wrist_rgb", "base_rgb"):
        imgs = ep.images[cam]
        assert imgs.shape == (ep.num_frames, 256, 256, 3) and imgs.dtype == np.uint8
        assert imgs.std() > 10  # not a blank image
        start, end = imgs[0].astype(float), imgs[-1].astype(float)
        assert np.abs(start - end).mean() > 2.0  # the arm moved in the picture
        assert not np.array_equal(imgs[1], imgs[2])  # fresh sensor noise on every frame
        lag = ep.timestamps - ep.image_timestamps[cam]
        assert (lag > 0.005).all() and (lag < 0.030).all()


def test_teleop_source_refuses_robot_recording_options(tmp_path, capsys):
    code = main(["sim", "record", "--source", "teleop", "--out", str(tmp_path), "--profile", "unitree_h1_3cam"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("hvla sim record: --profile do(es) not apply to --source teleop")
    assert not any(tmp_path.iterdir())
