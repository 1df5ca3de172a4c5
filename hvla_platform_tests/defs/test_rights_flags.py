"""Consent-withdrawal flags on the Dagster asset partitions (issue 13 §3): after a revocation the
flagged release, norm stats, cache, export, checkpoint and eval report carry an observation with the
flag and a FAILED ``rights_standing`` check (ERROR); before it, the check passed on materialization.

Reuses the session-cached pipeline lake of ``test_graph`` *and its Dagster instance* (the lake was
built by Dagster runs, so every asset partition has its materialization and its ``rights_standing``
evaluation); both are copied, then consent-A (``ep-a-1, ep-a-2``: partition 2026-11-10|g1-001) is
withdrawn and reported with the function ``hvla rights revoke`` calls.
"""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from hvla_platform.defs.automation.rights_flags import RIGHTS_CHECK, report_revocation, rights_check_result
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ops.revocation import revoke_consent
from hvla_platform.lib.web.links import lake_file_url
from hvla_platform_tests.lib.lineage.test_graph import CKPT, EXP, build_pipeline_lake

REASON = "demonstrator withdrew consent (ticket 4711)"
FLAGGED = {"lerobot_dataset": "lin-v1", "norm_stats": "lin-v1", "robodm_cache": "lin-v1", "openpi_export": "lin-v1",
           "checkpoint": EXP, "eval_report": EXP}


def _check_evals(inst: dg.DagsterInstance, asset: str, partition: str) -> list[dg.AssetCheckEvaluation]:
    """``rights_standing`` evaluations of one asset partition, newest first."""
    key = dg.AssetCheckKey(dg.AssetKey(asset), RIGHTS_CHECK)
    recs = inst.event_log_storage.get_asset_check_execution_history(key, limit=50)
    evals = [r.event.dagster_event.asset_check_evaluation_data for r in recs if r.event and r.event.dagster_event]
    return [e for e in evals if e.partition == partition]


@pytest.fixture(scope="module")
def revoked(tmp_path_factory):
    """``(lake, instance, revocation result, events reported, evaluations before)``."""
    home, dagster_home = build_pipeline_lake()
    root = tmp_path_factory.mktemp("rights-flags")
    shutil.copytree(home / "lake", root / "lake", ignore=shutil.ignore_patterns(".hvla-tmp", "_index"))
    shutil.copytree(dagster_home, root / "dagster")
    lake = LocalLake(root / "lake")
    inst = dg.DagsterInstance.from_config(str(root / "dagster"))
    before = {a: _check_evals(inst, a, p) for a, p in FLAGGED.items()}
    res = revoke_consent(lake, "consent-A", reason=REASON, by="dpo", rebuild_release=lambda name: None)
    events = report_revocation(inst, lake, list(res.flagged), res.episodes)
    yield lake, inst, res, events, before
    inst.dispose()


def test_the_check_passed_on_materialization_and_fails_once_flagged(revoked):
    lake, inst, res, _, before = revoked
    for asset, partition in FLAGGED.items():
        assert before[asset] and before[asset][0].passed, asset  # evaluated by the asset's own run
        latest = _check_evals(inst, asset, partition)[0]
        assert not latest.passed and latest.severity == dg.AssetCheckSeverity.ERROR, asset
        md = latest.metadata
        assert md["hvla/reason"].value == REASON and md["hvla/consent"].value == "consent-A"
        assert md["hvla/revocation"].value == res.record_key
        # the record opens over HTTP on the lake web service, never as a file:// link
        assert md["hvla/revocation_record"].value == lake_file_url(res.record_key)
        assert lake_file_url(res.record_key).startswith("http://127.0.0.1:3001/lake/rights-revocations/")
        assert md["hvla/rights_flag"].value == ("retrain_required" if asset == "checkpoint" else "do_not_use")
    ck = _check_evals(inst, "checkpoint", EXP)[0]
    assert ck.metadata["hvla/flagged_artifact"].value == CKPT and CKPT in ck.description


def test_observations_on_flagged_and_raw_partitions(revoked):
    lake, inst, res, events, _ = revoked
    obs = inst.fetch_observations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("norm_stats"),
                                                        asset_partitions=["lin-v1"]), limit=5).records
    assert obs and obs[0].asset_observation.metadata["hvla/rights_flag"].value == "do_not_use"
    assert "withdrew consent (ticket 4711)" in obs[0].asset_observation.description
    raw = inst.fetch_observations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_mcap"),
                                                        asset_partitions=["2026-11-10|g1-001"]), limit=5).records
    md = raw[0].asset_observation.metadata
    assert md["hvla/withdrawn_episode_ids"].value == "ep-a-1, ep-a-2" and md["hvla/episode_ids"].value == "(none left)"
    hdf5 = inst.fetch_observations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("episodes_hdf5"),
                                                         asset_partitions=["2026-11-10|g1-001"]), limit=5).records
    assert hdf5[0].asset_observation.metadata["hvla/hdf5"].value == "removed: every episode withdrawn"
    # consent-B's partition got nothing
    assert not inst.fetch_observations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("raw_mcap"),
                                                             asset_partitions=["2026-11-11|g1-002"]), limit=5).records
    assert len([e for e in events if isinstance(e, dg.AssetCheckEvaluation)]) == len(FLAGGED)


def test_rights_check_result_follows_the_flag(revoked):
    lake = revoked[0]
    failed = rights_check_result(lake, "norm_stats", "norm-stats/lin-v1")
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["hvla/revocation"].value == revoked[2].record_key
    kept = rights_check_result(lake, "episodes_hdf5", "episodes-hdf5/2026-11-11/g1-002")  # consent-B: not flagged
    assert kept.passed and kept.metadata["hvla/rights_flag"].value == "(none)"
