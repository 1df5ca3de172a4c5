"""A real small release in a real lake, and an ACT checkpoint trained on it by LeRobot's own
trainer (``train_experiment(..., backend="lerobot")``), built once per test process and shared by
the LeRobot backend, policy and serving tests.

Four MuJoCo-free recordings (``write_recording``: 2 s at 20 fps, two cameras) → landing → ingest →
HDF5 → LeRobot v3.0 release holding out ``ep-3`` (the only episode with :data:`HELDOUT_TASK`), so
the train split's stats and tasks differ from all episodes'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import Published
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.releases import register_release
from hvla_platform.lib.training.build import train_experiment
from hvla_platform.lib.training.train import TrainConfig
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.recordings import write_recording

RELEASE, REPO_ID = "lr-v1", "hvla/lr"
RELEASE_PREFIX = f"lerobot/{REPO_ID}/{RELEASE}"
TRAIN_TASK = "touch the red cube with the right hand"
HELDOUT_TASK = "touch the green cube with the left hand"
TASK_OF = {"ep-0": TRAIN_TASK, "ep-1": TRAIN_TASK, "ep-2": TRAIN_TASK, "ep-3": HELDOUT_TASK}
SPEC = f"name: {RELEASE}\nrepo_id: {REPO_ID}\npartitions: all\nheldout: {{episode_ids: [ep-3]}}\n"
#: ACT: a few steps, small batches (a CPU run of seconds, not a useful policy).
ACT_STEPS, ACT_BATCH = 4, 4
ACT_CONFIG = TrainConfig(config_name="c", exp_name="lr-act", release=RELEASE, steps=ACT_STEPS, batch_size=ACT_BATCH,
                         learning_rate=1e-4, seed=0)


@dataclass
class LeRobotFixture:
    """The lake, its MLflow store and the published ACT checkpoint."""

    root: Path
    lake: LocalLake
    tracking_uri: str
    published: Published
    logs: list[str]

    @property
    def step_dir(self) -> Path:
        """The checkpoint's directory in the lake."""
        return self.lake.path(self.published.prefix)


_BUILT: dict[Path, LeRobotFixture] = {}


def build_release_lake(root: Path) -> LocalLake:
    """A lake at ``root/lake`` holding release :data:`RELEASE` (no Robo-DM cache, no norm-stats
    artifact: LeRobot's trainer reads the LeRobot release alone)."""
    lake = LocalLake(root / "lake")
    for i, (ep, task) in enumerate(TASK_OF.items()):
        write_recording(root / "recs", episode_id=ep, robot_id="g1-a", seed=i, task=task)
    land_and_convert(lake, root / "recs", "2026-11-10", "g1-a")
    build_release(lake, register_release(lake, SPEC))
    return lake


def trained_act(base: Path) -> LeRobotFixture:
    """The lake + ACT checkpoint under ``base/lerobot-act``, built on first use in this process."""
    root = base / "lerobot-act"
    if root not in _BUILT:
        root.mkdir(parents=True, exist_ok=True)
        lake = build_release_lake(root)
        uri = f"sqlite:///{root.absolute()}/mlflow.db"
        logs: list[str] = []
        pub = train_experiment(lake, ACT_CONFIG, tracking_uri=uri, artifact_root=str(root / "mlartifacts"),
                               log=logs.append, backend="lerobot", lerobot_policy="act")
        _BUILT[root] = LeRobotFixture(root=root, lake=lake, tracking_uri=uri, published=pub, logs=logs)
    return _BUILT[root]
