"""The openpi export read by peers: LeRobot 0.3.3 (the newest PyPI release that reads dataset format
v2.1, the format openpi's pinned LeRobot reads) in its own venv (scripts/install_lerobot_v21.sh),
and lerobot-doctor 0.2.0.

LeRobot 0.3.3 is driven the way openpi's data loader drives its LeRobot
(``training/data_loader.py``): ``HF_LEROBOT_HOME=<export>/lerobot``, ``LeRobotDatasetMetadata(repo_id)``
and ``LeRobotDataset(repo_id, delta_timestamps={"action": [t / fps for t in range(H)]})`` with **no
root** and no episode filter, offline. It must find the release's train episodes only, their tasks
(openpi's ``PromptFromLeRobotTask`` reads ``meta.tasks``), frames and action chunks as the export's
Parquet holds them (padded at the episode end by repeating the last action), and camera frames of
the release's shape.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hvla_platform_tests.lib.dataset.test_openpi_export import BLUE, CONFIG, HORIZON, RED
from hvla_platform_tests.peer.doctor import run_lerobot_doctor

REPO = Path(__file__).resolve().parents[2]
V21_PYTHON = REPO / ".venv-lerobot-v21" / "bin" / "python"

#: Runs in .venv-lerobot-v21: loads a dataset as openpi does and prints what it found as JSON.
LOADER = r"""
import json, os, sys
import importlib.metadata as md
import lerobot
from lerobot.datasets.lerobot_dataset import CODEBASE_VERSION, LeRobotDataset, LeRobotDatasetMetadata

horizon, out = int(sys.argv[1]), {}
for arg in sys.argv[2:]:  # <repo_id>=<frame>,<frame>,...
    repo_id, probe = arg.split("=")
    meta = LeRobotDatasetMetadata(repo_id)
    ds = LeRobotDataset(repo_id, delta_timestamps={"action": [t / meta.fps for t in range(horizon)]})
    frames = {}
    for i in (int(x) for x in probe.split(",")):
        item = ds[i]
        frames[i] = {k: {"shape": list(v.shape), "dtype": str(v.dtype),
                         "value": v.tolist() if v.ndim <= 2 and "images" not in k else None}
                     if hasattr(v, "shape") else v for k, v in item.items()}
    out[repo_id] = {
        "lerobot_version": md.version("lerobot"), "lerobot_file": lerobot.__file__, "reads": CODEBASE_VERSION,
        "root": str(ds.root), "codebase_version": ds.meta.info["codebase_version"], "num_episodes": ds.num_episodes,
        "num_frames": ds.num_frames, "tasks": {str(k): v for k, v in meta.tasks.items()},
        "episode_indices": sorted(set(int(e) for e in ds.hf_dataset["episode_index"])), "frames": frames,
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def built(openpi_lake):
    """The lake of ``build_openpi_lake`` (lib/dataset/test_openpi_export.py), once per session (conftest)."""
    return openpi_lake


def _load_v21(home: Path, probes: dict[str, list[int]], tmp: Path) -> dict:
    """Run :data:`LOADER` in .venv-lerobot-v21 with ``HF_LEROBOT_HOME=home``, offline; its JSON by repo_id."""
    assert V21_PYTHON.exists(), "run ./scripts/install_lerobot_v21.sh (scripts/install.sh does)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON"))}
    env.update({"HF_LEROBOT_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "HF_HOME": str(tmp / "hf-home"), "HF_DATASETS_CACHE": str(tmp / "hf-datasets")})
    args = [f"{r}={','.join(map(str, p))}" for r, p in probes.items()]
    p = subprocess.run([str(V21_PYTHON), "-c", LOADER, str(HORIZON), *args],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp)
    assert p.returncode == 0, p.stderr[-4000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def _export_rows(ds: Path) -> list[dict]:
    return pq.read_table(sorted((ds / "data").rglob("*.parquet"))).to_pylist()


@pytest.fixture(scope="module")
def loaded(built, tmp_path_factory):
    """The train and held-out datasets as LeRobot 0.3.3 loads them (one subprocess), the train rows
    and the probed frame indices: the first frame, 3 before episode 0's last, the last one."""
    m, home = built["export"].manifest, built["export_root"] / "lerobot"
    rows = _export_rows(home / m.openpi_repo_id)
    last_of_first = next(i for i, r in enumerate(rows) if r["episode_index"] == 1) - 1
    probe = [0, last_of_first - 3, len(rows) - 1]
    got = _load_v21(home, {m.openpi_repo_id: probe, m.heldout_repo_id: [0]}, tmp_path_factory.mktemp("v21"))
    return got, rows, probe, last_of_first


def test_lerobot_033_finds_only_the_train_episodes_without_root(built, loaded):
    m, home = built["export"].manifest, built["export_root"] / "lerobot"
    got, rows, probe, last_of_first = loaded
    got = got[m.openpi_repo_id]
    assert got["lerobot_version"] == "0.3.3" and got["reads"] == "v2.1"
    assert "/.venv-lerobot-v21/" in got["lerobot_file"]
    assert got["root"] == str(home / m.openpi_repo_id)  # found through HF_LEROBOT_HOME, no root given
    assert got["codebase_version"] == "v2.1"
    assert got["num_episodes"] == 3 == len(built["release"].train_episode_ids)
    assert got["episode_indices"] == [0, 1, 2]
    assert got["num_frames"] == len(rows) == m.num_frames
    assert got["tasks"] == {"0": RED, "1": BLUE}
    first = got["frames"]["0"]
    assert first["observation.state"]["shape"] == [17] and first["observation.state"]["dtype"] == "torch.float32"
    assert first["action"]["shape"] == [HORIZON, 14]
    for cam in ("observation.images.head", "observation.images.wrist_right"):
        assert first[cam]["shape"] == [3, 96, 128] and first[cam]["dtype"] == "torch.float32"
    assert first["task"] == RED
    # an action chunk crossing the end of episode 0: the rows that follow, then the last one repeated
    near_end = got["frames"][str(probe[1])]
    want = [rows[min(probe[1] + k, last_of_first)]["action"] for k in range(HORIZON)]
    np.testing.assert_array_equal(np.asarray(near_end["action"]["value"], np.float32), np.asarray(want, np.float32))
    assert near_end["action_is_pad"]["value"] == [k > 3 for k in range(HORIZON)]
    assert near_end["observation.state"]["value"] == pytest.approx(rows[probe[1]]["observation.state"])
    assert got["frames"][str(probe[2])]["task"] == RED  # ep-d


def test_lerobot_033_reads_the_heldout_dataset_apart(built, loaded):
    m = built["export"].manifest
    got = loaded[0][m.heldout_repo_id]
    assert got["root"] == str(built["export_root"] / "lerobot" / m.heldout_repo_id)
    assert got["num_episodes"] == 1 and got["tasks"] == {"0": BLUE}
    assert got["num_frames"] == m.num_heldout_frames == m.heldout_episodes[0]["length"]


def test_norm_stats_at_the_openpi_path_for_both_variants(built):
    m, root = built["export"].manifest, built["export_root"]
    for variant, config in (("absolute", CONFIG), ("delta", CONFIG + "_delta")):
        path = root / "assets" / config / m.openpi_repo_id / "norm_stats.json"
        doc = json.loads(path.read_text())["norm_stats"]  # openpi's NormStats layout
        assert sorted(doc) == ["actions", "state"]
        assert all(sorted(doc[k]) == ["mean", "q01", "q99", "std"] for k in doc)
        assert len(doc["state"]["mean"]) == 17 and len(doc["actions"]["mean"]) == 14
        for k in doc:
            q01, q99, mean = (np.asarray(doc[k][f]) for f in ("q01", "q99", "mean"))
            assert np.all(q01 <= mean + 1e-12) and np.all(mean <= q99 + 1e-12), (variant, k)


def test_lerobot_doctor_reads_the_v21_export(built):
    m = built["export"].manifest
    report = run_lerobot_doctor(built["export_root"] / "lerobot" / m.openpi_repo_id)
    assert report.raw["codebase_version"] == "v2.1" and report.raw["format_version"] == "v2"
    assert report.raw["total_episodes"] == 3 and report.raw["total_frames"] == m.num_frames
    assert report.errors == [] and report.exit_code == 0, "\n".join(report.summary_lines())
    for group in ("Metadata & Format Compliance", "Temporal Consistency", "Video Integrity",
                  "Feature Consistency", "Portability"):
        assert report.groups[group] == "PASS", (group, report.by_group().get(group))
    # what it warns about are properties of the data (constant locomotion command, 2 s episodes
    # shorter than ACT's chunk_size 50), as on the release itself (docs/peer_validation.md)
    assert {f.kind for f in report.warnings} <= {"zero_variance", "constant_feature", "chunk_size", "summary",
                                                 "frozen_action", "action_at_bound"}, report.summary_lines()
