"""Consent withdrawal: recorded, impacted artifacts flagged, releases rebuilt without the episodes,
checkpoints flagged for retraining, raw files restricted, every step audited, nothing else lost."""

import pytest

from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.ingest.landing import find_recordings, land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.dataset.norm_stats_build import build_norm_stats
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.dataset.releases import register_release, select_episodes
from hvla_platform.lib.core.withdrawals import artifact_flags, audit_log
from hvla_platform.lib.ops.revocation import RevocationError, revoke_consent
from hvla_platform.lib.core.rights import RightsError
from hvla_platform.lib.dataset.robodm_build import build_cache
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.training.train import TrainConfig
from hvla_platform.lib.training.build import train_experiment
from hvla_platform_tests.fixtures.recordings import default_rights, write_recording

SPEC = "name: rev-v1\nrepo_id: hvla/rev\npartitions: all\nheldout: {fraction: 0.0}\n"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("rev")
    lake = LocalLake(root / "lake")
    recs = root / "recs"
    for i, (robot, consent) in enumerate([("g1-a", "consent-A"), ("g1-a", "consent-A"), ("g1-b", "consent-B"), ("g1-b", "consent-B")]):
        write_recording(recs, episode_id=f"ep-{i}", robot_id=robot, seed=i, rights=default_rights(consent_refs=[consent]))
    for rec in find_recordings(recs):
        land_recording(lake, rec)
    for robot in ("g1-a", "g1-b"):
        ingest_partition(lake, "2026-11-10", robot)
        convert_partition(lake, "2026-11-10", robot)
    spec = register_release(lake, SPEC)
    build_release(lake, spec)
    build_norm_stats(lake, spec)
    build_cache(lake, spec)
    train_experiment(lake, TrainConfig(exp_name="exp-1", release="rev-v1", steps=5, config_name="c"), tracking_uri=None)
    return lake


def test_revoke_consent_end_to_end(lake):
    b_before = {k: lake.read_bytes(k) for k in lake.list_keys("raw-mcap/2026-11-10/g1-b")}
    res = revoke_consent(lake, "consent-A", reason="demonstrator withdrew consent (ticket 4711)", by="dpo")
    assert res.episodes == ["ep-0", "ep-1"]
    # impacted artifacts flagged; the checkpoint for retraining
    assert res.flagged["lerobot/hvla/rev/rev-v1"] == "do_not_use"
    assert res.flagged["checkpoints/c/exp-1/5"] == "retrain_required"
    assert artifact_flags(lake, "robodm-cache/rev-v1")["consent"] == "consent-A"
    # a new release version without the episodes
    assert res.rebuilt_releases == {"rev-v1": "rev-v1-r1"}
    new = lake.read_manifest("lerobot/hvla/rev/rev-v1-r1")
    assert new["episode_ids"] == ["ep-2", "ep-3"]
    assert lake.read_manifest("robodm-cache/rev-v1-r1")["episode_ids"] == ["ep-2", "ep-3"]
    assert lake.read_json(res.record_key)["episodes"] == ["ep-0", "ep-1"]
    # the derived HDF5 of the partition (all of whose episodes were withdrawn) is gone
    assert lake.read_manifest("episodes-hdf5/2026-11-10/g1-a") is None and not lake.list_keys("episodes-hdf5/2026-11-10/g1-a")
    # raw handled per policy: moved to the restricted area; the other consent's raw untouched
    assert not lake.list_keys("raw-mcap/2026-11-10/g1-a/ep-0")
    assert lake.exists("restricted/raw-mcap/2026-11-10/g1-a/ep-0/ep-0_0.mcap")
    assert lake.exists("restricted/landing/2026-11-10/g1-a/ep-0/metadata.yaml")
    assert {k: lake.read_bytes(k) for k in lake.list_keys("raw-mcap/2026-11-10/g1-b")} == b_before
    # releases from now on skip them; training on the flagged release is refused
    later = select_episodes(lake, register_release(lake, SPEC.replace("rev-v1", "rev-v2")))
    assert [e.episode_id for e in later.episodes] == ["ep-2", "ep-3"]
    with pytest.raises(RightsError, match="flagged do_not_use"):
        train_experiment(lake, TrainConfig(exp_name="exp-2", release="rev-v1", steps=5, config_name="c"), tracking_uri=None)
    # the flagged checkpoint is refused for serving, with the withdrawal as the reason
    from hvla_platform.lib.serving.authorization import ServingRefused, authorize_serving

    with lake.local_artifact("checkpoints/c/exp-1/5") as step_dir:
        with pytest.raises(ServingRefused, match="flagged retrain_required"):
            authorize_serving(step_dir, "lab_robot", lake=lake, checkpoint_key="checkpoints/c/exp-1/5")
    # every step audited, in order
    events = [e["event"] for e in audit_log(lake)]
    assert events[0] == "consent_revoked" and "release_rebuilt" in events and events.count("raw_restrict") == 2


def test_bad_requests_are_refused(lake):
    with pytest.raises(RevocationError, match="no episode carries"):
        revoke_consent(lake, "consent-Z", reason="x")
    with pytest.raises(RevocationError, match="needs a reason"):
        revoke_consent(lake, "consent-B", reason=" ")
    with pytest.raises(RevocationError, match="raw_policy"):
        revoke_consent(lake, "consent-B", reason="r", raw_policy="shred")
