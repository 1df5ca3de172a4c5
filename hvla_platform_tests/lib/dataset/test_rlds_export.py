"""Seed 003's targets as RLDS through TensorFlow Datasets (lib/dataset/rlds_export.py): built in
``.venv-rlds`` (scripts/install_rlds.sh), read back with ``tfds.builder(name, data_dir).as_dataset()``
in a process that never imports the builder, and compared value by value here."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import RldsDatasetManifest, require_manifest
from hvla_platform.lib.dataset.rlds_export import (
    LANGUAGE_EMBEDDING_MODEL, RldsBuild, RldsExportError, build_rlds, publish_teleop_rlds, read_rlds,
    readback_problems, rlds_steps)
from hvla_platform.lib.dataset.teleop_targets import TargetOptions, derive_target, teleop_sources
from hvla_platform.lib.lineage.upstream import upstream
from hvla_platform_tests.lib.dataset.test_teleop_lerobot import TASK, publish_raw, rights
from hvla_platform_tests.lib.dataset.test_teleop_targets import make_episode


@pytest.fixture(scope="module")
def planner_rlds(tmp_path_factory):
    lake = LocalLake(tmp_path_factory.mktemp("lake"))
    eps = [make_episode("episode_cpu_0001", size=96), make_episode("episode_cpu_0002", size=96, seed=1, noops=(3,),
                                                                  tiny=())]
    keys = [f"raw-teleop/2026-11-30/ur5e-001/{e.episode_id}" for e in eps]
    for k, e in zip(keys, eps):
        publish_raw(lake, k, e.episode_id, rights("lab", ("internal_training",), "2030-01-01"), task=TASK)
    sources = teleop_sources(lake, list(zip(keys, eps)))
    t0 = time.monotonic()
    pub = publish_teleop_rlds(lake, sources, "planner")  # the seed's default 256×256
    seconds = time.monotonic() - t0
    # read back independently of the publish step, as a user would (a fresh TFDS process)
    readback, answer = read_rlds(lake.path(pub.prefix), "ur5e_vla_planner")
    return {"lake": lake, "sources": sources, "keys": keys, "pub": pub, "seconds": seconds, "readback": readback,
            "read_answer": answer}


def test_planner_rlds_reads_back_with_tfds(planner_rlds):
    lake, pub, sources = planner_rlds["lake"], planner_rlds["pub"], planner_rlds["sources"]
    assert pub.status == "materialized" and pub.prefix == "rlds/ur5e_vla_planner"
    m = require_manifest(lake, pub.prefix, RldsDatasetManifest)
    print(f"planner RLDS export (2 episodes, {m.num_steps} steps, 256x256): {planner_rlds['seconds']:.1f} s, "
          f"TFDS build {m.build_seconds:.1f} s, read-back {m.readback['seconds']:.1f} s")
    episodes, answer = planner_rlds["readback"], planner_rlds["read_answer"]
    assert answer["version"] == "1.0.0" and len(episodes) == m.num_episodes == 2
    d = derive_target([(s.key, s.episode) for s in sources], "planner")
    for te, ep in zip(d.episodes, episodes):
        s = ep.steps
        n = te.num_frames
        assert s["image"].shape == (n, 256, 256, 3) and s["wrist_image"].dtype == np.uint8
        assert s["state"].shape == (n, 8) and s["action"].shape == (n, 6) and s["action_gripper"].shape == (n, 1)
        np.testing.assert_array_equal(s["state"][:, :6], te.joint_positions.astype(np.float32))
        assert (s["state"][:, 6] == 0).all()
        np.testing.assert_array_equal(s["state"][:, 7], te.gripper01)
        assert s["state"][-1, 7] == 1.0 and s["state"][-4, 7] < 1.0  # stop frames: gripper 255 → 1.0
        np.testing.assert_allclose(s["action"][:-1], np.diff(te.joint_positions, axis=0), atol=1e-6)
        assert not s["action"][-1].any()
        np.testing.assert_array_equal(s["action_gripper"][:-1, 0], te.gripper01[1:])
        assert s["is_first"].tolist() == [True] + [False] * (n - 1)
        assert s["is_last"].tolist() == s["is_terminal"].tolist() == [False] * (n - 1) + [True]
        assert s["reward"].tolist() == [0.0] * (n - 1) + [1.0] and (s["discount"] == 1.0).all()
        assert set(s["language_instruction"].tolist()) == {TASK}
        assert s["language_embedding"].shape == (n, 512) and np.isnan(s["language_embedding"]).all()
        assert ep.metadata["file_path"] == te.source_key and ep.metadata["episode_name"] == te.episode_id
        assert ep.metadata["trajectory_length"] == n and ep.metadata["success"] is True
        assert ep.metadata["language_embedding_model"] == LANGUAGE_EMBEDDING_MODEL
        # JPEG keeps the colour of the source frame (4·t, 128, 255-4·t)
        src = int(te.source_index[5])
        np.testing.assert_allclose(s["image"][5].mean(axis=(0, 1)), [4 * src % 256, 128, 255 - 4 * src % 256], atol=3)


def test_manifest_card_and_lineage(planner_rlds):
    lake, pub, keys = planner_rlds["lake"], planner_rlds["pub"], planner_rlds["keys"]
    m = require_manifest(lake, pub.prefix, RldsDatasetManifest)
    assert m.readback["problems"] == [] and m.readback["episodes"] == 2
    assert m.derivation["counts"]["stop_frames"] == 6 and m.derivation["counts"]["noops_removed"] == 4
    assert m.packages["tensorflow_datasets"] == "4.9.10" and m.image_size == 256
    assert sorted(c.key for c in upstream(lake, pub.prefix).children) == sorted(keys)
    # the artifact is a TFDS data_dir and its card, nothing else
    assert {f.path.split("/")[0] for f in m.files} == {"README.md", "ur5e_vla_planner"}
    assert any(f.path.startswith("ur5e_vla_planner/1.0.0/ur5e_vla_planner-train.tfrecord") for f in m.files)
    card = (lake.path(pub.prefix) / "README.md").read_text()
    for text in ("`language_embedding`: (512,) float32 — none: NOT COMPUTED, every value is NaN",
                 "tfds.builder(\"ur5e_vla_planner\"", "3 copies of each segment's last kept frame with gripper = 255",
                 "No-op removal runs first", "4 frame(s) removed"):
        assert text in card, text
    assert publish_teleop_rlds(lake, planner_rlds["sources"], "planner").status == "cached"


def test_readback_comparison_catches_a_changed_value(planner_rlds):
    """The check behind publishing is not vacuous: against the real read-back, the values handed
    to the builder compare clean, and one changed action or a replaced image is reported."""
    sources = planner_rlds["sources"]
    episodes = planner_rlds["readback"]
    d = derive_target([(s.key, s.episode) for s in sources], "planner")
    steps = [rlds_steps(te, TASK) for te in d.episodes]
    names = [te.episode_id for te in d.episodes]
    answer = {"name": "ur5e_vla_planner", "version": "1.0.0", "num_episodes": 2, "num_steps": d.num_frames}
    problems, worst = readback_problems(RldsBuild(answer, steps, names), episodes)
    assert problems == [] and 0 < worst <= 3.0
    steps[0]["action"] = steps[0]["action"].copy()
    steps[0]["action"][2, 1] += 1e-3
    steps[1]["image"] = 255 - steps[1]["image"]
    problems, _ = readback_problems(RldsBuild(answer, steps, names), episodes)
    assert any("episode_cpu_0001: action differs" in p for p in problems)
    assert any("episode_cpu_0002: image frame" in p for p in problems)


def test_missing_venv_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HVLA_RLDS_VENV", str(tmp_path / "nope"))
    d = derive_target([("raw-teleop/x/y/z", make_episode(size=16))], "e2e", TargetOptions(image_size=16))
    with pytest.raises(RldsExportError, match="no RLDS venv at .*run ./scripts/install_rlds.sh"):
        build_rlds(d, {"episode_cpu_0001": TASK}, tmp_path / "out")


def test_steps_schema_without_tensorflow():
    te = derive_target([("raw-teleop/x/y/z", make_episode(size=16))], "correction",
                       TargetOptions(image_size=16)).episodes[0]
    st = rlds_steps(te, TASK)
    assert {k: (v.shape, v.dtype.str) for k, v in st.items() if k not in ("image", "wrist_image")} == {
        "state": ((9, 8), "<f4"), "action": ((9, 6), "<f4"), "action_gripper": ((9, 1), "<f4"),
        "discount": ((9,), "<f4"), "reward": ((9,), "<f4"), "is_first": ((9,), "|b1"), "is_last": ((9,), "|b1"),
        "is_terminal": ((9,), "|b1"), "language_instruction": ((), "<U42"), "language_embedding": ((512,), "<f4")}
