"""Manifest models and the one publish-if-changed helper every derived artifact goes through."""

import datetime as dt
import json
from pathlib import Path

import pytest

from hvla_platform.lib.core.lake import MANIFEST_NAME, LocalLake
from hvla_platform.lib.core.manifest import (
    MANIFEST_MODELS,
    Content,
    InputRef,
    ManifestError,
    NormStatsManifest,
    RoboDMCacheManifest,
    build_manifest,
    load_manifest,
    manifest_sha256,
    parse_manifest,
    publish_if_changed,
    require_manifest,
)
from hvla_platform.lib.core.rights import Rights

RIGHTS = Rights(data_owners=frozenset({"lab"}), sites=frozenset({"site-a"}), customers=frozenset({"internal"}),
                consent_refs=frozenset({"c-1"}), licenses=frozenset({"proprietary"}),
                allowed_uses=frozenset({"internal_training"}), retention_until=dt.date(2031, 1, 1))
INPUTS = [InputRef(uri="file:///lake/lerobot/hvla/x/x-v1", sha256="a" * 64, kind="lerobot_dataset",
                   episode_ids=["ep-2", "ep-1"])]
NORM_EXTRA = {"release": "x-v1", "repo_id": "hvla/x", "computed_from": "train_split_only",
              "excluded_heldout_episode_ids": [], "num_frames": 10, "names": {"state": ["j0"]}, "problems": [],
              "reusable_across_customers": False, "customers": ["internal"]}


@pytest.fixture()
def lake(tmp_path: Path) -> LocalLake:
    return LocalLake(tmp_path / "lake")


def _writer(calls: list[int], *, fail: bool = False):
    def write(out: Path) -> Content:
        calls.append(1)
        (out / "norm_stats.json").write_text('{"norm_stats": {}}')
        if fail:
            raise RuntimeError("the build broke half-way")
        return Content(extra=NORM_EXTRA)
    return write


def test_publish_builds_once_then_reports_cached(lake):
    calls: list[int] = []
    first = publish_if_changed(lake, "norm-stats/x-v1", artifact_type="norm_stats", inputs=INPUTS,
                               config={"min_std": 1e-4}, rights=RIGHTS, write=_writer(calls))
    assert first.status == "materialized" and isinstance(first.manifest, NormStatsManifest)
    assert first.manifest.episode_ids == ["ep-1", "ep-2"] and first.manifest.files[0].path == "norm_stats.json"
    again = publish_if_changed(lake, "norm-stats/x-v1", artifact_type="norm_stats", inputs=INPUTS,
                               config={"min_std": 1e-4}, rights=RIGHTS, write=_writer(calls))
    assert again.status == "cached" and calls == [1]
    assert again.manifest.sha256() == first.manifest.sha256() == manifest_sha256(lake.read_manifest("norm-stats/x-v1"))
    changed = publish_if_changed(lake, "norm-stats/x-v1", artifact_type="norm_stats", inputs=INPUTS,
                                 config={"min_std": 1e-3}, rights=RIGHTS, write=_writer(calls))
    assert changed.status == "materialized" and calls == [1, 1]
    assert changed.manifest.fingerprint != first.manifest.fingerprint


def test_a_failed_build_publishes_nothing(lake):
    with pytest.raises(RuntimeError, match="half-way"):
        publish_if_changed(lake, "norm-stats/x-v1", artifact_type="norm_stats", inputs=INPUTS, config={},
                           rights=RIGHTS, write=_writer([], fail=True))
    assert lake.read_manifest("norm-stats/x-v1") is None
    assert lake.list_keys("norm-stats") == []


def test_build_manifest_refuses_a_field_its_model_does_not_declare():
    with pytest.raises(ManifestError, match="unknown key 'num_frame'"):
        build_manifest(artifact_type="norm_stats", artifact_uri="file:///lake/norm-stats/x-v1", inputs=INPUTS,
                       config={}, rights=RIGHTS, extra={**NORM_EXTRA, "num_frame": 3})
    with pytest.raises(ManifestError, match="missing required field 'customers'"):
        build_manifest(artifact_type="norm_stats", artifact_uri="file:///lake/norm-stats/x-v1", inputs=INPUTS,
                       config={}, rights=RIGHTS, extra={k: v for k, v in NORM_EXTRA.items() if k != "customers"})


def test_readers_go_through_the_model(lake):
    publish_if_changed(lake, "norm-stats/x-v1", artifact_type="norm_stats", inputs=INPUTS, config={},
                       rights=RIGHTS, write=_writer([]))
    assert load_manifest(lake, "norm-stats/nothing") is None
    m = require_manifest(lake, "norm-stats/x-v1", NormStatsManifest)
    assert m.num_frames == 10 and m.rights_obj == RIGHTS
    with pytest.raises(ManifestError, match="is a norm_stats artifact, not a RoboDMCacheManifest"):
        require_manifest(lake, "norm-stats/x-v1", RoboDMCacheManifest)
    # a manifest edited by hand (or written by other code) is refused with the field named
    path = lake.path(f"norm-stats/x-v1/{MANIFEST_NAME}")
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "num_framez": 1}))
    with pytest.raises(ManifestError, match=r"norm-stats/x-v1: norm_stats manifest: unknown key 'num_framez'"):
        load_manifest(lake, "norm-stats/x-v1")
    path.write_text(json.dumps({**doc, "schema_version": 2}))
    with pytest.raises(ManifestError, match="schema_version 2 is not supported"):
        load_manifest(lake, "norm-stats/x-v1")
    path.write_text(json.dumps({**doc, "num_frames": "many"}))
    with pytest.raises(ManifestError, match="num_frames"):
        load_manifest(lake, "norm-stats/x-v1")


def test_every_artifact_type_has_a_model_and_unknown_types_are_refused():
    assert sorted(MANIFEST_MODELS) == ["checkpoint", "episodes_hdf5", "eval_report", "lerobot_dataset", "norm_stats",
                                       "raw_mcap_episode", "robodm_cache"]
    with pytest.raises(ManifestError, match="unknown artifact_type 'dataset'"):
        parse_manifest({"schema_version": 1, "artifact_type": "dataset"}, source="x")
