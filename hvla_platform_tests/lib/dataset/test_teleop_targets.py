"""Seed 003's target derivation (lib/dataset/teleop_targets.py) on crafted episodes with known counts.

:func:`make_episode` (also used by the LeRobot / RLDS export tests) builds a 40-frame episode:

====== ========= ============================================================
frames phase     joints
====== ========= ============================================================
0-14   teleop    move 0.01 rad/frame; 5 and 6 repeat frame 4 (2 no-ops);
                 14 moves 5e-5 rad (a no-op)
15-24  skill     move 0.01 rad/frame; 20 repeats 19 (1 no-op)
25-31  correction move 0.01 rad/frame; 28 repeats 27 (1 no-op)
32-39  skill_resume move 0.01 rad/frame
====== ========= ============================================================
"""

from __future__ import annotations

import numpy as np
import pytest

from hvla_platform.lib.dataset.teleop_targets import (
    STOP_PHASE, TARGETS, TargetError, TargetOptions, append_stop_signal, delta_joints, derive_target, phase_segments,
    remove_noops, resize_images)
from hvla_platform.lib.formats.teleop.episode import TeleopEpisode

RAW_KEY = "raw-teleop/2026-11-30/ur5e-001/episode_cpu_0001"


def _phases(spec: list[tuple[str, int]]) -> tuple[str, ...]:
    return tuple(p for p, n in spec for _ in range(n))


def make_episode(episode_id: str = "episode_cpu_0001", *, size: int = 64, phases: tuple[str, ...] | None = None,
                 noops: tuple[int, ...] = (5, 6, 20, 28), tiny: tuple[int, ...] = (14,), seed: int = 0,
                 fps: float = 30.0) -> TeleopEpisode:
    """A crafted seed-003 episode (module docstring). Frame ``t`` of camera ``c`` is filled with a
    colour that encodes ``t`` (so a frame can be recognised after resizing and encoding):
    base = (4t, 128, 255-4t), wrist = (255-4t, 4t, 64), plus a little texture."""
    phases = phases or _phases([("teleop", 15), ("skill", 10), ("correction", 7), ("skill_resume", 8)])
    n = len(phases)
    rng = np.random.default_rng(seed)
    step = np.full((n, 6), 0.01)
    step[0] = 0.0
    for t in noops:
        step[t] = 0.0
    for t in tiny:
        step[t] = 5e-5
    joints = np.cumsum(step, axis=0) + rng.uniform(-1, 1, 6)
    gripper = np.linspace(0, 200, n).astype(np.uint8)
    t = np.arange(n)
    base = np.zeros((n, size, size, 3), np.uint8)
    base[..., 0] = (4 * t % 256)[:, None, None]
    base[..., 1] = 128
    base[..., 2] = (255 - 4 * t % 256)[:, None, None]
    wrist = np.zeros((n, size, size, 3), np.uint8)
    wrist[..., 0] = (255 - 4 * t % 256)[:, None, None]
    wrist[..., 1] = (4 * t % 256)[:, None, None]
    wrist[..., 2] = 64
    stamps = 1_764_500_000.0 + t / fps
    return TeleopEpisode(
        episode_id=episode_id, timestamps=stamps, phases=phases, joint_positions=joints,
        tcp_pose=np.zeros((n, 6)), gripper_pos=gripper, images={"base_rgb": base, "wrist_rgb": wrist},
        image_timestamps={"base_rgb": stamps + 0.004, "wrist_rgb": stamps + 0.006},
        meta={"skill_name": "cpu", "skill_outcome": "completed_after_correction", "fps": fps, "num_frames": n})


def test_noop_removal_runs_before_stop_signal():
    """The seed's ordering rule: the 3 stop frames repeat the last kept frame's joints, so they
    survive only because no-op removal ran first. Swapping steps 2 and 3 in derive_episode makes
    this test fail (the second half shows what the swapped order gives)."""
    ep = make_episode()
    d = derive_target([(RAW_KEY, ep)], "planner")
    (te,) = d.episodes
    assert te.num_frames == 15 - 3 + 3  # 15 teleop frames, 3 no-ops removed, 3 stop frames added
    assert list(te.is_stop[-3:]) == [True] * 3 and not te.is_stop[:-3].any()
    assert list(te.gripper_pos[-3:]) == [255, 255, 255]
    assert list(te.phases[-3:]) == [STOP_PHASE] * 3
    np.testing.assert_array_equal(te.joint_positions[-3:], np.repeat(te.joint_positions[-4:-3], 3, axis=0))
    assert d.counts.to_dict()["stop_frames"] == 3

    # the swapped order (stop signal first, then no-op removal) loses every stop frame
    seg = phase_segments(ep.phases, ("teleop",))[0]
    swapped_idx, _ = append_stop_signal(seg)
    swapped = remove_noops(ep.joint_positions, swapped_idx)
    assert len(swapped) == len(te.source_index) - 3


def test_e2e_keeps_all_phases_without_stop_signal():
    ep = make_episode()
    d = derive_target([(RAW_KEY, ep)], "e2e")
    (te,) = d.episodes
    removed = [5, 6, 14, 20, 28]
    assert te.num_frames == 40 - len(removed)
    assert not te.is_stop.any() and 255 not in te.gripper_pos.tolist()
    assert sorted(set(range(40)) - set(te.source_index.tolist())) == removed
    c = d.counts.to_dict()
    assert (c["outside_phases"], c["noops_removed"], c["stop_frames"], c["episodes"], c["frames"]) == (0, 5, 0, 1, 35)
    assert te.episode_id == ep.episode_id and te.source_key == RAW_KEY


def test_planner_keeps_teleop_only():
    d = derive_target([(RAW_KEY, make_episode())], "planner")
    (te,) = d.episodes
    assert set(te.phases) == {"teleop", STOP_PHASE}
    assert te.source_index.tolist() == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13, 13, 13, 13]
    c = d.counts.to_dict()
    assert (c["outside_phases"], c["noops_removed"], c["stop_frames"], c["frames"]) == (25, 3, 3, 15)


def test_correction_keeps_correction_only():
    d = derive_target([(RAW_KEY, make_episode())], "correction")
    (te,) = d.episodes
    assert te.source_index.tolist() == [25, 26, 27, 29, 30, 31, 31, 31, 31]
    assert list(te.gripper_pos[-3:]) == [255] * 3 and te.gripper_pos[-4] == make_episode().gripper_pos[31]
    c = d.counts.to_dict()
    assert (c["outside_phases"], c["noops_removed"], c["stop_frames"], c["frames"]) == (33, 1, 3, 9)


def test_episode_without_the_phase_is_counted_not_lost():
    ep = make_episode(phases=_phases([("teleop", 20), ("skill", 20)]))
    d = derive_target([(RAW_KEY, ep)], "correction")
    assert d.episodes == []
    assert d.counts.to_dict()["dropped"] == [f"{ep.episode_id}: no frame in phase(s) ['correction']"]


def test_several_segments_become_several_episodes_each_with_its_stop_signal():
    phases = _phases([("teleop", 8), ("skill", 6), ("correction", 6), ("skill", 6), ("correction", 6),
                      ("skill_resume", 8)])
    ep = make_episode(phases=phases, noops=(), tiny=())
    d = derive_target([(RAW_KEY, ep)], "correction")
    assert [e.episode_id for e in d.episodes] == [f"{ep.episode_id}.seg0", f"{ep.episode_id}.seg1"]
    assert d.episodes[0].source_index.tolist() == [14, 15, 16, 17, 18, 19, 19, 19, 19]
    assert d.episodes[1].source_index.tolist() == [26, 27, 28, 29, 30, 31, 31, 31, 31]
    assert all(e.is_stop[-3:].all() for e in d.episodes)
    # no delta action jumps across the filtered-out skill segment
    assert np.abs(d.episodes[0].delta_joints).max() < 0.011


def test_noop_compares_with_previous_kept_frame_by_largest_joint_change():
    """Drift of 6e-5 rad/frame: frame 1 is within 1e-4 of frame 0 (dropped), frame 2 is 1.2e-4 away
    from frame 0, the previous KEPT frame (kept), although only 6e-5 from frame 1. One joint moving
    by 2e-4 is enough (L∞), six joints each moving 9e-5 are not (their L2 norm would be 2.2e-4)."""
    q = np.zeros((5, 6))
    q[1] = q[0] + 6e-5
    q[2] = q[0] + 12e-5
    q[3] = q[2]
    q[3, 4] += 2e-4
    q[4] = q[3] + 9e-5
    q = q[:5]
    assert remove_noops(q, np.arange(5)).tolist() == [0, 2, 3]
    # exactly the threshold is "unchanged within 1e-4 rad"
    edge = np.array([[0.0] * 6, [1e-4] + [0.0] * 5])
    assert remove_noops(edge, np.arange(2)).tolist() == [0]


def test_delta_joints_and_resize():
    q = np.array([[0.0] * 6, [0.1] * 6, [0.3] * 6])
    d = delta_joints(q)
    assert d.dtype == np.float32 and d.shape == (3, 6)
    np.testing.assert_allclose(d[:, 0], [0.1, 0.2, 0.0], atol=1e-7)
    frames = make_episode(size=64).images["base_rgb"][:2]
    r = resize_images(frames, 32)
    assert r.shape == (2, 32, 32, 3) and r.dtype == np.uint8
    np.testing.assert_array_equal(r[1, 5, 5], frames[1, 5, 5])  # flat colour survives LANCZOS
    assert resize_images(frames, 64) is frames


def test_image_size_option_and_bad_options():
    d = derive_target([(RAW_KEY, make_episode(size=64))], "planner", TargetOptions(image_size=224))
    assert d.episodes[0].images["wrist_rgb"].shape == (15, 224, 224, 3)
    with pytest.raises(TargetError, match="unknown teleop target 'planer'"):
        derive_target([(RAW_KEY, make_episode())], "planer")
    with pytest.raises(TargetError, match="image_size must be positive"):
        TargetOptions(image_size=0)
    with pytest.raises(TargetError, match="duplicate teleop episode id"):
        derive_target([(RAW_KEY, make_episode()), (RAW_KEY + "x", make_episode())], "e2e")


def test_keep_noops_option():
    d = derive_target([(RAW_KEY, make_episode())], "e2e", TargetOptions(keep_noops=True))
    assert d.num_frames == 40 and d.counts.to_dict()["noops_removed"] == 0


def test_targets_table_is_the_seeds():
    assert {n: (t.phases, t.stop_signal) for n, t in TARGETS.items()} == {
        "e2e": (("teleop", "skill", "correction", "skill_resume"), False),
        "planner": (("teleop",), True),
        "correction": (("correction",), True),
    }
