"""Seed 003's episode folder format: the restricted unpickler refuses code-running pickles (and the
code never runs), frames and ``episode_meta.json`` are validated strictly with the file and key
named, and the writer and reader round-trip an episode.

The helpers at the top write small folders the way a third-party recorder would (``pickle.dump``
of each frame dict, ``json.dumps`` of ``episode_meta.json``), so a test can write frames the
platform's own writer never would; the ingest tests reuse them.
"""

from __future__ import annotations

import json
import os
import re
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml

from hvla_platform.lib.formats.teleop.meta import TeleopFormatError, phase_counts, phase_segments
from hvla_platform.lib.formats.teleop.pkl_episode import (MAX_FRAME_BYTES, load_frame, read_teleop_episode,
                                                          write_teleop_episode)
from hvla_platform.lib.sim.recorder import default_rights

#: The phase layout of the small episodes: 3 teleop, 2 skill, 2 correction, 2 skill_resume frames.
SMALL_PHASES = ("teleop",) * 3 + ("skill",) * 2 + ("correction",) * 2 + ("skill_resume",) * 2
T0 = 1_794_650_400.0  # 2026-11-14 10:00 UTC


def make_frames(phases: tuple[str, ...] = SMALL_PHASES, size: int = 256, seed: int = 0) -> list[dict[str, Any]]:
    """Frames of the seed-003 format at 30 Hz: moving joints, images ``(size, size, 3) uint8``
    with a frame-dependent pattern, camera stamps 10 ms before the frame's."""
    rng = np.random.default_rng(seed)
    out = []
    for i, p in enumerate(phases):
        t = T0 + i / 30.0
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        out.append({"timestamp": t, "phase": p, "joint_positions": [0.1 * i + 0.01 * j for j in range(6)],
                    "tcp_pose": [0.4, 0.0, 0.2 + 0.01 * i, 3.1, 0.0, 0.0], "gripper_pos": 20 * i,
                    "wrist_rgb": img, "wrist_timestamp": t - 0.010, "base_rgb": img[::-1].copy(),
                    "base_timestamp": t - 0.012})
    return out


def make_meta(phases: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``episode_meta.json`` agreeing with ``phases``."""
    return {"skill_name": "pick", "skill_outcome": "completed_after_correction", "grasp_verified": False,
            "grasp_commanded": 255, "grasp_actual": 249, "phase_counts": phase_counts(phases),
            "phase_segments": phase_segments(phases), "num_frames": len(phases), "fps": 30,
            "saved_at": "2026-11-14T10:00:01"}


def write_folder(folder: Path, frames: list[Any], meta: dict[str, Any] | None = None, *, protocol: int = 4,
                 metadata: dict[str, Any] | None = None) -> Path:
    """Write ``frames`` (pickled as they are) and ``meta`` (default :func:`make_meta`) into
    ``folder``; with ``metadata`` also the platform's ``metadata.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        with open(folder / f"frame_{i:04d}.pkl", "wb") as fh:
            pickle.dump(f, fh, protocol=protocol)
    phases = [f["phase"] if isinstance(f, dict) and isinstance(f.get("phase"), str) else "teleop" for f in frames]
    (folder / "episode_meta.json").write_text(json.dumps(meta if meta is not None else make_meta(phases), indent=4))
    if metadata is not None:
        (folder / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return folder


def platform_metadata(episode_id: str, robot_id: str = "ur5e-001", day: str = "2026-11-14", **extra: Any) -> dict:
    """The platform's ``metadata.yaml`` of a teleop episode folder (``format: seed003_pkl``)."""
    return {"episode_id": episode_id, "robot": {"id": robot_id, "model": "ur5e", "profile": "ur5e_robotiq_2f85"},
            "capture_date": day, "format": "seed003_pkl", "operator": "op-teleop-01", "site": "lab-a",
            "customer": "internal", "task": "pick up the red cube", "source": "teleop",
            "rights": default_rights(day), **extra}


def episode_folder(root: Path, episode_id: str, mutate: Callable[[list[dict]], None] | None = None,
                   **metadata: Any) -> Path:
    """A complete teleop episode folder ``root/<episode_id>`` (frames, meta, metadata.yaml); ``mutate``
    edits the frames in place before they are written (the meta is computed before, from the
    unmutated labels, so it disagrees when ``mutate`` changes phases)."""
    frames = make_frames()
    meta = make_meta([f["phase"] for f in frames])
    if mutate is not None:
        mutate(frames)
    return write_folder(root / episode_id, frames, meta, metadata=platform_metadata(episode_id, **metadata))



# ---- the restricted unpickler -------------------------------------------------------------------

class _RunsCode:
    """Pickles as a call of ``os.system`` (what a malicious frame file does)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_pickle_that_runs_a_command_is_refused_and_the_command_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    frames = make_frames(size=8)
    frames[3]["phase"] = _RunsCode(f"touch {marker}")
    folder = write_folder(tmp_path / "ep", frames)
    with pytest.raises(TeleopFormatError) as err:
        read_teleop_episode(folder)
    assert not marker.exists()
    # os.system pickles as posix.system on Linux: the message names the global as pickled
    assert str(err.value) == (f"frame_0003.pkl: refused global '{os.system.__module__}.system' "
                              "(not in the seed-003 frame format)")


@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"), ("subprocess", "Popen"),
                                          ("builtins", "__import__"), ("numpy", "load")])
def test_any_global_outside_the_allow_list_is_refused_by_name(tmp_path, module, name):
    # a hand-made protocol-0 pickle: GLOBAL '<module> <name>', then call it with one string argument
    marker = tmp_path / "ran"
    payload = f"c{module}\n{name}\n(S'touch {marker}'\ntR.".encode()
    p = tmp_path / "frame_0000.pkl"
    p.write_bytes(payload)
    with pytest.raises(TeleopFormatError, match=re.escape(f"frame_0000.pkl: refused global '{module}.{name}' "
                                                          "(not in the seed-003 frame format)")):
        load_frame(p)
    assert not marker.exists()


def test_object_arrays_are_refused(tmp_path):
    frame = make_frames(size=8)[0]
    frame["wrist_rgb"] = np.array([None, 1], dtype=object)
    p = tmp_path / "frame_0000.pkl"
    p.write_bytes(pickle.dumps(frame))
    with pytest.raises(TeleopFormatError, match=r"frame_0000.pkl: refused dtype dtype\('O'\)"):
        load_frame(p)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_frames_load_under_every_pickle_protocol(tmp_path, protocol):
    frame = make_frames(size=8)[1]
    frame["tcp_pose"] = np.asarray(frame["tcp_pose"])          # an array instead of a list
    frame["gripper_pos"] = np.int64(frame["gripper_pos"])      # a numpy scalar instead of an int
    frame["timestamp"] = np.float64(frame["timestamp"])
    p = tmp_path / "frame_0001.pkl"
    p.write_bytes(pickle.dumps(frame, protocol=protocol))
    got = load_frame(p)
    assert got["gripper_pos"] == 20 and isinstance(got["gripper_pos"], int)
    assert np.array_equal(got["wrist_rgb"], frame["wrist_rgb"]) and got["wrist_rgb"].dtype == np.uint8
    assert got["tcp_pose"].shape == (6,) and got["tcp_pose"][2] == pytest.approx(0.21)


def test_a_frame_larger_than_the_limit_is_not_read(tmp_path):
    p = tmp_path / "frame_0000.pkl"
    p.write_bytes(b"\0" * (MAX_FRAME_BYTES + 1))
    with pytest.raises(TeleopFormatError, match="larger than a seed-003 frame can be"):
        load_frame(p)


# ---- frame and metadata contracts ---------------------------------------------------------------

@pytest.mark.parametrize("edit, message", [
    (lambda f: f.pop("tcp_pose"), "frame_0000.pkl: missing key(s) ['tcp_pose']"),
    (lambda f: f.update(gripper=3), "frame_0000.pkl: unknown key(s) ['gripper']"),
    (lambda f: f.update(gripper_pos=3.5), "frame_0000.pkl: 'gripper_pos' must be an int (0-255), got 3.5"),
    (lambda f: f.update(joint_positions=[0.0] * 5), "'joint_positions' must be 6 finite numbers"),
    (lambda f: f.update(timestamp="now"), "'timestamp' must be a finite float"),
    (lambda f: f.update(base_rgb=np.zeros((8, 8), np.uint8)),
     "'base_rgb' must be an (H, W, 3) uint8 array, got a (8, 8) uint8"),
    (lambda f: f.update(wrist_rgb=np.zeros((8, 8, 3), np.float32)), "'wrist_rgb' must be an (H, W, 3) uint8 array"),
])
def test_frames_are_validated_strictly(tmp_path, edit, message):
    frame = make_frames(size=8)[0]
    edit(frame)
    p = tmp_path / "frame_0000.pkl"
    p.write_bytes(pickle.dumps(frame))
    with pytest.raises(TeleopFormatError, match=re.escape(message)):
        load_frame(p)


def test_a_misspelled_meta_key_is_named_with_the_closest_one(tmp_path):
    frames = make_frames(size=8)
    meta = make_meta([f["phase"] for f in frames])
    meta["skill_outcom"] = meta.pop("skill_outcome")
    folder = write_folder(tmp_path / "ep", frames, meta)
    with pytest.raises(TeleopFormatError, match=re.escape("unknown key 'skill_outcom' (did you mean 'skill_outcome'?)")):
        read_teleop_episode(folder)


def test_meta_that_disagrees_with_the_frames_is_refused(tmp_path):
    frames = make_frames(size=8)
    meta = make_meta([f["phase"] for f in frames])
    meta["num_frames"] = 12
    meta["phase_segments"][0]["end"] = 1
    folder = write_folder(tmp_path / "ep", frames, meta)
    with pytest.raises(TeleopFormatError) as err:
        read_teleop_episode(folder)
    assert "num_frames is 12, the folder holds 9 frame(s)" in str(err.value)
    assert "phase_segments [('teleop', 0, 1), ('skill', 3, 4)" in str(err.value)


def test_a_missing_frame_is_named(tmp_path):
    folder = write_folder(tmp_path / "ep", make_frames(size=8))
    (folder / "frame_0004.pkl").unlink()
    with pytest.raises(TeleopFormatError, match=re.escape("frames are not numbered 0..8 without gaps (missing [4]")):
        read_teleop_episode(folder)


def test_a_gripper_outside_0_255_is_refused_by_the_reader(tmp_path):
    frames = make_frames(size=8)
    frames[5]["gripper_pos"] = 300
    with pytest.raises(TeleopFormatError, match=re.escape("frame_0005.pkl: gripper_pos 300 outside 0-255")):
        read_teleop_episode(write_folder(tmp_path / "ep", frames))


# ---- round trip ---------------------------------------------------------------------------------

def test_write_then_read_round_trips_an_episode(tmp_path):
    folder = write_folder(tmp_path / "src", make_frames(size=16))
    episode = read_teleop_episode(folder)
    assert episode.num_frames == 9 and episode.phases == SMALL_PHASES and episode.fps == 30.0
    assert episode.images["wrist_rgb"].shape == (9, 16, 16, 3) and episode.gripper_pos.dtype == np.uint8
    assert episode.image_timestamps["base_rgb"][0] == pytest.approx(T0 - 0.012)
    out = write_teleop_episode(tmp_path / "copy", episode)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["episode_meta.json"] + [f"frame_{i:04d}.pkl" for i in range(9)]
    meta = json.loads((out / "episode_meta.json").read_text())
    assert meta["phase_segments"] == [{"phase": "teleop", "start": 0, "end": 2}, {"phase": "skill", "start": 3, "end": 4},
                                      {"phase": "correction", "start": 5, "end": 6},
                                      {"phase": "skill_resume", "start": 7, "end": 8}]
    assert meta["num_frames"] == 9 and meta["fps"] == 30 and meta["saved_at"] == "2026-11-14T10:00:01"
    # the written frames are the seed's plain types: lists of floats and an int
    raw = pickle.loads((out / "frame_0002.pkl").read_bytes())
    assert type(raw["joint_positions"]) is list and type(raw["gripper_pos"]) is int and type(raw["timestamp"]) is float
    again = read_teleop_episode(out, episode_id=episode.episode_id)
    for name in ("timestamps", "joint_positions", "tcp_pose", "gripper_pos"):
        assert np.array_equal(getattr(again, name), getattr(episode, name)), name
    for cam in ("wrist_rgb", "base_rgb"):
        assert np.array_equal(again.images[cam], episode.images[cam])
        assert np.array_equal(again.image_timestamps[cam], episode.image_timestamps[cam])
    with pytest.raises(FileExistsError):
        write_teleop_episode(out, episode)
