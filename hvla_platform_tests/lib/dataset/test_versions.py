"""A release name always means the same data: every changed rebuild is a new immutable version,
and no episode ever changes side between train and held-out (issue 11, items 1 and 2)."""

from __future__ import annotations

import itertools
import random

import pytest

from hvla_platform.lib.core.keys import release_version_key
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import (
    ImmutableArtifactError, LeRobotDatasetManifest, load_manifest, publish_if_changed)
from hvla_platform.lib.core.suggest import UnknownIdError
from hvla_platform.lib.dataset import build as release_build
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.releases import load_release, register_release
from hvla_platform.lib.dataset.spec import ReleaseSpec, ReleaseSpecError
from hvla_platform.lib.dataset.version_report import version_rows
from hvla_platform.lib.dataset.versions import (
    latest_release_spec, list_versions, load_release_version, parse_version_id, version_id)
from hvla_platform.lib.processing.qa.decisions import record_decision
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.recordings import write_recording

ROBOT = "g1-001"
DAY1, DAY2 = "2026-11-10", "2026-11-11"
SPEC = "name: ver-v1\nrepo_id: hvla/ver\npartitions: all\nfps: 20\nheldout: {fraction: 0.4, seed: 7}\n"


def _land(lake, root, day: str, ids: list[str]) -> None:
    for ep in ids:  # a distinct seed per episode: equal signals would be refused as duplicates
        seed = int.from_bytes(ep.encode(), "big") % 10_000
        write_recording(root / day, episode_id=ep, capture_day=day, seed=seed, duration_s=1.0)
    land_and_convert(lake, root / day, day, ROBOT)


def _files(lake, prefix: str) -> dict[str, str]:
    return {k: lake.sha256(k) for k in lake.list_keys(prefix)}


def _sides(m: LeRobotDatasetManifest) -> dict[str, str]:
    return {**{e: "train" for e in m.train_episode_ids}, **{e: "heldout" for e in m.heldout_episode_ids}}


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Builds of one spec while its data changes: initial, unchanged, a rejection, a new
    partition, a changed spec. Returns ``(lake, [(label, ReleaseBuild, files of that version)])``."""
    root = tmp_path_factory.mktemp("versions")
    lake = LocalLake(root / "lake")
    _land(lake, root, DAY1, ["ep-a1", "ep-a2", "ep-a3"])
    register_release(lake, SPEC)
    steps = []

    def build(label: str):
        b = build_release(lake, load_release(lake, "ver-v1"))
        steps.append((label, b, _files(lake, b.prefix)))

    build("first")
    build("unchanged")
    record_decision(lake, "ep-a2", "reject", "operator bumped the table", by="qa-lead")
    build("after a rejection")
    _land(lake, root, DAY2, ["ep-b1", "ep-b2"])
    build("after a new partition")
    register_release(lake, SPEC + "description: a changed spec\n")
    build("after a spec change")
    return lake, steps


def test_each_changed_build_is_a_new_version_and_an_unchanged_one_is_cached(history):
    lake, steps = history
    got = [(label, b.status, b.manifest.release) for label, b, _ in steps]
    assert got == [("first", "materialized", "ver-v1"), ("unchanged", "cached", "ver-v1"),
                   ("after a rejection", "materialized", "ver-v1.1"),
                   ("after a new partition", "materialized", "ver-v1.2"),
                   ("after a spec change", "materialized", "ver-v1.3")]
    assert [r.release for r in list_versions(lake, "ver-v1")] == ["ver-v1", "ver-v1.1", "ver-v1.2", "ver-v1.3"]
    by_release = {b.manifest.release: b.manifest for _, b, _ in steps}
    assert "ep-a2" in by_release["ver-v1"].episode_ids and "ep-a2" not in by_release["ver-v1.1"].episode_ids
    assert {"ep-b1", "ep-b2"} <= set(by_release["ver-v1.2"].episode_ids)
    assert [(m.spec_name, m.version) for m in by_release.values()] == [("ver-v1", n) for n in range(4)]


def test_old_versions_keep_their_exact_content(history):
    lake, steps = history
    for label, b, files in steps:
        now = load_manifest(lake, b.prefix, LeRobotDatasetManifest)
        assert now is not None, f"{label}: {b.prefix} is gone"
        assert now.fingerprint == b.manifest.fingerprint and now.created_at == b.manifest.created_at, label
        assert _files(lake, b.prefix) == files, f"{label}: files of {b.prefix} changed after a later build"


def test_a_version_id_resolves_to_the_spec_it_was_built_from(history):
    lake, _ = history
    assert load_release_version(lake, "ver-v1").description == ""
    assert load_release_version(lake, "ver-v1.3").description == "a changed spec"
    v2 = load_release_version(lake, "ver-v1.2")
    assert (v2.name, v2.spec_name, v2.version) == ("ver-v1.2", "ver-v1", 2)
    assert latest_release_spec(lake, "ver-v1").name == "ver-v1.3"
    with pytest.raises(UnknownIdError, match=r"unknown release .ver-v1\.9. \(did you mean .ver-v1\."):
        load_release_version(lake, "ver-v1.9")


def test_no_episode_ever_changes_side_across_versions(history):
    _, steps = history
    seen: dict[str, str] = {}
    for label, b, _ in steps:
        for ep, side in _sides(b.manifest).items():
            assert seen.setdefault(ep, side) == side, f"{ep} moved to {side} in {b.manifest.release} ({label})"
    assert set(seen.values()) == {"train", "heldout"}  # both sides are exercised


def test_versions_listing_says_what_each_holds(history):
    lake, _ = history
    rows = version_rows(lake, "ver-v1")
    assert [(r["release"], r["status"], r["num_episodes"]) for r in rows] == [
        ("ver-v1", "published", 3), ("ver-v1.1", "published", 2), ("ver-v1.2", "published", 4),
        ("ver-v1.3", "published", 4)]


def test_a_crashed_build_leaves_its_version_to_the_next_build(tmp_path, monkeypatch):
    lake = LocalLake(tmp_path / "lake")
    _land(lake, tmp_path, DAY1, ["ep-c1", "ep-c2"])
    register_release(lake, SPEC)

    def crash(*_a, **_k):
        raise RuntimeError("disk full")

    with monkeypatch.context() as m:
        m.setattr(release_build, "build_lerobot_dataset", crash)
        with pytest.raises(RuntimeError, match="disk full"):
            build_release(lake, load_release(lake, "ver-v1"))
    assert lake.exists(release_version_key("ver-v1", 0))  # reserved, never published
    b = build_release(lake, load_release(lake, "ver-v1"))
    assert (b.status, b.manifest.release) == ("materialized", "ver-v1")
    assert [r.release for r in list_versions(lake, "ver-v1")] == ["ver-v1"]


def test_a_published_version_is_never_replaced(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    _land(lake, tmp_path, DAY1, ["ep-d1", "ep-d2"])
    register_release(lake, SPEC)
    b = build_release(lake, load_release(lake, "ver-v1"))
    before = _files(lake, b.prefix)

    def never(_root):
        raise AssertionError("write must not be called")

    with pytest.raises(ImmutableArtifactError, match="immutable lerobot_dataset"):
        publish_if_changed(lake, b.prefix, artifact_type="lerobot_dataset", inputs=[],
                           config={"something": "else"}, write=never, immutable=True)
    assert _files(lake, b.prefix) == before


def test_spec_names_cannot_look_like_versions():
    with pytest.raises(ReleaseSpecError, match=r"reserved for release versions"):
        ReleaseSpec.from_mapping({"name": "g1-reach-v1.1", "repo_id": "hvla/g1"})
    assert ReleaseSpec.from_mapping({"name": "g1-reach-v1.1-final", "repo_id": "hvla/g1"}).name == "g1-reach-v1.1-final"
    assert parse_version_id("g1-reach-v1.12") == ("g1-reach-v1", 12)
    assert parse_version_id("g1-reach-v1") == ("g1-reach-v1", 0)
    assert version_id("g1-reach-v1", 0) == "g1-reach-v1" and version_id("g1-reach-v1", 3) == "g1-reach-v1.3"


# ---- the split is a property of each episode ---------------------------------------------------

def test_adding_or_removing_episodes_never_moves_another_episode():
    """The bug of issue 11: 8 episodes gave held-out {ep-006, ep-007}, 9 gave {ep-006, ep-008}."""
    spec = ReleaseSpec.from_mapping({"name": "s", "repo_id": "hvla/s", "heldout": {"fraction": 0.25, "seed": 0}})
    universe = [f"ep-{i:03d}" for i in range(60)]
    _, held_all = spec.split(universe)
    rng = random.Random(1)
    ids = universe[:8]
    for _ in range(200):  # a random walk of releases: add some, remove some
        if rng.random() < 0.6 or len(ids) < 3:
            ids = sorted(set(ids) | set(rng.sample(universe, 3)))
        else:
            ids = sorted(set(ids) - set(rng.sample(ids, 2)))
        train, held = spec.split(ids)
        assert set(held) == set(ids) & set(held_all) and set(train) == set(ids) - set(held_all)
        assert sorted(train + held) == ids
    assert 0.1 < len(held_all) / len(universe) < 0.45  # ~fraction of a large set


def test_the_seed_is_the_salt_and_explicit_ids_win():
    base = {"name": "s", "repo_id": "hvla/s"}
    ids = [f"ep-{i:03d}" for i in range(40)]
    splits = {seed: ReleaseSpec.from_mapping({**base, "heldout": {"fraction": 0.3, "seed": seed}}).split(ids)[1]
              for seed in range(3)}
    assert len({tuple(v) for v in splits.values()}) == 3
    explicit = ReleaseSpec.from_mapping({**base, "heldout": {"episode_ids": ["ep-003", "ep-999"]}})
    assert explicit.split(ids[:5]) == (["ep-000", "ep-001", "ep-002", "ep-004"], ["ep-003"])
    none = ReleaseSpec.from_mapping({**base, "heldout": {"fraction": 0.0}})
    assert none.split(ids) == (ids, [])


def test_snapshot_names_share_the_assignment():
    a = ReleaseSpec.from_mapping({"name": "line", "repo_id": "hvla/s", "heldout": {"fraction": 0.3, "seed": 5}})
    b = ReleaseSpec.from_mapping({"name": "line-20261130", "repo_id": "hvla/s", "heldout": {"fraction": 0.3, "seed": 5}})
    for ids in itertools.combinations([f"ep-{i}" for i in range(7)], 5):
        assert a.split(list(ids)) == b.split(list(ids))


# ---- incremental versions (issue 18) -------------------------------------------------------------

def test_each_version_says_whether_it_reused_the_previous_one(history):
    """A new partition reuses the previous version's encoded episodes; a rejected (withdrawn)
    episode forces a full build, and the reason names it."""
    lake, steps = history
    got = [(label, b.how, b.base) for label, b, _ in steps]
    assert got == [("first", "full", ""), ("unchanged", "", ""), ("after a rejection", "full", "ver-v1"),
                   ("after a new partition", "incremental", "ver-v1.1"),
                   ("after a spec change", "incremental", "ver-v1.2")]
    rejection = steps[2][1]
    assert "no longer selected" in rejection.reason and "ep-a2" in rejection.reason
    assert steps[0][1].reason == "no previous version of this release line"
    # a train episode keeps its episode_index from version to version once reused
    v11, v12 = steps[2][1].manifest, steps[3][1].manifest
    for ep in v11.train_episode_ids:
        assert v12.episode_index[ep] == v11.episode_index[ep]
    with lake.local_artifact(v12.artifact_key) as root:
        from hvla_platform.lib.dataset.lerobot_release import load_and_probe
        from hvla_platform.lib.dataset.timestamps import check_lerobot_timestamps
        probe = load_and_probe(root, "hvla/ver")
        assert probe["num_episodes"] == v12.num_episodes == 4 and probe["num_frames"] == v12.num_frames
        assert all(r["passed"] for r in check_lerobot_timestamps(root).values())


def test_incremental_versions_share_files_with_their_base_and_every_manifest_hash_stays_true(history):
    """The reused videos are the base version's files (one inode in both versions: publishing links,
    hashes taken from the base's manifest), and every published version's files still hash to what
    its manifest says — building a new version never wrote into the one it reused."""
    from hvla_platform.lib.core.lake import sha256_file

    lake, steps = history
    base, grown = steps[2][1].manifest, steps[3][1].manifest
    base_root, grown_root = lake.path(base.artifact_key), lake.path(grown.artifact_key)
    videos = [f.path for f in base.files if f.path.startswith("videos/")]
    assert videos and all((grown_root / v).stat().st_ino == (base_root / v).stat().st_ino for v in videos)
    for _, b, _ in steps:
        m = b.manifest
        root = lake.path(m.artifact_key)
        assert all(sha256_file(root / f.path) == f.sha256 and (root / f.path).stat().st_size == f.bytes
                   for f in m.files), m.release


def test_the_newest_trainable_version_skips_unbuilt_and_flagged_ones(tmp_path):
    from hvla_platform.lib.core.keys import flag_key, robodm_prefix
    from hvla_platform.lib.dataset.norm_stats_build import build_norm_stats
    from hvla_platform.lib.dataset.robodm_build import build_cache
    from hvla_platform.lib.dataset.versions import newest_trainable_version

    lake = LocalLake(tmp_path / "lake")
    _land(lake, tmp_path, DAY1, ["ep-a1", "ep-a2", "ep-a3"])
    register_release(lake, SPEC)
    first = build_release(lake, load_release(lake, "ver-v1")).spec
    assert newest_trainable_version(lake, "ver-v1") is None  # published, but no cache or norm stats
    build_norm_stats(lake, first)
    build_cache(lake, first)
    assert newest_trainable_version(lake, "ver-v1") == first.name
    _land(lake, tmp_path, DAY2, ["ep-b1", "ep-b2"])
    second = build_release(lake, load_release(lake, "ver-v1")).spec
    assert second.name != first.name
    assert newest_trainable_version(lake, "ver-v1") == first.name  # the new version is not trainable yet
    build_norm_stats(lake, second)
    build_cache(lake, second)
    assert newest_trainable_version(lake, "ver-v1") == second.name
    # a consent revocation flags the newest version's cache: the launchpad falls back to the older one
    lake.write_json(flag_key(robodm_prefix(second.name)), {"status": "do_not_use", "consent": "c-1",
                                                            "reason": "withdrawn", "episode_ids": ["ep-b1"]})
    assert newest_trainable_version(lake, "ver-v1") == first.name
    assert newest_trainable_version(lake, "no-such-release") is None
