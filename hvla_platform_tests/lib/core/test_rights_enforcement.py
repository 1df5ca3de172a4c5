"""Rights are enforced before work is done: customer mixing, norm-stats reuse across customers,
expired retention, training for a use the data does not allow — each refused with its reason."""

import datetime as dt

import pytest

from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.ingest.landing import find_recordings, land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.dataset.norm_stats_build import build_norm_stats
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.dataset.spec import ReleaseSpec, ReleaseSpecError
from hvla_platform.lib.dataset.releases import register_release, select_episodes
from hvla_platform.lib.core.rights import RightsError
from hvla_platform.lib.dataset.robodm_build import build_cache
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.training.train import TrainConfig
from hvla_platform.lib.training.build import train_experiment
from hvla_platform_tests.fixtures.recordings import default_rights, write_recording


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("rights")
    lake = LocalLake(root / "lake")
    recs = root / "recs"
    for i, (robot, customer) in enumerate([("g1-a", "acme"), ("g1-a", "acme"), ("g1-b", "globex"), ("g1-b", "globex")]):
        write_recording(recs, episode_id=f"ep-{customer}-{i}", robot_id=robot, seed=i, customer=customer)
    write_recording(recs, episode_id="ep-expired", robot_id="g1-a", seed=9, customer="acme",
                    rights=default_rights(retention_until="2020-01-01"))
    for rec in find_recordings(recs):
        assert land_recording(lake, rec).status == "landed"
    for robot in ("g1-a", "g1-b"):
        ingest_partition(lake, "2026-11-10", robot)
        convert_partition(lake, "2026-11-10", robot)
    return lake


def spec(text: str) -> ReleaseSpec:
    return ReleaseSpec.from_yaml(text)


def test_mixing_customers_without_a_grant_is_refused(lake):
    with pytest.raises(RightsError, match=r"mix customers \(acme: 2 episode\(s\).*globex: 2 episode\(s\)"):
        select_episodes(lake, spec("name: mixed\nrepo_id: hvla/mixed\npartitions: all\n"))


def test_a_grant_naming_every_customer_allows_mixing(lake):
    granted = spec("name: mixed\nrepo_id: hvla/mixed\npartitions: all\ncross_customer_grant:\n"
                   "  reference: grant-2026-07\n  granted_by: legal@hvla\n  customers: [acme, globex]\n")
    assert len(select_episodes(lake, granted).episodes) == 4
    partial = spec("name: mixed\nrepo_id: hvla/mixed\npartitions: all\ncross_customer_grant:\n"
                   "  reference: g\n  granted_by: x\n  customers: [acme, initech]\n")
    with pytest.raises(RightsError, match=r"covering \['globex'\]"):
        select_episodes(lake, partial)
    with pytest.raises(ReleaseSpecError, match="cross_customer_grant"):
        spec("name: m\nrepo_id: o/m\ncross_customer_grant: {reference: g}\n")


def test_expired_episodes_never_enter_a_new_release(lake):
    sel = select_episodes(lake, spec("name: acme-v1\nrepo_id: hvla/acme\npartitions: [{capture_day: '2026-11-10', robot_id: g1-a}]\n"))
    assert "ep-expired" not in [e.episode_id for e in sel.episodes]
    assert sel.excluded["ep-expired"] == "retention ended 2020-01-01"


def test_norm_stats_of_one_customer_are_refused_for_another_customers_training(lake, tmp_path):
    text = {"acme-v1": "name: acme-v1\nrepo_id: hvla/acme\npartitions: [{capture_day: '2026-11-10', robot_id: g1-a}]\nheldout: {fraction: 0.0}\n",
            "globex-v1": "name: globex-v1\nrepo_id: hvla/globex\npartitions: [{capture_day: '2026-11-10', robot_id: g1-b}]\nheldout: {fraction: 0.0}\n"}
    specs = {k: register_release(lake, v) for k, v in text.items()}
    for s in specs.values():
        build_release(lake, s)
        build_norm_stats(lake, s)
    build_cache(lake, specs["globex-v1"])
    cfg = TrainConfig(exp_name="x", release="globex-v1", steps=5)
    with pytest.raises(RightsError, match=r"norm stats of release acme-v1 .* customer\(s\) \['acme'\]"):
        train_experiment(lake, cfg, tracking_uri=None, norm_stats_release="acme-v1")
    assert lake.list_artifacts("checkpoints") == []  # refused before any work


def test_training_refused_when_the_data_does_not_allow_it():
    from hvla_platform.lib.training.train import check_training_rights

    rights = {"data_owners": ["o"], "sites": ["s"], "customers": ["c"], "consent_refs": [], "licenses": ["l"],
              "allowed_uses": ["lab_robot"], "retention_until": "2099-01-01", "contains_human_video": False,
              "contains_customer_environment": False}
    with pytest.raises(RightsError, match="do not allow 'internal_training'"):
        check_training_rights(rights)
    with pytest.raises(RightsError, match="retention ended"):
        check_training_rights({**rights, "allowed_uses": ["internal_training"], "retention_until": "2020-01-01"},
                              today=dt.date(2026, 11, 21))
