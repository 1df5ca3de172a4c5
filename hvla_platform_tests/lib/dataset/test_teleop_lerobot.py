"""Seed 003's targets as LeRobot v3.0 releases (lib/dataset/teleop_lerobot.py), read back with
LeRobot's own ``LeRobotDataset``; lineage from every target reaches the same raw episodes."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import (LeRobotDatasetManifest, build_manifest, manifest_sha256,
                                             require_manifest)
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.dataset.teleop_lerobot import publish_teleop_lerobot, state_and_action
from hvla_platform.lib.dataset.teleop_targets import TargetError, TargetOptions, derive_target, teleop_sources
from hvla_platform.lib.lineage.upstream import upstream
from hvla_platform_tests.lib.dataset.test_teleop_targets import make_episode

TASK = "Pick up the CPU and place it in the socket"


def rights(owner: str, uses: tuple[str, ...], until: str) -> Rights:
    return Rights(data_owners=frozenset({owner}), sites=frozenset({"lab-a"}), customers=frozenset({"acme"}),
                  consent_refs=frozenset({f"consent-{owner}"}), licenses=frozenset({"internal"}),
                  allowed_uses=frozenset(uses), retention_until=dt.date.fromisoformat(until),
                  contains_human_video=False, contains_customer_environment=False)


def publish_raw(lake: LocalLake, key: str, episode_id: str, r: Rights, task: str | None = None) -> str:
    """A committed raw teleop episode's manifest (``raw_teleop_episode``, lib/ingest/teleop.py's
    model) with the fields the exporters read (rights, task); the episode itself is handed over
    in memory, as the raw loader does."""
    _, day, robot, _ = key.split("/")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "episode_meta.json").write_text(json.dumps({"episode": episode_id}))
        manifest = build_manifest(
            artifact_type="raw_teleop_episode", artifact_key=key, inputs=[], config={}, rights=r, local_dir=d,
            episode_ids=[episode_id],
            extra={"episode_sha256": episode_id, "capture_day": day, "robot_id": robot, "num_frames": 40,
                   "fps": 30.0, "phase_counts": {}, "skill_outcome": "completed_after_correction",
                   "checks": {"frames": {"passed": True, "detail": ""}}, "task": task})
        lake.publish_artifact(key, d, manifest)
    return manifest_sha256(lake.read_manifest(key))


@pytest.fixture(scope="module")
def teleop_lake(tmp_path_factory):
    lake = LocalLake(tmp_path_factory.mktemp("lake"))
    eps = [make_episode("episode_cpu_0001", size=64), make_episode("episode_cpu_0002", size=64, seed=1,
                                                                  noops=(3,), tiny=())]
    keys = [f"raw-teleop/2026-11-30/ur5e-001/{e.episode_id}" for e in eps]
    publish_raw(lake, keys[0], eps[0].episode_id, rights("lab", ("internal_training", "lab_robot"), "2030-01-01"),
                task=TASK)
    publish_raw(lake, keys[1], eps[1].episode_id, rights("partner", ("internal_training",), "2029-06-30"), task=TASK)
    sources = teleop_sources(lake, list(zip(keys, eps)))
    options = TargetOptions(image_size=64)
    pubs = {t: publish_teleop_lerobot(lake, sources, t, options=options, partitions=["2026-11-30|ur5e-001"])
            for t in ("e2e", "planner", "correction")}
    return {"lake": lake, "sources": sources, "keys": keys, "pubs": pubs, "options": options}


def test_planner_reads_back_with_lerobot(teleop_lake):
    lake, sources, pub = teleop_lake["lake"], teleop_lake["sources"], teleop_lake["pubs"]["planner"]
    assert pub.status == "materialized"
    m = require_manifest(lake, pub.prefix, LeRobotDatasetManifest)
    d = derive_target([(s.key, s.episode) for s in sources], "planner", teleop_lake["options"])
    LeRobotDataset = import_lerobot_dataset()
    ds = LeRobotDataset(m.repo_id, root=lake.path(pub.prefix), video_backend="torchcodec")
    assert ds.num_episodes == 2 and ds.num_frames == d.num_frames == m.num_frames
    assert ds.meta.robot_type == "ur5e" and ds.fps == 30
    assert ds.features["observation.state"]["shape"] == (7,) and ds.features["action"]["shape"] == (7,)
    assert ds.features["observation.images.base_rgb"]["shape"] == (64, 64, 3)
    # the second episode: its last 4 frames are the last kept teleop frame and the 3 stop frames
    te = d.episodes[1]
    start = d.episodes[0].num_frames
    state, action = state_and_action(te.joint_positions, te.gripper01)
    for t in (0, te.num_frames - 4, te.num_frames - 1):
        item = ds[start + t]
        np.testing.assert_allclose(item["observation.state"].numpy(), state[t], atol=1e-6)
        np.testing.assert_allclose(item["action"].numpy(), action[t], atol=1e-6)
        assert item["task"] == TASK and int(item["episode_index"]) == 1
        # the decoded base camera still shows the colour of its source frame (4·t, 128, 255-4·t)
        src = int(te.source_index[t])
        rgb = item["observation.images.base_rgb"].numpy().mean(axis=(1, 2)) * 255
        np.testing.assert_allclose(rgb, [4 * src % 256, 128, 255 - 4 * src % 256], atol=6)
    last = ds[start + te.num_frames - 1]
    np.testing.assert_allclose(last["observation.state"].numpy()[6], 1.0)  # stop frame: gripper 255/255
    np.testing.assert_allclose(last["action"].numpy(), state[-1], atol=1e-6)


def test_manifest_card_rights_and_counts(teleop_lake):
    lake, pub = teleop_lake["lake"], teleop_lake["pubs"]["correction"]
    m = require_manifest(lake, pub.prefix, LeRobotDatasetManifest)
    assert m.derivation["target"] == "correction" and m.derivation["phases"] == ["correction"]
    counts = m.derivation["counts"]
    # episode 1: correction frames 25-31, frame 28 a no-op; episode 2: 25-31, no no-op there
    assert (counts["noops_removed"], counts["stop_frames"], counts["episodes"], counts["frames"]) == (1, 6, 2, 9 + 10)
    assert m.episode_ids == ["episode_cpu_0001", "episode_cpu_0002"]
    assert [i.key for i in m.inputs] == teleop_lake["keys"] and {i.kind for i in m.inputs} == {"raw_teleop"}
    r = m.rights_obj
    assert r.allowed_uses == frozenset({"internal_training"})  # intersection
    assert r.data_owners == frozenset({"lab", "partner"}) and r.retention_until == dt.date(2029, 6, 30)
    card = (lake.path(pub.prefix) / "README.md").read_text()
    for text in ("teleop target `correction`", "phases `correction`", "<= 0.0001 rad", "1 frame(s) removed",
                 "3 copies of each segment's last kept frame with gripper = 255; 6 frame(s) added",
                 "Allowed uses: internal_training", "raw-teleop/2026-11-30/ur5e-001/episode_cpu_0002"):
        assert text in card, text


def test_all_three_targets_lead_back_to_the_same_raw_episodes(teleop_lake):
    lake, pubs, keys = teleop_lake["lake"], teleop_lake["pubs"], teleop_lake["keys"]
    e2e = require_manifest(lake, pubs["e2e"].prefix, LeRobotDatasetManifest)
    assert e2e.derivation["counts"]["stop_frames"] == 0 and e2e.num_frames == 35 + 39
    for t, pub in pubs.items():
        tree = upstream(lake, pub.prefix)
        assert sorted(c.key for c in tree.children) == sorted(keys), t
        assert all(c.sha256_matches for c in tree.children), t


def test_republish_is_cached_and_missing_task_is_refused(teleop_lake):
    lake, sources = teleop_lake["lake"], teleop_lake["sources"]
    again = publish_teleop_lerobot(lake, sources, "planner", options=teleop_lake["options"],
                                   partitions=["2026-11-30|ur5e-001"])
    assert again.status == "cached"
    key = "raw-teleop/2026-11-30/ur5e-001/episode_cpu_0009"
    publish_raw(lake, key, "episode_cpu_0009", rights("lab", ("internal_training",), "2030-01-01"))
    (src,) = teleop_sources(lake, [(key, make_episode("episode_cpu_0009"))])
    with pytest.raises(TargetError, match="episode_cpu_0009 records no task"):
        publish_teleop_lerobot(lake, [src], "planner")
    with pytest.raises(TargetError, match="no committed raw teleop episode"):
        teleop_sources(lake, [("raw-teleop/2026-11-30/ur5e-001/nope", make_episode("nope"))])
