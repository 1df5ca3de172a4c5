"""Build a small, real Robo-DM cache with learnable structure for the training/evaluation tests.

Each episode has a goal ``c`` in [-1, 1] shown in the images (the column of a bright square in the
head camera, the brightness of the wrist camera). The arm (14 joints of the 17-joint
waist + arms state) moves toward ``goal = c * DIRECTION`` with a first-order law; the commanded
action is ``arm + GAIN * (goal - arm)``, and the next state equals the action. So the action is a
function of state *and* image, and a policy that reads both can fit it.

With ``tasks``, ``image_goals`` and ``start_spread=0`` the instruction can carry what the images
and the state do not: e.g. goals +0.8 / -0.8 for "... left hand" / "... right hand" episodes that
all show goal 0 in their images and start from the same arm pose, so at the first frame only a
policy that reads its prompt can tell the two apart.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from hvla_platform.lib.core.compat import import_robodm
from hvla_platform.lib.formats.robodm_manifest import write_cache_manifest as write_manifest
from hvla_platform.lib.formats.recording.contract import CAMERA_HEIGHT, CAMERA_WIDTH, G1_ARM_JOINTS, G1_WAIST_JOINTS

STATE_NAMES = G1_WAIST_JOINTS + G1_ARM_JOINTS  # 17
ACTION_NAMES = list(G1_ARM_JOINTS)  # 14
GAIN = 0.2
DIRECTION = np.linspace(-0.8, 0.8, 14).astype(np.float32)
TASK = "reach the red target with the right hand"


def goal_of(c: float) -> np.ndarray:
    """Arm joint goal (14,) for goal scalar ``c``."""
    return (c * DIRECTION).astype(np.float32)


def render(c: float) -> dict[str, np.ndarray]:
    """Camera images (96, 128, 3) uint8 encoding goal ``c``."""
    head = np.full((CAMERA_HEIGHT, CAMERA_WIDTH, 3), 40, np.uint8)
    col = int(round((c + 1) / 2 * (CAMERA_WIDTH - 24)))
    head[36:60, col:col + 24] = (230, 30, 30)
    wrist = np.full((CAMERA_HEIGHT, CAMERA_WIDTH, 3), int(round(127 + 100 * c)), np.uint8)
    return {"head": head, "wrist_right": wrist}


def rollout(c: float, frames: int, rng: np.random.Generator, start_spread: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """(state (T, 17), action (T, 14)) float32 of one episode with goal ``c``; the arm starts
    uniformly within ±``start_spread`` rad (0: every episode starts at zero)."""
    arm = rng.uniform(-start_spread, start_spread, 14).astype(np.float32)
    waist = np.zeros(3, np.float32)
    goal = goal_of(c)
    states, actions = [], []
    for _ in range(frames):
        states.append(np.concatenate([waist, arm]))
        act = arm + GAIN * (goal - arm)
        actions.append(act)
        arm = act.astype(np.float32)
    return np.asarray(states, np.float32), np.asarray(actions, np.float32)


def write_cache(cache_dir: Path, goals: list[float], splits: list[str], *, frames: int = 30, seed: int = 0,
                fps: int = 20, tasks: list[str] | None = None, image_goals: list[float] | None = None,
                start_spread: float = 0.3) -> Path:
    """Write ``episode_<NNNNNN>.vla`` files + ``manifest.parquet`` (rawvideo, exact) to ``cache_dir``.

    ``tasks``: each episode's task instruction (default :data:`TASK` for all); ``image_goals``: the
    goal each episode's images show (default its ``goals`` entry); ``start_spread``: see :func:`rollout`.
    """
    tasks = tasks or [TASK] * len(goals)
    image_goals = goals if image_goals is None else image_goals
    robodm = import_robodm()
    cache_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i, (c, split) in enumerate(zip(goals, splits)):
        state, action = rollout(c, frames, rng, start_spread)
        imgs = render(image_goals[i])
        path = cache_dir / f"episode_{i:06d}.vla"
        traj = robodm.Trajectory(str(path), mode="w", video_codec="rawvideo", time_unit="ms")
        for t in range(frames):
            ts = int(round(t * 1000 / fps))
            traj.add("observation/state", state[t], timestamp=ts, time_unit="ms")
            traj.add("action", action[t], timestamp=ts, time_unit="ms")
            traj.add("observation/locomotion_command", np.zeros(4, np.float32), timestamp=ts, time_unit="ms")
            for cam, img in imgs.items():
                traj.add(f"observation/images/{cam}", img, timestamp=ts, time_unit="ms")
        traj.close()
        rows.append({
            "vla_path": f"robodm-cache/tiny-v1/{path.name}", "source_repo_id": "hvla/tiny",
            "source_dataset_version": "v3.0", "source_episode_index": i, "source_episode_length": frames,
            "task": tasks[i], "robot_id": "g1-test", "converter_version": "test",
            "created_at": dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc).isoformat(timespec="seconds"),
            "qa_status": "passed", "episode_id": f"ep{i:03d}", "split": split, "video_codec": "rawvideo",
            "bytes": path.stat().st_size,
        })
    write_manifest(cache_dir, rows)  # the production writer: the manifest passes the table's schema
    return cache_dir


def read_split_arrays(cache_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated (state, action) of a split, straight from robodm (for norm stats)."""
    from hvla_platform.lib.training.data import load_split

    eps = load_split(cache_dir, split, ("head", "wrist_right"))
    return np.concatenate([e.state for e in eps]), np.concatenate([e.actions for e in eps])


RIGHTS = {
    "data_owners": ["hvla-lab"], "sites": ["lab-a"], "customers": [], "consent_refs": ["c-1"],
    "licenses": ["proprietary"], "allowed_uses": ["internal_training", "lab_robot", "staging_demo"],
    "retention_until": "2099-01-01", "contains_human_video": False, "contains_customer_environment": False,
}
