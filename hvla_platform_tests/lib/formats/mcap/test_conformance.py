"""The MCAP conformance suite (foxglove/mcap tests/conformance) against our two ways of reading MCAP.

Both readers are production code on the one strict framing core (``rawlog/framing.py``):

* streamed: ``iter_records`` (``framing.LinearScan``, the scan ingest's ``McapScan``/``index_mcap``
  is built on), MessageIndex records left out, serialized with ``record_to_conformance_json``,
  must equal the case's ``.json`` "records" exactly.
* indexed: ``indexed_view`` (``read_summary_view`` + ``iter_indexed_messages``, the reader
  conversion's ``read_episode_streams`` uses) must equal what upstream's indexed runners derive from the same "records": schemas and
  channels deduplicated by id (first occurrence) and sorted by id, messages stably sorted by log
  time, and the Statistics records.

All 416 cases must pass in both modes, including the 112 chunk-indexed files whose summary does
not repeat their schemas/channels, which ``mcap``'s own SeekingReader cannot read (see
``docs/mcap_conformance.md``). Further tests check that the comparison can fail, that
``iter_indexed_messages`` agrees with ``mcap``'s reader wherever that reader works, and the
indexed reader's own paths and errors on purpose-built files.
"""

from __future__ import annotations

import copy
import json
import struct
import zlib
from pathlib import Path

import pytest
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, DataEnd, Footer, Header, Message, MessageIndex, Schema
from mcap.writer import CompressionType, IndexType, Writer

from hvla_platform.lib.formats.mcap import records as records_module
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.framing import MAX_RECORD_BYTES
from hvla_platform.lib.formats.mcap.index import McapScan
from hvla_platform.lib.formats.mcap.records import iter_indexed_messages, iter_records, read_summary_view
from hvla_platform_tests.lib.formats.mcap.conformance_json import indexed_view, record_to_conformance_json
from hvla_platform_tests.paths import TESTDATA

SUITE = TESTDATA / "mcap-conformance"
CASES = sorted(SUITE.glob("*/*.mcap"))
GROUPS = {"NoData", "OneMessage", "OneSchemalessMessage", "TenMessages", "OneAttachment", "OneMetadata"}


def _expected_records(case: Path) -> list[dict]:
    return json.loads(case.with_suffix(".json").read_text())["records"]


def _fields(record: dict) -> dict:
    return dict(record["fields"])


def _features(case: Path) -> set[str]:
    return set(case.stem.split("-")[1:])


def _expected_indexed(records: list[dict]) -> dict[str, list[dict]]:
    """What an indexed reader must report, derived from the streamed records as upstream does."""
    schemas: dict[int, dict] = {}
    channels: dict[int, dict] = {}
    messages: list[dict] = []
    statistics: list[dict] = []
    for rec in records:
        if rec["type"] == "Schema":
            schemas.setdefault(int(_fields(rec)["id"]), rec)
        elif rec["type"] == "Channel":
            channels.setdefault(int(_fields(rec)["id"]), rec)
        elif rec["type"] == "Message":
            messages.append(rec)
        elif rec["type"] == "Statistics":
            statistics.append(rec)
    messages.sort(key=lambda m: int(_fields(m)["log_time"]))  # stable: ties keep file order
    return {
        "schemas": [schemas[i] for i in sorted(schemas)],
        "channels": [channels[i] for i in sorted(channels)],
        "messages": messages,
        "statistics": statistics,
    }


def _summary_lacks_definitions(records: list[dict]) -> bool:
    """True if the file is chunk-indexed but its summary lacks a Schema/Channel a message needs.

    mcap 1.6.0's SeekingReader resolves channels and schemas from the summary section only and
    raises KeyError on these files (mcap/reader.py, SeekingReader.iter_messages), though the
    records are in the chunks. Upstream's own Python indexed runner skips exactly these variants.
    """
    types = [r["type"] for r in records]
    if "ChunkIndex" not in types:
        return False
    summary = records[types.index("DataEnd") + 1:]
    summary_channels = {
        int(_fields(r)["id"]): int(_fields(r)["schema_id"]) for r in summary if r["type"] == "Channel"
    }
    summary_schemas = {int(_fields(r)["id"]) for r in summary if r["type"] == "Schema"}
    for msg in (r for r in records if r["type"] == "Message"):
        channel_id = int(_fields(msg)["channel_id"])
        if channel_id not in summary_channels:
            return True
        schema_id = summary_channels[channel_id]
        if schema_id != 0 and schema_id not in summary_schemas:
            return True
    return False


SUMMARY_LACKS_DEFINITIONS = [c for c in CASES if _summary_lacks_definitions(_expected_records(c))]


def _mcap_messages(path: Path, topics=None) -> list[tuple]:
    with open(path, "rb") as f:
        return list(make_reader(f).iter_messages(topics=topics, log_time_order=True))


def test_suite_is_complete():
    assert len(CASES) == 416, f"expected 416 conformance cases under {SUITE}, found {len(CASES)}"
    assert {c.parent.name for c in CASES} == GROUPS
    for case in CASES:
        meta = json.loads(case.with_suffix(".json").read_text())["meta"]
        assert set(meta["variant"]["features"]) == _features(case), case.name


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_streamed_reader_matches_expected_records(case: Path):
    got = [record_to_conformance_json(r) for r in iter_records(case) if not isinstance(r, MessageIndex)]
    assert got == _expected_records(case)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_ingest_scan_yields_the_streamed_messages(case: Path):
    """``McapScan`` (ingest's ``index_mcap``) is ``iter_records``' scan plus checks: same messages."""
    scan = McapScan(case)
    got = [(s, c, m) for s, c, m in scan.messages()]
    records = list(iter_records(case))
    assert [m for _, _, m in got] == [r for r in records if isinstance(r, Message)]
    channels = {r.id: r for r in reversed(records) if isinstance(r, Channel)}
    assert scan.channels == channels and all(channels[c.id] == c for _, c, _ in got)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_indexed_reader_matches_expected_records(case: Path):
    assert indexed_view(case) == _expected_indexed(_expected_records(case))


def test_cases_the_mcap_library_cannot_index_are_real_and_read_by_us():
    """The 112 files mcap's SeekingReader fails on (KeyError) are in the suite; we read them."""
    assert len(SUMMARY_LACKS_DEFINITIONS) == 112
    for case in SUMMARY_LACKS_DEFINITIONS:
        f = _features(case)
        assert {"ch", "chx"} <= f and not {"rch", "rsh"} <= f, case.stem
        with pytest.raises(KeyError):
            _mcap_messages(case)
        expected = _expected_indexed(_expected_records(case))["messages"]
        assert [record_to_conformance_json(m) for _, _, m in iter_indexed_messages(case)] == expected


def test_indexed_comparison_detects_wrong_order_and_wrong_records():
    """The indexed comparison is not vacuous: file order, swapped ties or a lost record fail it."""
    case = _case("TenMessages-ch-chx-mx-rch-rsh-st-sum")
    expected = _expected_indexed(_expected_records(case))
    got = indexed_view(case)
    assert got == expected
    log_times = [int(_fields(m)["log_time"]) for m in got["messages"]]
    assert log_times == sorted(log_times) and len(set(log_times)) < len(log_times), "has ties"

    file_order = copy.deepcopy(got)
    file_order["messages"] = [r for r in _expected_records(case) if r["type"] == "Message"]
    assert file_order["messages"] != got["messages"], "the case's messages are not in log-time order"
    assert file_order != expected

    swapped = copy.deepcopy(got)
    i = next(k for k in range(len(log_times) - 1) if log_times[k] == log_times[k + 1])
    msgs = swapped["messages"]
    msgs[i], msgs[i + 1] = msgs[i + 1], msgs[i]
    assert msgs[i] != msgs[i + 1] and swapped != expected  # equal log times must keep file order

    for key in ("schemas", "channels", "messages", "statistics"):
        missing = copy.deepcopy(got)
        missing[key] = missing[key][1:]
        assert missing != expected, key


ROSBAGS = sorted((TESTDATA / "rosbag2").rglob("*.mcap"))


def _as_tuples(items) -> list[tuple]:
    return [(s, c, m) for s, c, m in items]


@pytest.mark.parametrize("path", ROSBAGS + [c for c in CASES if c not in SUMMARY_LACKS_DEFINITIONS],
                         ids=lambda p: p.stem)
def test_iter_indexed_messages_agrees_with_mcap_reader(path: Path):
    """Wherever ``mcap``'s own reader works, ours yields the same (schema, channel, message)s."""
    assert _as_tuples(iter_indexed_messages(path)) == _mcap_messages(path)
    if path in ROSBAGS:
        topics = sorted({c.topic for c in read_summary_view(path).channels.values()})
        assert len(topics) > 1
        non_empty = 0
        for topic in topics:
            got = _as_tuples(iter_indexed_messages(path, topics=topic))
            assert got == _mcap_messages(path, topics=[topic]), topic
            assert {c.topic for _, c, _ in got} <= {topic}
            non_empty += bool(got)
        assert non_empty >= 1
        assert _as_tuples(iter_indexed_messages(path, topics=topics[:2])) == _mcap_messages(path, topics[:2])


def test_rosbags_are_present():
    assert len(ROSBAGS) >= 5, f"rosbag2 test data missing under {TESTDATA / 'rosbag2'}"


def test_streamed_reader_emits_message_indexes_and_raw_chunks_on_request():
    checked = 0
    for case in CASES:
        features = _features(case)
        if "ch" not in features:
            continue
        plain = list(iter_records(case))
        raw = list(iter_records(case, emit_chunks=True))
        assert not any(isinstance(r, Chunk) for r in plain)
        assert any(isinstance(r, Chunk) for r in raw)
        assert not any(isinstance(r, Message) for r in raw), "messages live inside chunks here"
        assert any(isinstance(r, MessageIndex) for r in plain) == ("mx" in features), case.name
        chunk_json = record_to_conformance_json(next(r for r in raw if isinstance(r, Chunk)))
        assert chunk_json["type"] == "Chunk"
        assert [k for k, _ in chunk_json["fields"]] == [
            "compression", "data", "message_end_time", "message_start_time", "uncompressed_crc",
            "uncompressed_size"]
        checked += 1
    assert checked > 100


# --- hand-built files: padding inside chunks, and unreadable input ------------------------------

MAGIC = b"\x89MCAP0\r\n"


def _rec(opcode: int, body: bytes) -> bytes:
    return bytes([opcode]) + struct.pack("<Q", len(body)) + body


def _str(s: str) -> bytes:
    return struct.pack("<I", len(s.encode())) + s.encode()


def test_chunk_inner_records_with_extra_bytes_and_unknown_opcodes_are_skipped_by_length(tmp_path):
    """Spec: readers skip bytes past a record's known fields, and unknown records, by length."""
    pad = b"\xfe\xfe\xfe"
    schema = _rec(0x03, struct.pack("<H", 7) + _str("S") + _str("enc") + struct.pack("<I", 2) + b"\x01\x02"
                  + pad)
    metadata = _str("k") + _str("v")
    channel = _rec(0x04, struct.pack("<HH", 3, 7) + _str("/t") + _str("m") + struct.pack("<I", len(metadata))
                   + metadata + pad)
    unknown = _rec(0x80, b"\x00" * 5)
    message = _rec(0x05, struct.pack("<HIQQ", 3, 9, 20, 19) + b"payload")
    inner = schema + unknown + channel + message
    chunk = _rec(0x06, struct.pack("<QQQI", 20, 20, len(inner), zlib.crc32(inner)) + _str("")
                 + struct.pack("<Q", len(inner)) + inner)
    data = MAGIC + _rec(0x01, _str("p") + _str("lib")) + chunk
    data += _rec(0x0F, struct.pack("<I", zlib.crc32(data))) + _rec(0x02, struct.pack("<QQI", 0, 0, 0)) + MAGIC
    path = tmp_path / "padded.mcap"
    path.write_bytes(data)

    got = list(iter_records(path))
    assert [type(r) for r in got] == [Header, Schema, Channel, Message, DataEnd, Footer]
    assert got[1] == Schema(id=7, name="S", encoding="enc", data=b"\x01\x02")
    assert got[2] == Channel(id=3, schema_id=7, topic="/t", message_encoding="m", metadata={"k": "v"})
    assert record_to_conformance_json(got[3]) == {"type": "Message", "fields": [
        ["channel_id", "3"], ["data", [str(b) for b in b"payload"]], ["log_time", "20"],
        ["publish_time", "19"], ["sequence", "9"]]}

    bad = bytearray(data)
    bad[data.index(b"payload")] ^= 0xFF  # breaks the chunk CRC (and the data-section CRC)
    (tmp_path / "badcrc.mcap").write_bytes(bytes(bad))
    with pytest.raises(RawLogError, match="CRC mismatch in Chunk at byte"):
        list(iter_records(tmp_path / "badcrc.mcap"))


def _case(name: str) -> Path:
    return next(c for c in CASES if c.stem == name)


@pytest.mark.parametrize("read", [lambda p: list(iter_records(p)), indexed_view,
                                  lambda p: list(iter_indexed_messages(p)), read_summary_view],
                         ids=["streamed", "indexed_view", "iter_indexed_messages", "read_summary_view"])
def test_unreadable_input_raises_rawlogerror(tmp_path, read):
    source = _case("TenMessages-ch-chx-mx-rch-rsh-st-sum").read_bytes()
    inputs = {
        "missing.mcap": None,
        "not_mcap.mcap": b"this is not an MCAP file at all, just text" * 3,
        "truncated.mcap": source[: len(source) // 2],
    }
    for name, content in inputs.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(RawLogError) as err:
            read(path)
        assert err.value.reason == "unreadable", name
        assert err.value.path == str(path)


def test_streamed_reader_checks_data_section_and_summary_crcs(tmp_path):
    msg = bytearray(_case("OneMessage").read_bytes())
    msg[msg.rindex(b"\x01\x02\x03")] ^= 0x40  # message payload: DataEnd CRC no longer matches
    (tmp_path / "data.mcap").write_bytes(bytes(msg))
    with pytest.raises(RawLogError, match="CRC mismatch of the data section"):
        list(iter_records(tmp_path / "data.mcap"))

    stat = bytearray(_case("OneMessage-st-sum").read_bytes())
    footer = Footer(*struct.unpack("<QQI", bytes(stat[-8 - 20:-8])))
    assert stat[footer.summary_start] == 0x0B, "summary starts with the Statistics record"
    stat[footer.summary_start + 9 + 7] ^= 0x01  # high byte of Statistics.message_count
    (tmp_path / "summary.mcap").write_bytes(bytes(stat))
    with pytest.raises(RawLogError, match="CRC mismatch of the summary section"):
        list(iter_records(tmp_path / "summary.mcap"))


def test_serializer_rejects_non_records():
    with pytest.raises(TypeError):
        record_to_conformance_json({"type": "Message"})


# --- iter_indexed_messages on purpose-built files ----------------------------------------------

def _write_mcap(path: Path, messages: list[tuple[str, int]], **writer_options) -> Path:
    """Write one message per chunk (chunk_size=1), uncompressed; topics "/a", "/b" (schemaless)."""
    with open(path, "wb") as f:
        writer = Writer(f, chunk_size=1, compression=CompressionType.NONE, **writer_options)
        writer.start(profile="", library="test")
        schema_id = writer.register_schema("S", "jsonschema", b"{}")
        ids = {"/a": writer.register_channel("/a", "json", schema_id),
               "/b": writer.register_channel("/b", "json", 0)}
        for seq, (topic, log_time) in enumerate(messages):
            writer.add_message(ids[topic], log_time=log_time, data=b"{}%d" % seq, publish_time=log_time,
                               sequence=seq)
        writer.finish()
    return path


def _stably_sorted(path: Path) -> list[Message]:
    return sorted((r for r in iter_records(path) if isinstance(r, Message)), key=lambda m: m.log_time)


@pytest.fixture
def chunk_reads(monkeypatch) -> list[int]:
    """Offsets of the chunks the indexed path reads."""
    reads: list[int] = []
    original = records_module._read_indexed_chunk

    def spy(mf, index, data_end):
        reads.append(index.chunk_start_offset)
        return original(mf, index, data_end)

    monkeypatch.setattr(records_module, "_read_indexed_chunk", spy)
    return reads


MESSAGES = [("/a", 30), ("/b", 10), ("/a", 20), ("/b", 20), ("/a", 5)]


def test_definitions_in_an_earlier_chunk_than_the_message_are_found(tmp_path, chunk_reads):
    """Summary without channels/schemas; a later chunk (read first, earlier log time) needs them."""
    path = _write_mcap(tmp_path / "x.mcap", MESSAGES, repeat_channels=False, repeat_schemas=False)
    summary = read_summary_view(path)
    assert len(summary.chunk_indexes) == 5 and not summary.channels and not summary.schemas
    with pytest.raises(KeyError):
        _mcap_messages(path)
    got = list(iter_indexed_messages(path))
    assert [m for _, _, m in got] == _stably_sorted(path)
    assert [m.log_time for _, _, m in got] == [5, 10, 20, 20, 30]
    assert [m.sequence for _, _, m in got] == [4, 1, 2, 3, 0]  # equal log times in file order
    assert {(c.topic, None if s is None else s.name) for s, c, _ in got} == {("/a", "S"), ("/b", None)}
    assert sorted(chunk_reads) == sorted(ci.chunk_start_offset for ci in summary.chunk_indexes)
    assert [m for _, _, m in iter_indexed_messages(path, topics="/b")] == [
        m for m in _stably_sorted(path) if m.channel_id == 2]


def test_topic_filter_skips_chunks_by_message_index_offsets(tmp_path, chunk_reads):
    path = _write_mcap(tmp_path / "x.mcap", MESSAGES)
    got = list(iter_indexed_messages(path, topics=["/b"]))
    assert got == _mcap_messages(path, topics=["/b"]) and len(got) == 2
    assert len(chunk_reads) == 2, "only the chunks holding /b messages are read"


def test_summary_without_chunk_index_and_no_summary_are_read_linearly(tmp_path, chunk_reads):
    no_chunk_index = _write_mcap(tmp_path / "a.mcap", MESSAGES, index_types=IndexType.MESSAGE)
    summary = read_summary_view(no_chunk_index)
    assert summary is not None and not summary.chunk_indexes
    no_summary = _case("TenMessages-ch-mx")
    assert read_summary_view(no_summary) is None
    for path in (no_chunk_index, no_summary):
        got = list(iter_indexed_messages(path))
        assert [m for _, _, m in got] == _stably_sorted(path) and got == _mcap_messages(path)
    assert chunk_reads == []


def _summary_body_offset(data: bytes, opcode: int) -> int:
    pos = struct.unpack_from("<Q", data, len(data) - 8 - 20)[0]  # Footer.summary_start
    while data[pos] != opcode:
        pos += 9 + struct.unpack_from("<Q", data, pos + 1)[0]
    return pos + 9


def _patch_summary(path: Path, opcode: int, field_offset: int, fmt: str, value: int) -> Path:
    """Overwrite one field of the first summary record with ``opcode``; fix the summary CRC."""
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, _summary_body_offset(bytes(data), opcode) + field_offset, value)
    footer_start = len(data) - 8 - 29
    summary_start = struct.unpack_from("<Q", data, footer_start + 9)[0]
    struct.pack_into("<I", data, footer_start + 25, zlib.crc32(bytes(data[summary_start:footer_start + 25])))
    out = path.with_name("patched-" + path.name)
    out.write_bytes(bytes(data))
    return out


CHUNK_INDEX, STATISTICS = 0x08, 0x0B


def test_statistics_chunk_count_disagreeing_with_the_index_means_linear_read(tmp_path, chunk_reads):
    path = _write_mcap(tmp_path / "x.mcap", MESSAGES)
    patched = _patch_summary(path, STATISTICS, 8 + 2 + 4 + 4 + 4, "<I", 99)  # Statistics.chunk_count
    assert read_summary_view(patched).statistics.chunk_count == 99
    assert list(iter_indexed_messages(patched)) == _mcap_messages(path)
    assert chunk_reads == []


@pytest.mark.parametrize("patch, match", [
    ((STATISTICS, 0, "<Q", 4), "statistics count 4 messages, the indexed chunks hold 5"),
    ((CHUNK_INDEX, 0, "<Q", 31), "starts at log time 31, but it holds a message at 30"),
    ((CHUNK_INDEX, 16, "<Q", 8), "does not hold a Chunk record"),  # chunk_start_offset -> Header
])
def test_index_inconsistent_with_the_file_is_unreadable(tmp_path, patch, match):
    patched = _patch_summary(_write_mcap(tmp_path / "x.mcap", MESSAGES), *patch)
    with pytest.raises(RawLogError, match=match) as err:
        list(iter_indexed_messages(patched))
    assert err.value.reason == "unreadable"


def test_undefined_channel_and_unknown_compression_are_unreadable(tmp_path):
    path = tmp_path / "orphan.mcap"
    with open(path, "wb") as f:
        writer = Writer(f, compression=CompressionType.NONE)
        writer.start(profile="", library="test")
        writer.add_message(7, log_time=1, data=b"x", publish_time=1)
        writer.finish()
    with pytest.raises(RawLogError, match="refers to channel 7, which the file does not define"):
        list(iter_indexed_messages(path))

    inner = _rec(0x05, struct.pack("<HIQQ", 1, 0, 1, 1) + b"x")
    chunk = _rec(0x06, struct.pack("<QQQI", 1, 1, len(inner), 0) + _str("foo") + struct.pack("<Q", len(inner))
                 + inner)
    data = MAGIC + _rec(0x01, _str("") + _str("t")) + chunk + _rec(0x0F, struct.pack("<I", 0))
    data += _rec(0x02, struct.pack("<QQI", 0, 0, 0)) + MAGIC
    (tmp_path / "foo.mcap").write_bytes(data)
    for read in (iter_records, iter_indexed_messages):
        with pytest.raises(RawLogError, match="unknown chunk compression 'foo'"):
            list(read(tmp_path / "foo.mcap"))


# --- the record / decompressed-chunk cap, on every reader ----------------------------------------

def _patched(path: Path, edits: list[tuple[int, str, int]], name: str) -> Path:
    data = bytearray(path.read_bytes())
    for offset, fmt, value in edits:
        struct.pack_into(fmt, data, offset, value)
    out = path.with_name(name)
    out.write_bytes(bytes(data))
    return out


READERS = {
    "streamed": lambda p: list(iter_records(p)),
    "indexed": lambda p: list(iter_indexed_messages(p)),
    "indexed_topic": lambda p: list(iter_indexed_messages(p, topics="/b")),
}


@pytest.mark.parametrize("read", READERS.values(), ids=READERS)
def test_records_and_chunks_above_the_cap_are_refused_before_loading(tmp_path, read):
    """A chunk declaring a huge decompressed size, or a record declaring a huge length: too_large."""
    path = _write_mcap(tmp_path / "x.mcap", MESSAGES)
    chunks = [ci.chunk_start_offset for ci in read_summary_view(path).chunk_indexes]
    huge_chunk = _patched(path, [(c + 9 + 16, "<Q", 2**30) for c in chunks], "huge-chunk.mcap")
    with pytest.raises(RawLogError, match=f"Chunk at byte \\d+ decompresses to 1073741824 bytes, "
                                          f"more than the {MAX_RECORD_BYTES}-byte record limit") as err:
        read(huge_chunk)
    assert err.value.reason == "too_large"

    huge_record = _patched(path, [(c + 1, "<Q", 2**40) for c in chunks], "huge-record.mcap")
    with pytest.raises(RawLogError, match=f"Chunk record at byte \\d+ is {2**40} bytes, more than") as err:
        read(huge_record)
    assert err.value.reason == "too_large"


def test_summary_records_above_the_cap_are_refused(tmp_path):
    huge = _patch_summary(_write_mcap(tmp_path / "x.mcap", MESSAGES), STATISTICS, -8, "<Q", 2**40)
    for read in (read_summary_view, *READERS.values()):
        with pytest.raises(RawLogError, match=f"Statistics record at byte \\d+ is {2**40} bytes") as err:
            read(huge)
        assert err.value.reason == "too_large"
