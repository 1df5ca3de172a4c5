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
INPUTS = [InputRef(key="lerobot/hvla/x/x-v1", sha256="a" * 64, kind="lerobot_dataset",
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
        build_manifest(artifact_type="norm_stats", artifact_key="norm-stats/x-v1", inputs=INPUTS,
                       config={}, rights=RIGHTS, extra={**NORM_EXTRA, "num_frame": 3})
    with pytest.raises(ManifestError, match="missing required field 'customers'"):
        build_manifest(artifact_type="norm_stats", artifact_key="norm-stats/x-v1", inputs=INPUTS,
                       config={}, rights=RIGHTS, extra={k: v for k, v in NORM_EXTRA.items() if k != "customers"})


def test_an_undefined_metric_is_written_as_null_so_the_manifest_stays_json():
    """The LDLJ of a command that never moves is NaN; Python's json would write ``NaN``, which orjson
    (the lineage index) refuses, so the partition silently dropped out of lineage."""
    m = build_manifest(artifact_type="episodes_hdf5", artifact_key="episodes-hdf5/2026-11-10/g1-001", inputs=INPUTS,
                       config={}, rights=RIGHTS,
                       extra={"capture_day": "2026-11-10", "robot_id": "g1-001", "skipped": [],
                              "conversions": [{"episode_id": "e1", "qa_metrics": {"ldlj": float("nan"),
                                                                                   "rms_jerk": 0.0,
                                                                                   "peak": float("inf")}}]})
    text = json.dumps(m, allow_nan=False)
    assert json.loads(text)["conversions"][0]["qa_metrics"] == {"ldlj": None, "rms_jerk": 0.0, "peak": None}


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
    path.write_text(json.dumps({**doc, "schema_version": 3}))
    with pytest.raises(ManifestError, match="schema_version 3 is not supported"):
        load_manifest(lake, "norm-stats/x-v1")
    path.write_text(json.dumps({**doc, "num_frames": "many"}))
    with pytest.raises(ManifestError, match="num_frames"):
        load_manifest(lake, "norm-stats/x-v1")


def test_every_artifact_type_has_a_model_and_unknown_types_are_refused():
    assert sorted(MANIFEST_MODELS) == ["checkpoint", "episodes_hdf5", "eval_report", "lerobot_dataset", "mixture_release",
                                       "norm_stats", "openpi_export", "raw_human_video_clip", "raw_mcap_episode",
                                       "raw_teleop_episode", "rlds_dataset", "robodm_cache", "rollout_checklist"]
    with pytest.raises(ManifestError, match="unknown artifact_type 'dataset'"):
        parse_manifest({"schema_version": 1, "artifact_type": "dataset"}, source="x")


# ---- relocatable: keys, not locations ---------------------------------------------------------------
def test_the_same_inputs_under_two_lake_paths_give_equal_fingerprints(tmp_path):
    a, b = LocalLake(tmp_path / "site-a" / "lake"), LocalLake(tmp_path / "elsewhere" / "deeper" / "lake")
    built = [publish_if_changed(lk, "norm-stats/x-v1", artifact_type="norm_stats", inputs=INPUTS,
                                config={"min_std": 1e-4}, rights=RIGHTS, write=_writer([])) for lk in (a, b)]
    assert [p.status for p in built] == ["materialized", "materialized"]
    assert built[0].manifest.fingerprint == built[1].manifest.fingerprint
    docs = [lk.path(f"norm-stats/x-v1/{MANIFEST_NAME}").read_text() for lk in (a, b)]
    assert str(tmp_path) not in docs[0] + docs[1] and "file://" not in docs[0] + docs[1]
    assert json.loads(docs[0])["artifact_key"] == "norm-stats/x-v1"
    assert json.loads(docs[0])["inputs"][0]["key"] == "lerobot/hvla/x/x-v1"
    # byte-equal but for the build time
    assert [{**json.loads(d), "created_at": "-"} for d in docs][0] == {**json.loads(docs[1]), "created_at": "-"}
    # the other lake's artifact is current here too: nothing is rebuilt
    again = publish_if_changed(b, "norm-stats/x-v1", artifact_type="norm_stats", inputs=INPUTS,
                               config={"min_std": 1e-4}, rights=RIGHTS, write=_writer([]))
    assert again.status == "cached" and again.uri == b.uri("norm-stats/x-v1")


def test_inputs_are_recorded_by_lake_key_never_by_uri_or_path():
    with pytest.raises(ValueError, match="is a URI; inputs are recorded by lake key"):
        InputRef(key="file:///home/me/.hvla/lake/norm-stats/x-v1", sha256="a" * 64, kind="norm_stats")
    with pytest.raises(ValueError, match="invalid lake key"):
        InputRef(key="/home/me/.hvla/lake/norm-stats/x-v1", sha256="a" * 64, kind="norm_stats")


def test_a_schema_version_1_manifest_is_read_through_keys_and_rebuilt_once(lake):
    """What the previous code wrote (URIs of the lake that built it, here another machine's)."""
    old_root = "file:///srv/old-machine/.hvla/lake"
    v1 = {"schema_version": 1, "artifact_type": "norm_stats", "artifact_uri": f"{old_root}/norm-stats/x-v1",
          "created_at": "2026-01-01T00:00:00+00:00", "code_version": "0.0.9", "config": {"min_std": 1e-4},
          "inputs": [{"uri": f"{old_root}/lerobot/hvla/x/x-v1", "sha256": "a" * 64, "kind": "lerobot_dataset",
                      "episode_ids": ["ep-1", "ep-2"]}],
          "episode_ids": ["ep-1", "ep-2"], "rights": RIGHTS.to_dict(), "fingerprint": "f" * 64,
          "files": [], **NORM_EXTRA}
    lake.write_json(f"norm-stats/x-v1/{MANIFEST_NAME}", v1)
    m = require_manifest(lake, "norm-stats/x-v1", NormStatsManifest)
    assert m.schema_version == 1 and m.artifact_key == "norm-stats/x-v1"
    assert [i.key for i in m.inputs] == ["lerobot/hvla/x/x-v1"]
    assert m.to_dict() == v1 and m.sha256() == manifest_sha256(v1)  # what consumers recorded still matches
    # read without its prefix, the key is cut from the URI by the type's layout
    assert parse_manifest(v1, source="x").artifact_key == "norm-stats/x-v1"
    # its fingerprint was computed over URIs: the next materialization rebuilds it as version 2
    calls: list[int] = []
    rebuilt = publish_if_changed(lake, "norm-stats/x-v1", artifact_type="norm_stats", inputs=INPUTS,
                                 config={"min_std": 1e-4}, rights=RIGHTS, write=_writer(calls))
    assert rebuilt.status == "materialized" and calls == [1]
    assert lake.read_manifest("norm-stats/x-v1")["schema_version"] == 2
