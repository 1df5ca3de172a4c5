"""Lineage from manifests on a real small lake built through Dagster (which also gives the event log).

Four recordings on two robots/days, two consents, one customer; the release holds ``ep-b-2``
out, so the checkpoint is trained on ``ep-a-1, ep-a-2, ep-b-1`` and the eval report evaluates
``ep-b-2``. One episode without rights is quarantined and must appear nowhere.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import orjson
import pytest

from hvla_platform.lib.lineage import graph as lin
from hvla_platform.lib.core.lake import MANIFEST_NAME, LocalLake
from hvla_platform.lib.lineage.shards import RACY_NS
from hvla_platform_tests.fixtures.recordings import default_rights, write_recording

RELEASE = "lin-v1"
EXP = "lin-exp"
CONFIG = "hvla_test"
STEPS = 20
TRAIN = ["ep-a-1", "ep-a-2", "ep-b-1"]
HELDOUT = ["ep-b-2"]
CKPT = f"checkpoints/{CONFIG}/{EXP}/{STEPS}"
EVAL = f"eval-reports/{EXP}/{STEPS}"
SPEC = f"""\
name: {RELEASE}
repo_id: hvla/lin
partitions: all
fps: 20
heldout: {{episode_ids: [ep-b-2]}}
"""


@functools.cache
def build_pipeline_lake() -> tuple[Path, Path]:
    """Build the small lake once per test session; returns ``(HVLA_HOME, DAGSTER_HOME)``.

    Environment variables are restored afterwards, so other tests are unaffected; the lake is at
    ``<HVLA_HOME>/lake``.
    """

    from hvla_platform.cli.ingest import land_folder
    from hvla_platform.cli.release import register_release_file
    from hvla_platform.cli.train import training_run_config
    from hvla_platform.cli.orchestration import add_partitions, ensure_dagster_home, instance, load_defs, run_job

    home = Path(tempfile.mkdtemp(prefix="hvla-lineage-"))
    with pytest.MonkeyPatch.context() as env:  # restored on the way out
        env.setenv("HVLA_HOME", str(home))
        for k in ("HVLA_LAKE_ROOT", "MLFLOW_TRACKING_URI", "HVLA_LAKE_BACKEND"):
            env.delenv(k, raising=False)
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        recs = home / "recs"
        ra, rb = default_rights(consent_refs=["consent-A"]), default_rights(consent_refs=["consent-B"])
        write_recording(recs / "a", episode_id="ep-a-1", robot_id="g1-001", seed=1, duration_s=3.0, rights=ra)
        write_recording(recs / "a", episode_id="ep-a-2", robot_id="g1-001", seed=2, duration_s=3.0, rights=ra)
        write_recording(recs / "b", episode_id="ep-b-1", robot_id="g1-002", capture_day="2026-11-11", seed=3,
                        duration_s=3.0, rights=rb)
        write_recording(recs / "b", episode_id="ep-b-2", robot_id="g1-002", capture_day="2026-11-11", seed=4,
                        duration_s=3.0, rights=rb)
        write_recording(recs / "b", episode_id="ep-b-bad", robot_id="g1-002", capture_day="2026-11-11", seed=5,
                        defect="no_rights")
        (home / "spec.yaml").write_text(SPEC)
        ensure_dagster_home()
        defs, inst = load_defs(), instance()
        for day, robot in land_folder(recs):
            o = run_job(defs, inst, "ingest_job", f"{day}|{robot}")
            assert o.success, o.error
        release = register_release_file(home / "spec.yaml")
        assert run_job(defs, inst, "release_job", release).success
        add_partitions(inst, "experiment", [EXP])
        cfg = training_run_config(release, steps=STEPS, seed=0, trials=1, config_name=CONFIG)
        cfg["ops"]["eval_report"]["config"]["max_steps"] = 5
        o = run_job(defs, inst, "training_job", EXP, run_config=cfg)
        assert o.success, o.error
        return home, home / "dagster"


@pytest.fixture(scope="module")
def built():
    return build_pipeline_lake()


@pytest.fixture()
def lake(built, tmp_path):
    """A private copy of the built lake (tests may write the index or edit manifests)."""
    dst = tmp_path / "lake"
    shutil.copytree(built[0] / "lake", dst, ignore=shutil.ignore_patterns(".hvla-tmp", "_index"))
    return LocalLake(dst)


def _raw_manifests(lake):
    return {m["episode_ids"][0]: (k, m) for k in lake.list_artifacts("raw-mcap") for m in [lake.read_manifest(k)]}


def test_upstream_of_checkpoint_reaches_exactly_the_train_episodes_with_their_sha256(lake):
    tree = lin.upstream(lake, CKPT)
    assert tree.type == "checkpoint" and tree.key == CKPT and tree.uri == lake.uri(CKPT)
    assert tree.code_version and tree.config["release"] == RELEASE and tree.config["steps"] == STEPS
    assert tree.rights["consent_refs"] == ["consent-A", "consent-B"]
    assert {c.type for c in tree.children} == {"robodm_cache", "norm_stats"}

    raws = tree.raw_episodes()
    assert [n.episode_ids for n in raws] == [[e] for e in TRAIN]
    manifests = _raw_manifests(lake)
    assert set(manifests) == set(TRAIN + HELDOUT)  # ep-b-bad never reached the raw layer
    for n in raws:
        key, m = manifests[n.episode_ids[0]]
        assert n.key == key
        mcap_key = f"{key}/{n.episode_ids[0]}_0.mcap"
        assert n.sha256 == m["mcap_sha256"] == lake.sha256(mcap_key)  # the file's real hash
        assert n.info["mcap_key"] == mcap_key and n.info["mcap_uri"] == lake.uri(mcap_key)  # key + display URI
        assert n.info["robot_id"] == m["robot_id"] and n.info["capture_day"] == m["capture_day"]
        assert n.info["operator"] == "op-test-01" and n.info["site"] == "test-lab"
        assert n.rights["licenses"] == ["proprietary"]
        assert n.rights["consent_refs"] == (["consent-A"] if n.episode_ids[0].startswith("ep-a") else ["consent-B"])
    # every step has its config/code version, every recorded input hash still matches
    for n in tree.walk():
        assert n.code_version, n.key
        if n is not tree:
            assert n.sha256_matches is True, n.key
            assert set(n.episode_ids) <= set(TRAIN), n.key
    chain = [n.type for n in tree.walk()]
    assert "lerobot_dataset" in chain and "episodes_hdf5" in chain
    assert any(n.repeated for n in tree.walk())  # the release under norm stats and under the cache

    text = lin.render_tree(tree)
    assert "ep-b-2" not in text and raws[0].sha256 in text and "config:" in text
    assert "= 3 raw episode(s) from 2 robot(s), 2 capture day(s)" in text
    d = json.loads(lin.to_json(tree))
    assert d["type"] == "checkpoint" and d["children"][0]["children"]


def test_upstream_of_eval_report_also_reaches_the_heldout_episode(lake):
    tree = lin.upstream(lake, lake.uri(EVAL))  # URI form
    assert [n.episode_ids[0] for n in tree.raw_episodes()] == sorted(TRAIN + HELDOUT)
    cache = next(c for c in tree.children if c.type == "robodm_cache")
    assert [n.episode_ids[0] for n in cache.raw_episodes()] == HELDOUT
    ck = next(c for c in tree.children if c.type == "checkpoint")
    assert [n.episode_ids[0] for n in ck.raw_episodes()] == TRAIN
    # a release and a norm-stats prefix work as targets too
    assert [n.episode_ids[0] for n in lin.upstream(lake, f"norm-stats/{RELEASE}").raw_episodes()] == TRAIN
    assert len(lin.upstream(lake, f"lerobot/hvla/lin/{RELEASE}").raw_episodes()) == 4


def test_downstream_of_episode_consent_customer(lake):
    hits = lin.downstream(lake, "ep-a-1")
    by = {h.type: h for h in hits}
    assert set(by) == {"raw_mcap_episode", "episodes_hdf5", "lerobot_dataset", "norm_stats", "robodm_cache",
                       "openpi_export", "checkpoint", "eval_report"}
    assert by["checkpoint"].key == CKPT and by["eval_report"].key == EVAL
    assert by["episodes_hdf5"].key == "episodes-hdf5/2026-11-10/g1-001"
    assert all(h.episode_ids == ["ep-a-1"] for h in hits)

    # the held-out episode: in the release, the cache, the openpi export (its held-out dataset) and the
    # eval report, not in norm stats or the checkpoint
    held = {h.type for h in lin.downstream(lake, "ep-b-2")}
    assert held == {"raw_mcap_episode", "episodes_hdf5", "lerobot_dataset", "robodm_cache", "openpi_export",
                    "eval_report"}
    # raw prefix / URI forms name the same episode
    raw_key = _raw_manifests(lake)["ep-b-2"][0]
    assert [h.key for h in lin.downstream(lake, raw_key)] == [h.key for h in lin.downstream(lake, lake.uri(raw_key))] \
        == [h.key for h in lin.downstream(lake, "ep-b-2")]

    consent_b = lin.downstream(lake, "consent:consent-B")
    assert sorted(h.episode_ids[0] for h in consent_b if h.type == "raw_mcap_episode") == ["ep-b-1", "ep-b-2"]
    ck = next(h for h in consent_b if h.type == "checkpoint")
    assert ck.episode_ids == ["ep-b-1"]
    assert {h.type for h in consent_b if h.type != "raw_mcap_episode"} == {
        "episodes_hdf5", "lerobot_dataset", "norm_stats", "robodm_cache", "openpi_export", "checkpoint", "eval_report"}
    consent_a = lin.downstream(lake, "consent:consent-A", include_raw=False)
    assert next(h for h in consent_a if h.type == "eval_report").episode_ids == ["ep-a-1", "ep-a-2"]
    # an unknown consent is an error naming the closest known one, not an empty answer
    with pytest.raises(lin.LineageError, match=r"no episode carries consent 'consent-Z' in this lake \(did you mean"):
        lin.downstream(lake, "consent:consent-Z")

    # one customer (a release may not mix customers without a grant): everything is downstream of it
    internal = lin.downstream(lake, "customer:internal")
    assert len(internal) == 12
    assert next(h for h in internal if h.type == "checkpoint").episode_ids == TRAIN
    assert next(h for h in internal if h.type == "eval_report").episode_ids == sorted(TRAIN + HELDOUT)
    with pytest.raises(lin.LineageError, match=r"customer 'internl' in this lake \(did you mean 'internal'\?\)"):
        lin.downstream(lake, "customer:internl")
    assert "norm_stats" in lin.render_hits("customer:internal", internal)


def test_errors_name_what_was_looked_for(lake):
    with pytest.raises(lin.LineageError, match="checkpoints/nope"):
        lin.upstream(lake, "checkpoints/nope/x/1")
    with pytest.raises(lin.LineageError, match="not a raw episode"):
        lin.downstream(lake, CKPT)
    with pytest.raises(lin.LineageError, match="ep-zzz"):
        lin.downstream(lake, "ep-zzz")


def test_copied_lake_answers_the_same_from_its_own_location(built, lake, tmp_path):
    original = LocalLake(built[0] / "lake")
    copy = lake  # already a copy; copy it once more to a differently named place (index included)
    lin.load_index(copy)
    dst = tmp_path / "elsewhere" / "copied"
    shutil.copytree(copy.root, dst)
    moved = LocalLake(dst)
    t_copy = lin.upstream(moved, CKPT)
    assert t_copy.uri == moved.uri(CKPT) and "recorded_uri" not in t_copy.to_dict()  # manifests hold keys only
    # the same answer as the original's, but for the display URIs computed from each lake
    assert lin.to_json(t_copy).replace(moved.root_uri(), "<root>") == \
        lin.to_json(lin.upstream(original, CKPT)).replace(original.root_uri(), "<root>")
    assert [(n.key, n.sha256) for n in t_copy.raw_episodes()] == \
        [(n.key, n.sha256) for n in lin.upstream(copy, CKPT).raw_episodes()]
    assert all(n.info["mcap_uri"].startswith(moved.root_uri()) for n in t_copy.raw_episodes())
    assert all(n.sha256_matches for n in t_copy.walk() if n is not t_copy)
    # the original lake's URI also finds the artifact in the copy
    assert lin.upstream(moved, original.uri(EVAL)).key == EVAL
    assert [h.key for h in lin.downstream(moved, "consent:consent-A")] == \
        [h.key for h in lin.downstream(copy, "consent:consent-A")]


def _answers(lake, index=None) -> str:
    """Every answer the tests above check, as one JSON text with the lake's root URI taken out."""
    idx = index or lin.load_index(lake, persist=False)
    out = {"up": [lin.upstream(lake, k, index=idx) for k in (CKPT, EVAL)],
           "down": [lin.downstream(lake, q, index=idx) for q in ("ep-a-1", "ep-b-2", "consent:consent-B",
                                                                 "customer:internal")]}
    return lin.to_json(out).replace(lake.root_uri(), "<root>")


@pytest.fixture()
def read_spy(monkeypatch):
    """The artifact keys whose manifests ``load_index`` reads, call by call."""
    from hvla_platform.lib.lineage import index as index_mod

    calls: list[list[str]] = []
    real = index_mod.read_records

    def spy(lake, keys):
        keys = sorted(keys)
        calls.append(keys)
        return real(lake, keys)

    monkeypatch.setattr(index_mod, "read_records", spy)
    return calls


def _rewrite(path, manifest) -> None:
    """Rewrite a manifest in place, then wait out the racy window: a manifest stamped within
    ``RACY_NS`` of its shard's build is re-read once more by the next load (``lineage.shards``)."""
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    time.sleep(2 * RACY_NS / 1e9)


def _shard_files(lake) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in lin.index_path(lake).iterdir()}


def test_index_is_sharded_persisted_in_the_lake_and_rebuilt_incrementally(lake, read_spy):
    expected = _answers(lake)  # without any index
    first = lin.load_index(lake)
    n = first.stats["manifests"]
    assert n == 4 + 2 + 1 + 1 + 1 + 1 + 1 + 1 and first.stats["read"] == n and first.stats["persisted"]
    # one shard per key group, as objects of the lake itself (listed by the Lake API)
    shards = {lin.shard_of(k) for k in first.records}
    assert first.stats["shards"] == len(shards) == first.stats["shards_written"]
    assert {k for k in lake.list_keys(lin.INDEX_PREFIX)} == {lin.shard_key(s) for s in shards}
    assert "raw-mcap/2026-11-10" in shards and "episodes-hdf5/2026-11-10" in shards
    assert _answers(lake, first) == expected

    lin._MEMO.clear()  # force re-reading the shards as a new process would
    again = lin.load_index(lake)
    assert again.stats["read"] == 0 and again.stats["reused"] == n and not again.stats["persisted"]
    assert {k: r.manifest_sha256 for k, r in again.records.items()} == \
        {k: r.manifest_sha256 for k, r in first.records.items()}
    assert read_spy[-1] == []

    # one partition's raw episode re-materialized (its manifest rewritten): only that manifest is
    # re-read and only its shard rewritten
    raw_key = _raw_manifests(lake)["ep-a-1"][0]
    before = _shard_files(lake)
    mpath = lake.path(f"{raw_key}/{MANIFEST_NAME}")
    m = json.loads(mpath.read_text())
    m["operator"] = "op-test-99"
    _rewrite(mpath, m)
    third = lin.load_index(lake)
    assert read_spy[-1] == [raw_key]
    assert third.stats["read"] == 1 and third.stats["reused"] == n - 1 and third.stats["shards_written"] == 1
    after = _shard_files(lake)
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {lin.shard_key(lin.shard_of(raw_key)).rsplit("/", 1)[1]}
    leaf = next(x for x in lin.upstream(lake, CKPT, index=third).raw_episodes() if x.episode_ids == ["ep-a-1"])
    assert leaf.info["operator"] == "op-test-99"

    # re-materialize the checkpoint: the eval report's recorded hash no longer matches
    mpath = lake.path(f"{CKPT}/{MANIFEST_NAME}")
    m = json.loads(mpath.read_text())
    m["final_loss"] = 123.0
    _rewrite(mpath, m)
    fourth = lin.load_index(lake)
    assert read_spy[-1] == [CKPT] and fourth.stats["read"] == 1
    ck = next(c for c in lin.upstream(lake, EVAL, index=fourth).children if c.type == "checkpoint")
    assert ck.sha256_matches is False and "CHANGED" in lin.render_tree(lin.upstream(lake, EVAL, index=fourth))

    # an artifact removed from the lake disappears from the index (its shard is deleted); its
    # input shows up as missing
    shutil.rmtree(lake.path(f"robodm-cache/{RELEASE}"))
    fifth = lin.load_index(lake)
    assert fifth.stats["dropped"] == 1 and read_spy[-1] == []
    assert not lake.exists(lin.shard_key("robodm-cache"))
    tree = lin.upstream(lake, CKPT, index=fifth)
    assert {c.type for c in tree.children} == {"norm_stats", "missing"}
    assert lin.load_index(lake, verify=True).stats["read"] == 0  # verify: all hashes agree with the index


def test_stale_or_corrupt_shard_is_detected_and_rebuilt(lake, read_spy):
    lin.load_index(lake)
    raw_key = _raw_manifests(lake)["ep-b-1"][0]
    shard = lin.index_path(lake, lin.shard_of(raw_key))
    old_shard = shard.read_bytes()

    # stale: the shard from before a manifest changed is put back; it never answers for the new manifest
    mpath = lake.path(f"{raw_key}/{MANIFEST_NAME}")
    m = json.loads(mpath.read_text())
    m["site"] = "moved-lab"
    _rewrite(mpath, m)
    lin.load_index(lake)
    shard.write_bytes(old_shard)
    lin._MEMO.clear()
    idx = lin.load_index(lake)
    assert read_spy[-1] == [raw_key] and idx.stats["read"] == 1
    assert idx.records[raw_key].info["site"] == "moved-lab"
    assert lin.downstream(lake, "ep-b-1", index=idx)[0].info["site"] == "moved-lab"
    expected = _answers(lake)

    # corrupt: cut short, or valid JSON that is not a shard: its manifests are re-read, the rest reused
    n_shard = sum(1 for k in idx.records if lin.shard_of(k) == lin.shard_of(raw_key))
    for bad in (shard.read_bytes()[:100], b'{"format": 4}'):
        shard.write_bytes(bad)
        lin._MEMO.clear()
        idx = lin.load_index(lake)
        assert idx.stats["read"] == n_shard == len(read_spy[-1]) and idx.stats["reused"] == idx.stats["manifests"] - n_shard
        assert "rejected_index" not in idx.stats  # not a table at all: nothing to report but the rebuild
        assert _answers(lake, idx) == expected

    # a shard whose bytes no longer match their checksum is checked in full; a bad column is
    # refused with the reason, and the shard rebuilt
    raw = shard.read_bytes()
    shard.write_bytes(raw.replace(b'"moved-lab"', b'"moved-lab2"', 1))  # still a valid table: accepted
    lin._MEMO.clear()
    assert lin.load_index(lake).stats["read"] == 0
    doc = json.loads(raw)
    next(iter(doc["doc"]["entries"].values()))[3] = "not-a-sha"
    shard.write_text(json.dumps(doc))
    lin._MEMO.clear()
    idx = lin.load_index(lake)
    assert "column 'manifest_sha256'" in idx.stats["rejected_index"] and idx.stats["read"] == n_shard
    assert _answers(lake, idx) == expected


@pytest.mark.s3
def test_s3_lake_gets_a_persisted_sharded_index_with_the_same_answers(lake, s3_client, read_spy):
    """The lake's manifests on a real S3 server (SeaweedFS): the index is persisted there, reused by
    the next reader, validated by ETag, and answers exactly as the local lake does."""
    import uuid

    from hvla_platform.lib.core.lake import S3Lake

    s3 = S3Lake(f"lineage-{uuid.uuid4().hex[:10]}", s3_client, prefix="lake")
    for p in sorted(lake.root.rglob(MANIFEST_NAME)):
        s3.put_file(p, p.relative_to(lake.root).as_posix())
    expected = _answers(lake)
    first = lin.load_index(s3)
    assert first.stats["read"] == first.stats["manifests"] == 12 and first.stats["persisted"]
    assert set(s3.list_keys(lin.INDEX_PREFIX)) == {lin.shard_key(lin.shard_of(k)) for k in first.records}
    assert _answers(s3, first) == expected

    lin._MEMO.clear()  # another process (or machine) reading the same bucket
    again = lin.load_index(s3)
    assert again.stats["read"] == 0 and again.stats["reused"] == 12 and read_spy[-1] == []
    # a manifest rewritten on S3 (new ETag): only it is re-read
    m = s3.read_manifest(CKPT)
    m["final_loss"] = 7.0
    s3.write_json(s3.manifest_key(CKPT), m)
    third = lin.load_index(s3)
    assert read_spy[-1] == [CKPT] and third.stats["read"] == 1 and third.stats["shards_written"] == 1
    assert next(c for c in lin.upstream(s3, EVAL, index=third).children
                if c.type == "checkpoint").sha256_matches is False


def test_answers_agree_with_the_dagster_event_log(built, lake):
    import dagster as dg

    from hvla_platform_tests.lib.lineage.dagster_events import check_event_log_agreement
    from hvla_platform.lib.lineage.graph import DownstreamHit

    original = LocalLake(built[0] / "lake")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAGSTER_HOME", str(built[1]))
        with dg.DagsterInstance.get() as inst:
            up = check_event_log_agreement(inst, lin.upstream(original, EVAL))
            assert up.ok, up.summary()
            assert up.checked == 4 + 2 + 1 + 1 + 1 + 1 + 1
            assert up.matched[CKPT] == original.uri(CKPT)
            assert up.matched["episodes-hdf5/2026-11-10/g1-001"] == original.uri("episodes-hdf5/2026-11-10/g1-001")
            down = check_event_log_agreement(inst, lin.downstream(original, "consent:consent-B"))
            assert down.ok, down.summary()
            # the copied lake's answer (other URIs) is checked through the recorded URIs
            assert check_event_log_agreement(inst, lin.upstream(lake, CKPT)).ok
            # an artifact Dagster never materialized is reported
            fake = DownstreamHit(type="checkpoint", key=f"checkpoints/{CONFIG}/other/1",
                                 uri=original.uri(f"checkpoints/{CONFIG}/other/1"), episode_ids=["ep-a-1"], sha256="0",
                                 code_version="x", info={})
            bad = check_event_log_agreement(inst, lin.downstream(original, "ep-a-1") + [fake])
            assert not bad.ok and [m.key for m in bad.mismatches] == [fake.key]
            assert original.uri(CKPT) in bad.mismatches[0].event_uris and "disagrees" in bad.summary()


def test_episode_id_lists_are_stored_once_per_shard_and_checked(lake):
    expected = _answers(lake)
    lin.load_index(lake)
    shard = lin.index_path(lake, lin.shard_of(CKPT))
    doc = json.loads(shard.read_bytes())["doc"]
    table, (ck_row,) = doc["table"], [v for k, v in doc["entries"].items() if k == CKPT]
    lists = [t for t in table if isinstance(t, list)]
    assert len({tuple(t) for t in lists}) == len(lists)  # each distinct list once
    # the checkpoint and every one of its input edges (cache, norm stats) name the train list by position
    ids_at = ck_row[7]
    assert sorted(table[ids_at]) == TRAIN and len(ck_row[10]) == 2
    assert [e[4] for e in ck_row[10]] == [ids_at, ids_at]
    manifest = lake.read_manifest(CKPT)
    assert [sorted(i["episode_ids"]) for i in manifest["inputs"]] == [TRAIN, TRAIN]
    rec = lin.load_index(lake).records[CKPT]
    assert rec.episode_ids == manifest["episode_ids"] and [e.episode_ids for e in rec.inputs] == \
        [i["episode_ids"] for i in manifest["inputs"]]

    # a position that does not hold a list of episode ids (here: the config dict) is refused on
    # reading, the shard is rebuilt and the answers stay the same
    whole = json.loads(shard.read_bytes())
    row = whole["doc"]["entries"][CKPT]
    row[10][0][4] = row[5]
    shard.write_text(json.dumps(whole))
    lin._MEMO.clear()
    idx = lin.load_index(lake)
    assert "column 'inputs'" in idx.stats["rejected_index"] and CKPT in idx.stats["rejected_index"]
    assert idx.stats["read"] == sum(1 for k in idx.records if lin.shard_of(k) == lin.shard_of(CKPT))
    assert _answers(lake, idx) == expected

    # a shard whose CRC matches but whose entries are in another layout of the same format number
    # (episode ids inline, as a development build wrote them) is not used either: rebuilt, same answers
    whole = json.loads(shard.read_bytes())
    table = whole["doc"]["table"]
    for row in whole["doc"]["entries"].values():
        row[7] = table[row[7]]
    body = orjson.dumps(whole["doc"])
    shard.write_bytes(b'{"format":%d,"crc32":"%08x","doc":%s}' % (whole["format"], zlib.crc32(body), body))
    lin._MEMO.clear()
    idx = lin.load_index(lake)
    assert idx.stats["read"] == len(whole["doc"]["entries"]) and "rejected_index" not in idx.stats
    assert _answers(lake, idx) == expected
    assert isinstance(json.loads(shard.read_bytes())["doc"]["entries"][CKPT][7], int)  # rewritten in this layout
