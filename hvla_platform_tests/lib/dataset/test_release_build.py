"""The production path, raw recordings → HDF5 → LeRobot release → Robo-DM cache, on real MCAP
recordings in a local lake (``convert_partition``, ``build_release``, ``build_cache``):

* what QA and the recording know reaches the dataset: QA status (a supervisor-approved episode is
  ``approved``), quality score and outcome in LeRobot's episode metadata, the Robo-DM
  ``manifest.parquet`` and the dataset card, which also states each camera's source rate and the
  fraction of repeated frames;
* LeRobot's own metadata states the split (``splits`` train / test ranges, ``stats.json`` of the
  train episodes) and agrees with the release manifest;
* the same recordings built in two lakes give byte-identical artifact files, and no file of the
  HDF5 artifact, the release or the cache names a lake's path or a temporary build directory.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.keys import episodes_prefix, robodm_prefix
from hvla_platform.lib.core.lake import MANIFEST_NAME, LocalLake
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.lerobot_release import read_hvla_episodes
from hvla_platform.lib.dataset.releases import lerobot_prefix, register_release
from hvla_platform.lib.dataset.robodm_build import build_cache
from hvla_platform.lib.formats.robodm_manifest import read_cache_manifest
from hvla_platform.lib.processing.qa.decisions import record_decision
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.recordings import write_recording

DAY, ROBOT, REPO = "2026-11-10", "g1-001", "hvla/t-qa"
SPEC = f"""\
name: t-qa
repo_id: {REPO}
partitions: [{{capture_day: "{DAY}", robot_id: {ROBOT}}}]
fps: 20
heldout: {{episode_ids: [ep-b]}}
"""
OUTCOMES = {"ep-a": {"success": True, "min_distance_m": 0.0123}, "ep-b": {"success": False, "min_distance_m": 0.0871},
            "ep-d": {"success": True, "min_distance_m": 0.0302}}  # ep-c states none
APPROVAL = "arm briefly past its limit during a recovery; data still useful"
DECIDED_AT = dt.datetime(2026, 11, 11, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recs")
    for i, ep in enumerate(("ep-a", "ep-b", "ep-c", "ep-d")):
        folder = write_recording(root, episode_id=ep, seed=i + 1, duration_s=4.5,
                                 defects=("out_of_limits",) if ep == "ep-d" else ())
        if ep in OUTCOMES:
            meta = yaml.safe_load((folder / "metadata.yaml").read_text())
            meta["outcome"] = OUTCOMES[ep]
            (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return root


def _build(root: Path, recordings: Path) -> dict:
    """Land, ingest, convert, approve ep-d (a QA gate failed), build the release and its cache."""
    lake = LocalLake(root)
    land_and_convert(lake, recordings, DAY, ROBOT)
    record_decision(lake, "ep-d", "approve", APPROVAL, by="qa-lead", at=DECIDED_AT)
    spec = register_release(lake, SPEC)
    release = build_release(lake, spec)
    cache = build_cache(lake, spec)
    return {"lake": lake, "spec": spec, "release": release, "cache": cache,
            "prefixes": [episodes_prefix(DAY, ROBOT), lerobot_prefix(spec), robodm_prefix(spec.name)]}


@pytest.fixture(scope="module")
def builds(tmp_path_factory, recordings):
    """The same recordings built in two lakes at different places (and two HVLA_HOMEs)."""
    env = pytest.MonkeyPatch()
    out = []
    for name in ("one", "two"):
        base = tmp_path_factory.mktemp(f"build-{name}")
        env.setenv("HVLA_HOME", str(base / "home"))
        out.append({**_build(base / f"lake-{name}", recordings), "base": base})
    yield out
    env.undo()


def _files(lake: LocalLake, prefix: str) -> dict[str, bytes]:
    return {k[len(prefix) + 1:]: lake.read_bytes(k) for k in lake.list_keys(prefix)}


def test_qa_status_score_and_outcome_reach_lerobot_episode_metadata(builds):
    b = builds[0]
    m = b["release"].manifest
    assert m.train_episode_ids == ["ep-a", "ep-c", "ep-d"] and m.heldout_episode_ids == ["ep-b"]
    assert "ep-d" in m.approved
    with b["lake"].local_artifact(lerobot_prefix(b["spec"])) as root:
        ds = import_lerobot_dataset()(REPO, root=Path(root), video_backend="torchcodec")
        eps = ds.meta.episodes
        assert list(eps["hvla/episode_id"]) == ["ep-a", "ep-c", "ep-d", "ep-b"]
        assert list(eps["hvla/qa_status"]) == ["passed", "passed", "approved", "passed"]
        assert list(eps["hvla/quality_score"]) == [m.quality_scores[e] for e in eps["hvla/episode_id"]]
        assert list(eps["hvla/success"]) == [True, None, True, False]
        assert list(eps["hvla/min_distance_m"]) == [0.0123, None, 0.0302, 0.0871]
        rows = read_hvla_episodes(Path(root))
    assert [r["qa_status"] for r in rows] == ["passed", "passed", "approved", "passed"]
    assert rows[2]["qa_note"].startswith("QA gate(s) failed") and APPROVAL in rows[2]["qa_note"]
    assert [r["source_key"] for r in rows] == [f"raw-mcap/{DAY}/{ROBOT}/{e}/{e}_0.mcap" for e in m.episode_index]
    assert [r["hdf5_key"] for r in rows] == [f"episodes-hdf5/{DAY}/{ROBOT}/{e}.h5" for e in m.episode_index]


def test_lerobot_splits_and_stats_agree_with_the_release_manifest(builds):
    b = builds[0]
    m = b["release"].manifest
    assert m.episode_index == {"ep-a": 0, "ep-c": 1, "ep-d": 2, "ep-b": 3}
    assert m.train_episode_indices == [0, 1, 2] and m.heldout_episode_indices == [3]
    with b["lake"].local_artifact(lerobot_prefix(b["spec"])) as root:
        ds = import_lerobot_dataset()(REPO, root=Path(root), video_backend="torchcodec")
        assert ds.meta.info["splits"] == {"train": "0:3", "test": "3:4"}
        data = pq.read_table(sorted((Path(root) / "data").rglob("*.parquet"))[0]).to_pydict()
    ep = np.asarray(data["episode_index"])
    train = np.isin(ep, m.train_episode_indices)
    for key in ("observation.state", "action"):
        x = np.asarray(data[key], np.float64)
        assert int(np.asarray(ds.meta.stats[key]["count"]).item()) == int(train.sum())
        np.testing.assert_allclose(ds.meta.stats[key]["mean"], x[train].mean(0), rtol=1e-5, atol=1e-6)


def test_robodm_manifest_carries_qa_and_outcome(builds):
    b = builds[0]
    with b["lake"].local_artifact(robodm_prefix(b["spec"].name)) as root:
        rows = read_cache_manifest(Path(root))
    assert [(r["episode_id"], r["split"], r["qa_status"], r["success"], r["min_distance_m"]) for r in rows] == [
        ("ep-a", "train", "passed", True, 0.0123), ("ep-c", "train", "passed", None, None),
        ("ep-d", "train", "approved", True, 0.0302), ("ep-b", "heldout", "passed", False, 0.0871)]
    scores = b["release"].manifest.quality_scores
    assert [r["quality_score"] for r in rows] == [scores[r["episode_id"]] for r in rows]
    assert {r["created_at"] for r in rows} == {"2026-11-10T09:00:08+00:00"}  # when the newest recording ended


def test_card_states_qa_outcome_and_camera_rates(builds):
    b = builds[0]
    with b["lake"].local_artifact(lerobot_prefix(b["spec"])) as root:
        card = (Path(root) / "README.md").read_text()
    assert "Built at" not in card
    assert "QA status: 3 passed" in card and "1 approved by a supervisor" in card
    assert "Recorded outcome: 2 success, 1 miss, 1 unknown" in card
    assert "| 2 | ep-d | train | approved |" in card and "| 3 | ep-b | heldout | passed |" in card
    assert APPROVAL in card and "qa-lead" in card
    assert "`{\"train\": \"0:3\", \"test\": \"3:4\"}`" in card and "**is the held-out split**" in card
    for cam in ("head", "wrist_right"):  # 4 episodes x 90 frames, 22 repeats each (15 Hz shown at 20 fps)
        assert (f"- `observation.images.{cam}`: recorded at 15.0 Hz, upsampled to the dataset's 20 fps by "
                "showing the nearest source frame at each frame time (no interpolation): 88 of 360 frames "
                "(24.4%) repeat the previous frame exactly.") in card


def test_two_lakes_give_byte_identical_artifacts(builds):
    one, two = builds
    for prefix in one["prefixes"]:
        a, b = _files(one["lake"], prefix), _files(two["lake"], prefix)
        assert sorted(a) == sorted(b), prefix
        assert [n for n in a if a[n] != b[n] and n != MANIFEST_NAME] == [], prefix  # manifests: created_at


def test_no_file_names_a_lake_path_or_a_build_directory(builds):
    for b in builds:
        lake_root = Path(b["lake"].root).resolve()
        needles = {str(lake_root), lake_root.as_uri(), str(b["base"].resolve()), str(b["lake"].scratch_root())}
        for prefix in b["prefixes"]:
            for name, data in _files(b["lake"], prefix).items():
                found = [n for n in needles if n.encode() in data]
                assert not found, f"{prefix}/{name} contains {found}"
        doc = json.loads(b["lake"].read_bytes(f"{lerobot_prefix(b['spec'])}/meta/info.json"))
        assert doc["splits"] == {"train": "0:3", "test": "3:4"}
