"""Bad input gets a clear error and loses nothing.

One partition is landed with a good episode and, beside it, one episode per kind of bad input
(real files: our recordings damaged by :mod:`hvla_platform_tests.fixtures.bad_mcap`, and ROS 2 bags
written by rosbag2). It is ingested twice and converted once. Each test then checks, for its case:

1. the reason names the file and says what is wrong;
2. the rest of the partition still went through (the good episodes are published and converted);
3. nothing in the source folders, the landing layer or the raw layer was modified or deleted;
4. the bad episode has a ``quarantine/.../reason.json`` with the reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
import yaml
from mcap.reader import make_reader

from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform.lib.ingest.landing import find_recordings, land_recording
from hvla_platform.lib.core.keys import UnsafeIdError
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.processing.build import convert_partition
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.index import MAX_RECORD_BYTES, index_mcap
from hvla_platform.lib.formats.recording.contract import CAMERA_TOPICS, REQUIRED_TOPICS
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.fixtures import bad_mcap as bad
from hvla_platform_tests.fixtures.recordings import write_recording
from hvla_platform_tests.paths import TESTDATA

DAY, ROBOT = "2026-11-10", "g1-001"
ROSBAG = TESTDATA / "rosbag2"
HEAD, WRIST = CAMERA_TOPICS["head"], CAMERA_TOPICS["wrist_right"]
HUGE = 70_000_000  # one camera frame of ~67 MiB, above MAX_RECORD_BYTES

# episode id -> how its MCAP is made from the good one (None: a third-party bag, see below)
DAMAGED = {
    "ep-trunc-chunk": lambda m: bad.truncate_in_chunk(m),
    "ep-trunc-summary": lambda m: bad.truncate_in_summary(m),
    "ep-flipped": lambda m: bad.flip_byte_in_zstd_chunk(m),
    "ep-nosummary": lambda m: bad.rewrite(m, m, summary=False),
    "ep-empty-topic": lambda m: bad.rewrite(m, m, transform=bad.drop_messages(WRIST)),
    "ep-stamp-back": lambda m: bad.rewrite(m, m, transform=bad.stamp_backwards(HEAD, 10, 200_000_000)),
    "ep-huge-chunk": lambda m: bad.rewrite(m, m, transform=bad.add_huge_frame(HEAD, 5, HUGE)),
    "ep-huge-record": lambda m: bad.rewrite(m, m, chunked=False, transform=bad.add_huge_frame(HEAD, 5, HUGE)),
}
BAGS = {"ep-services": ROSBAG / "topics_and_services.mcap", "ep-talker": ROSBAG / "talker" / "talker.mcap"}
BAD_RIGHTS = {"allowed_uses": 5, "retention_until": "soon", "contains_human_video": "no"}
# landing rejects: folder name -> (metadata edit, expected words in the reason)
LONG_ID = "e" * 300
REJECTED = {
    "rej-dotdot": ({"episode_id": "../../etc/passwd"}, ["episode id", "path separator '/'"]),
    "rej-absolute": ({"episode_id": "/abs/ep-1"}, ["episode id", "path separator '/' at position 0"]),
    "rej-lookalike": ({"episode_id": "\u0435p-0001"}, ["U+0435 (CYRILLIC SMALL LETTER IE) at position 0"]),
    "rej-rtl": ({"episode_id": "ep-\u202e1000"}, ["U+202E (RIGHT-TO-LEFT OVERRIDE) at position 3"]),
    "rej-nul": ({"episode_id": "ep-\x00"}, ["'\\x00' at position 3"]),
    "rej-newline": ({"episode_id": "ep-0001\n"}, ["'\\n' at position 7"]),
    "rej-long": ({"episode_id": LONG_ID}, ["300 characters, more than 128"]),
    "rej-robot-escape": ({"robot": {"id": "../g1-001", "model": "unitree_g1"}}, ["robot id", "path separator"]),
    "rej-robot-abs": ({"robot": {"id": "/g1-001", "model": "unitree_g1"}}, ["robot id", "path separator"]),
    "rej-date-text": ({"capture_date": "yesterday"}, ["capture date 'yesterday' is not an ISO date"]),
    "rej-date-invalid": ({"capture_date": "2026-02-30"}, ["not a valid calendar date"]),
    "rej-date-timestamp": ({"capture_date": dt.datetime(2026, 11, 10, 9, 0)}, ["is a timestamp, not a date"]),
    "rej-date-number": ({"capture_date": 20261110}, ["capture date 20261110 is not an ISO date"]),
}
RAW_METADATA = {  # folder -> (metadata.yaml text, expected words)
    "rej-yaml-invalid": ("episode_id: [ep-1\nrobot: {id: g1-001\n", ["cannot read metadata.yaml: ParserError", "line 2, column 6"]),
    "rej-yaml-list": ("- episode_id\n- ep-1\n", ["must be a mapping, it holds a list"]),
    "rej-yaml-scalar": ("just a sentence\n", ["must be a mapping, it holds a str"]),
}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _snapshot(lake: LocalLake, *layers: str) -> dict[str, str]:
    """sha256 of every object of ``layers``; ``_partition.json`` is the mutable partition index."""
    return {k: lake.sha256(k) for layer in layers for k in lake.list_keys(layer) if not k.endswith("/_partition.json")}


def _variant(src: Path, good: Path, name: str, meta_edit: dict | None = None) -> Path:
    folder = src / name
    shutil.copytree(good, folder)
    mcap = bad.only_mcap(folder)
    mcap = mcap.rename(folder / f"{name}_0.mcap")
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    meta["episode_id"] = name
    meta.update(meta_edit or {})
    (folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=False))
    return folder


@pytest.fixture(scope="module")
def sc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad-input")
    src, lake = tmp / "src", LocalLake(tmp / "lake")
    good = write_recording(src, episode_id="ep-good", seed=1)
    folders = {"ep-good": good, "ep-missing-topic": write_recording(src, episode_id="ep-missing-topic", seed=3,
                                                                    defect="missing_topic")}
    for name, damage in DAMAGED.items():
        folders[name] = _variant(src, good, name)
        damage(bad.only_mcap(folders[name]))
    for name, bag in BAGS.items():
        folders[name] = _variant(src, good, name)
        bad.only_mcap(folders[name]).unlink()
        shutil.copy(bag, folders[name] / bag.name)
    folders["ep-bad-rights"] = _variant(src, good, "ep-bad-rights", {"rights": {
        **yaml.safe_load((good / "metadata.yaml").read_text())["rights"], **BAD_RIGHTS}})
    for name, (edit, _) in REJECTED.items():
        folders[name] = _variant(src, good, name, edit)
    for name, (text, _) in RAW_METADATA.items():
        folders[name] = _variant(src, good, name)
        (folders[name] / "metadata.yaml").write_text(text)
    folders["rej-no-metadata"] = _variant(src, good, "rej-no-metadata")
    (folders["rej-no-metadata"] / "metadata.yaml").unlink()
    (folders["rej-no-metadata"] / "operator_notes.md").unlink()  # an MCAP alone in its folder

    source_before = {p: _sha(p) for p in src.rglob("*") if p.is_file()}
    assert set(find_recordings(src)) == set(folders.values())  # the MCAP without metadata is not skipped
    landed = {Path(r.source).name: r for r in (land_recording(lake, f) for f in find_recordings(src))}
    landing_before = _snapshot(lake, "landing")
    first = ingest_partition(lake, DAY, ROBOT)
    raw_before = _snapshot(lake, "landing", "raw-mcap")
    second = ingest_partition(lake, DAY, ROBOT)
    conv = convert_partition(lake, DAY, ROBOT, SyncConfig(fps=20))
    return {
        "lake": lake, "src": src, "folders": folders, "landed": landed, "first": first, "second": second,
        "conv": conv, "source_before": source_before, "landing_before": landing_before, "raw_before": raw_before,
        "by": {e.episode_id: e for e in first.episodes},
    }


def _went_through_and_nothing_lost(sc) -> None:
    """(2) and (3): the good episodes are converted; sources, landing and raw objects are unchanged."""
    lake = sc["lake"]
    assert sorted(e.episode_id for e in sc["conv"].converted) == ["ep-good", "ep-nosummary"]
    assert sc["conv"].status == "materialized"
    for ep in ("ep-good", "ep-nosummary"):
        assert lake.read_manifest(f"raw-mcap/{DAY}/{ROBOT}/{ep}") is not None
    assert {p: _sha(p) for p in sc["src"].rglob("*") if p.is_file()} == sc["source_before"]
    after = _snapshot(lake, "landing", "raw-mcap")
    assert {k: v for k, v in after.items() if k.startswith("landing/")} == sc["landing_before"]
    assert {k: after.get(k) for k in sc["raw_before"]} == sc["raw_before"]  # nothing modified or deleted
    # every landed object is a byte-identical copy of its source file
    for name, res in sc["landed"].items():
        if res.status == "landed":
            for p in sc["folders"][name].iterdir():
                assert lake.sha256(f"landing/{DAY}/{ROBOT}/{res.episode_id}/{p.name}") == _sha(p)


def _quarantined(sc, ep: str, *words: str, published: bool) -> str:
    """(1) and (4): the episode's reason.json holds a reason naming its file and ``words``."""
    lake, out = sc["lake"], sc["by"][ep]
    assert not out.convertible
    reason = lake.read_json(f"quarantine/{DAY}/{ROBOT}/{ep}/reason.json")
    text = "; ".join(reason["reasons"])
    assert reason["reasons"] == out.reasons
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"
    assert ep in text or Path(BAGS.get(ep, "")).name in text  # the reason names the file
    assert (lake.read_manifest(f"raw-mcap/{DAY}/{ROBOT}/{ep}") is not None) == published
    files = lake.list_keys(f"quarantine/{DAY}/{ROBOT}/{ep}/files")
    if published:
        assert files == []  # the raw copy is the evidence
    else:  # not in raw: its landed files are kept, byte-identical, in quarantine
        assert sorted(k.rsplit("/", 1)[1] for k in files) == sorted(p.name for p in sc["folders"][ep].iterdir())
        for k in files:
            assert lake.sha256(k) == lake.sha256(f"landing/{DAY}/{ROBOT}/{ep}/{k.rsplit('/', 1)[1]}")
    assert ep in {s["episode_id"] for s in sc["conv"].skipped}
    return text


def _rejected(sc, name: str, *words: str) -> dict:
    """Landing rejects: reason names the file, a ``quarantine/_rejected/.../reason.json`` exists, nothing landed."""
    lake, res, folder = sc["lake"], sc["landed"][name], sc["folders"][name]
    assert res.status == "rejected"
    for w in words:
        assert w in res.reason, f"{w!r} not in {res.reason!r}"
    assert str(folder) in res.reason
    reasons = [lake.read_json(k) for k in lake.list_keys("quarantine/_rejected") if k.endswith("/reason.json")]
    (mine,) = [r for r in reasons if r["source"] == str(folder)]
    assert mine["reason"] == res.reason and mine["stage"] == "landing"
    landed_eps = {k.split("/")[3] for k in lake.list_keys("landing")}
    assert landed_eps == {r.episode_id for r in sc["landed"].values() if r.status == "landed"}
    assert name not in landed_eps
    _went_through_and_nothing_lost(sc)
    return mine


# ---- 1. truncated ----------------------------------------------------------------------------
def test_truncated_in_a_chunk(sc):
    text = _quarantined(sc, "ep-trunc-chunk", "readable: ep-trunc-chunk_0.mcap: unreadable: truncated: Chunk record",
                        "file ends", published=False)
    assert "required_topics: not checked" in text
    _went_through_and_nothing_lost(sc)


def test_truncated_in_the_summary(sc):
    _quarantined(sc, "ep-trunc-summary", "ep-trunc-summary_0.mcap: unreadable: truncated", published=False)
    _went_through_and_nothing_lost(sc)


# ---- 2. flipped byte in a compressed chunk --------------------------------------------------
def test_flipped_byte_in_a_zstd_chunk_is_caught_by_the_chunk_crc(sc):
    path = bad.only_mcap(sc["folders"]["ep-flipped"])
    # the premise: mcap's reader with its defaults reads the damaged chunk as good data
    with open(path, "rb") as f:
        assert sum(1 for _ in make_reader(f).iter_messages()) == sc["by"]["ep-good"].index["message_count"]
    _quarantined(sc, "ep-flipped", "ep-flipped_0.mcap: unreadable: CRC mismatch in Chunk", "content is corrupt",
                 published=False)
    _went_through_and_nothing_lost(sc)


# ---- 3. no summary, no index: read by scanning -------------------------------------------------
def test_file_without_summary_is_read_by_scanning_and_converted(sc):
    path = bad.only_mcap(sc["folders"]["ep-nosummary"])
    with open(path, "rb") as f:
        assert make_reader(f).get_summary() is None  # really no summary section
    out = sc["by"]["ep-nosummary"]
    assert out.convertible and out.status == "published"
    assert "no summary: read by scanning" in out.checks["readable"]["detail"]
    assert out.index["message_count"] == sc["by"]["ep-good"].index["message_count"]
    assert not sc["lake"].exists(f"quarantine/{DAY}/{ROBOT}/ep-nosummary/reason.json")
    _went_through_and_nothing_lost(sc)


# ---- 4. third-party bags with other topics and odd schemas -------------------------------------
@pytest.mark.parametrize("ep", sorted(BAGS))
def test_rosbag2_files_are_indexed_and_reported_as_missing_required_topics(sc, ep):
    out = sc["by"][ep]
    assert out.checks["readable"]["passed"], out.checks["readable"]
    missing = [f"missing {t}" for t in REQUIRED_TOPICS]
    _quarantined(sc, ep, f"required_topics: {BAGS[ep].name}: ", *missing, published=True)
    if ep == "ep-services":  # service-event schemas ("---" in the text) are indexed, not skipped
        assert out.index["topics"]["/add_two_ints/_service_event"]["schema_name"] == "example_interfaces/srv/AddTwoInts_Event"
    _went_through_and_nothing_lost(sc)


# ---- 5. missing and empty required topics ------------------------------------------------------
def test_missing_required_topic(sc):
    _quarantined(sc, "ep-missing-topic", f"required_topics: ep-missing-topic_0.mcap: missing {WRIST}", published=True)
    _went_through_and_nothing_lost(sc)


def test_empty_required_topic(sc):
    assert sc["by"]["ep-empty-topic"].index["topics"][WRIST]["message_count"] == 0
    text = _quarantined(sc, "ep-empty-topic", f"ep-empty-topic_0.mcap: {WRIST} is empty (channel registered, 0 messages)",
                        published=True)
    assert "missing" not in text
    _went_through_and_nothing_lost(sc)


# ---- 6. header stamps going backwards ----------------------------------------------------------
def test_header_stamps_going_backwards(sc):
    _quarantined(sc, "ep-stamp-back", f"monotonic: ep-stamp-back_0.mcap: {HEAD}: 0 log-time and 1 header-stamp step(s) "
                                      "backwards (first at message 10 of the topic)", published=True)
    _went_through_and_nothing_lost(sc)


# ---- 7. an enormous single message --------------------------------------------------------------
@pytest.mark.parametrize("ep,what", [("ep-huge-chunk", "Chunk at byte"), ("ep-huge-record", "Message record at byte")])
def test_enormous_message_is_refused_cleanly(sc, ep, what):
    _quarantined(sc, ep, f"readable: {ep}_0.mcap: too_large: {what}", f"{MAX_RECORD_BYTES}-byte record limit",
                 published=False)
    _went_through_and_nothing_lost(sc)
    # the frame is never loaded: indexing allocates a small fraction of it
    tracemalloc.start()
    try:
        with pytest.raises(RawLogError) as err:
            index_mcap(bad.only_mcap(sc["folders"][ep]))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.reason == "too_large"
    assert peak < HUGE // 8, f"indexing allocated {peak} bytes"


# ---- 8. metadata.yaml missing or malformed ------------------------------------------------------
def test_mcap_without_metadata_is_rejected_not_skipped(sc):
    mine = _rejected(sc, "rej-no-metadata", "no metadata.yaml beside ['rej-no-metadata_0.mcap']")
    assert mine["files"] == ["rej-no-metadata_0.mcap"]


@pytest.mark.parametrize("name", sorted(RAW_METADATA))
def test_malformed_metadata_is_rejected(sc, name):
    _rejected(sc, name, "metadata.yaml", *RAW_METADATA[name][1])


def test_rights_block_with_wrong_types_is_not_published(sc):
    text = _quarantined(sc, "ep-bad-rights", "rights: metadata.yaml: 'allowed_uses' must be a string or a list of strings, "
                                             "got 5", published=False)
    assert "readable: " not in text  # the MCAP itself is fine
    _went_through_and_nothing_lost(sc)


# ---- 9. ids and dates that are unsafe --------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REJECTED))
def test_unsafe_ids_and_bad_dates_are_rejected_at_landing(sc, name):
    mine = _rejected(sc, name, "metadata.yaml", *REJECTED[name][1])
    assert len(mine["reason"]) < 600  # a 300-character id is shown cut, not in full
    assert not (sc["lake"].root.parent / "etc").exists()


def test_ingest_refuses_unsafe_partition_keys(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    for day, robot in [("../2026-11-10", ROBOT), (DAY, "../g1-001"), (DAY, "g1-001\n"), ("2026-11-10T00:00", ROBOT)]:
        with pytest.raises(UnsafeIdError):
            ingest_partition(lake, day, robot)
    assert lake.list_keys("") == []


# ---- the scanning reader on the MCAP conformance suite ---------------------------------------------
def test_scanning_reader_reads_every_conformance_file():
    cases = sorted((TESTDATA / "mcap-conformance").rglob("*.mcap"))
    assert len(cases) == 416
    for case in cases:
        records = json.loads(case.with_suffix(".json").read_text())["records"]
        idx = index_mcap(case)
        assert idx.message_count == sum(r["type"] == "Message" for r in records), case.name
        topics = {dict(r["fields"])["topic"] for r in records if r["type"] == "Channel"}
        assert set(idx.topics) == topics, case.name
