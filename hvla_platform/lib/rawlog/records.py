"""Record-level access to MCAP files, and their MCAP-conformance JSON form.

Two ways of reading an MCAP file:

* **streamed** (:func:`iter_records`): a linear scan of every record, in file order, with
  ``mcap.stream_reader.StreamReader`` (CRC validation on; chunks decoded here, by record length).
  This is what the MCAP conformance suite's streamed runners check.
* **indexed** (:func:`iter_indexed_messages`, :func:`read_summary_view`): the project's
  replacement for ``mcap.reader.make_reader(f).iter_messages()``. It reads the summary section, uses
  the chunk index to read only the chunks it needs, lazily and merged into log-time order, and
  takes schemas/channels from the summary *or*, when the summary does not repeat them, from the
  chunks (mcap 1.6.0's SeekingReader only looks in the summary and raises ``KeyError`` there).
  Without a chunk index it falls back to a linear scan. :func:`indexed_view` presents its
  result in the conformance suite's indexed form.

:func:`record_to_conformance_json` serializes one record the way the conformance suite's
``.json`` files do.

Format source: the MCAP specification (https://mcap.dev/spec, major version 0) and the
conformance suite's expected-record files (foxglove/mcap ``tests/conformance/data``, commit
95d0673, stored under ``shared/testdata/mcap-conformance``). The serialization below was written
from those ``.json`` files:

* a record is ``{"type": <record name>, "fields": [[name, value], ...]}``, fields sorted by name;
* integers are decimal strings (``"10"``), bytes are lists of decimal strings (``["1", "2"]``),
  strings stay strings, maps are JSON objects whose keys and values are converted the same way
  (``{"1": "192"}`` for ``message_index_offsets``); lists of tuples become lists of lists;
* the Attachment ``crc`` field is not part of the form (the library does not keep it), and
  neither Chunk nor MessageIndex records appear in the expected files: a streamed reader
  presents a chunk's inner Schema/Channel/Message records in its place, and MessageIndex
  records are left out by the runners.

Errors: every failure to read a file (missing, not MCAP, truncated, bad CRC, bad compression,
records referring to ids the reader cannot resolve) is raised as
:class:`~hvla_platform.lib.rawlog.errors.RawLogError` with reason ``unreadable`` and the
underlying exception's type and message as detail.
"""

from __future__ import annotations

import dataclasses
import heapq
import io
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.data_stream import ReadDataStream
from mcap.records import (AttachmentIndex, Channel, Chunk, ChunkIndex, Footer, McapRecord, Message,
                          MetadataIndex, Schema, Statistics)
from mcap.stream_reader import StreamReader, get_chunk_data_stream
from mcap.summary import Summary

from hvla_platform.lib.rawlog.errors import RawLogError

__all__ = ["iter_records", "iter_indexed_messages", "read_summary_view", "record_to_conformance_json",
           "indexed_view"]

# Records a Chunk may contain (MCAP spec, "Chunk": Schema, Channel and Message records).
_CHUNK_RECORD_READERS = {
    Opcode.SCHEMA: lambda stream, length: Schema.read(stream),
    Opcode.CHANNEL: lambda stream, length: Channel.read(stream),
    Opcode.MESSAGE: lambda stream, length: Message.read(stream, length),
}

# Chunk compressions the spec defines ("" is none).
_COMPRESSIONS = frozenset(["", "zstd", "lz4"])

# Byte offset of the end of Footer.summary_offset_start inside the Footer record:
# opcode (1) + record length (8) + summary_start (8) + summary_offset_start (8).
_FOOTER_CRC_END = 1 + 8 + 8 + 8


@contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    """Translate whatever the mcap library (or its codecs) raises into ``RawLogError``."""
    try:
        yield
    except RawLogError:
        raise
    except (McapError, EOFError, ValueError, KeyError, IndexError, OSError, RuntimeError,
            struct.error) as exc:
        # ValueError covers mcap's CRCValidationError and UnicodeDecodeError of bad strings.
        raise RawLogError(path, "unreadable", f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # compression libraries raise their own error types (zstd, lz4)
        if type(exc).__module__.split(".")[0] in ("zstandard", "lz4", "_lz4"):
            raise RawLogError(path, "unreadable", f"{type(exc).__name__}: {exc}") from exc
        raise


def _iter_bodies(path: Path, data: bytes, readers: dict, where: str) -> Iterator[McapRecord]:
    """Parse the records laid end to end in ``data`` (a chunk's or the summary's content).

    Each record is parsed from exactly its declared length: trailing bytes past the known fields
    are skipped, a record that needs more than its length or overruns ``data`` is an error, and
    opcodes not in ``readers`` are skipped.
    """
    size, pos = len(data), 0
    while pos < size:
        if size - pos < 9:
            raise RawLogError(path, "unreadable", f"{size - pos} stray bytes at the end of {where}")
        opcode = data[pos]
        (length,) = struct.unpack_from("<Q", data, pos + 1)
        start, pos = pos + 9, pos + 9 + length
        if pos > size:
            raise RawLogError(path, "unreadable",
                              f"record (opcode {opcode:#04x}) of {length} bytes overruns {where}")
        reader = readers.get(opcode)
        if reader is None:
            continue
        stream = ReadDataStream(io.BytesIO(data[start:pos]))
        try:
            record = reader(stream, length)
        except (EOFError, struct.error) as exc:
            raise RawLogError(path, "unreadable",
                              f"record (opcode {opcode:#04x}) is longer than its declared {length} "
                              f"bytes in {where}") from exc
        yield record


def _chunk_records(path: Path, chunk: Chunk, where: str = "its chunk") -> Iterator[McapRecord]:
    """Yield the records inside ``chunk``, honouring each inner record's declared length.

    The spec lets a record carry bytes after its known fields (newer minor versions may add
    fields); a reader must skip them using the record length, inside chunks as elsewhere.
    Unknown record types are skipped. The chunk's uncompressed CRC is checked when non-zero, and
    a compression the spec does not define is an error (the library would treat it as none).
    """
    if chunk.compression not in _COMPRESSIONS:
        raise RawLogError(path, "unreadable", f"unknown chunk compression {chunk.compression!r}")
    stream, size = get_chunk_data_stream(chunk, validate_crc=True)
    yield from _iter_bodies(path, stream.read(size), _CHUNK_RECORD_READERS, where)


def _check_summary_crc(path: Path, f: io.BufferedReader, footer: Footer, footer_start: int) -> None:
    """Check ``Footer.summary_crc``: CRC32 from the summary start through ``summary_offset_start``."""
    if footer.summary_crc == 0:
        return
    start = footer.summary_start or footer.summary_offset_start or footer_start
    end = footer_start + _FOOTER_CRC_END
    if not 0 <= start <= footer_start:
        raise RawLogError(path, "unreadable",
                          f"summary_start {start} lies outside the file before the footer")
    f.seek(start)
    crc, left = 0, end - start
    while left > 0:
        block = f.read(min(left, 1 << 20))
        if not block:
            raise RawLogError(path, "unreadable", "file ends inside the summary section")
        crc = zlib.crc32(block, crc)
        left -= len(block)
    if crc != footer.summary_crc:
        raise RawLogError(path, "unreadable",
                          f"summary CRC mismatch: footer says {footer.summary_crc}, computed {crc}")


def iter_records(path: str | os.PathLike[str], *, emit_chunks: bool = False) -> Iterator[McapRecord]:
    """Yield every record of the MCAP file at ``path``, in file order (a linear scan).

    Built on ``mcap.stream_reader.StreamReader`` with ``validate_crcs=True``: the DataEnd
    ``data_section_crc`` and each Chunk's ``uncompressed_crc`` are checked when non-zero; the
    Footer's ``summary_crc`` is checked here as well. Attachment CRCs are not checked (the
    library's Attachment reader skips them), but their bytes are covered by the data-section CRC.

    Every record type is yielded: Header, Schema, Channel, Message, Chunk (see below),
    MessageIndex, ChunkIndex, Attachment, AttachmentIndex, Metadata, MetadataIndex, Statistics,
    SummaryOffset, DataEnd, Footer. Unknown opcodes are skipped, as the spec asks.

    Args:
        path: the MCAP file.
        emit_chunks: if False (default, and what the conformance suite expects), a Chunk is
            replaced by the Schema/Channel/Message records inside it; if True, the Chunk record
            itself is yielded and its contents are not parsed (nor its CRC checked).

    Raises:
        RawLogError: reason ``unreadable`` (missing file, bad magic, truncated, bad CRC,
            unsupported or corrupt compression, malformed record), raised when the bad part is
            reached, so records before it may already have been yielded.
    """
    path = Path(path)
    with _unreadable(path):
        with open(path, "rb") as f:
            reader = StreamReader(f, emit_chunks=True, validate_crcs=True)
            records = reader.records
            record_end = f.tell()
            while True:
                record_start = record_end
                try:
                    record = next(records)
                except StopIteration:
                    break
                record_end = f.tell()
                if isinstance(record, Chunk) and not emit_chunks:
                    yield from _chunk_records(path, record)
                    continue
                if isinstance(record, Footer):
                    # Finish the stream first: the trailing magic is read after the footer.
                    for _ in records:
                        pass
                    _check_summary_crc(path, f, record, record_start)
                yield record


def _to_json_value(value: Any) -> Any:
    """Convert one field value to the conformance JSON form (ints as strings, bytes as lists)."""
    if isinstance(value, bool):
        raise TypeError(f"unexpected bool field value {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return [str(b) for b in bytes(value)]
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {str(_to_json_value(k)): _to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_value(v) for v in value]
    raise TypeError(f"cannot serialize field value of type {type(value).__name__}")


def record_to_conformance_json(record: McapRecord) -> dict[str, Any]:
    """Serialize one ``mcap.records`` record into the MCAP conformance suite's JSON form.

    The result is ``{"type": <class name>, "fields": [[field, value], ...]}`` with the fields
    sorted by name; ints become decimal strings, bytes lists of decimal strings, maps objects with
    converted keys and values (see the module docstring). For example a Message becomes
    ``{"type": "Message", "fields": [["channel_id", "1"], ["data", ["1", "2", "3"]],
    ["log_time", "2"], ["publish_time", "1"], ["sequence", "10"]]}``.

    Raises:
        TypeError: ``record`` is not an mcap record dataclass, or holds a value of a type the
            format has no JSON form for.
    """
    if not (isinstance(record, McapRecord) and dataclasses.is_dataclass(record)):
        raise TypeError(f"not an MCAP record: {record!r}")
    fields = sorted((f.name, _to_json_value(getattr(record, f.name))) for f in dataclasses.fields(record))
    return {"type": type(record).__name__, "fields": [list(pair) for pair in fields]}


# --- indexed reading -------------------------------------------------------------------------

# Records the summary section may hold (MCAP spec, "Summary Section"). SummaryOffset records are
# only pointers into the summary itself and are skipped, like unknown opcodes.
_SUMMARY_RECORD_READERS = {
    Opcode.SCHEMA: lambda stream, length: Schema.read(stream),
    Opcode.CHANNEL: lambda stream, length: Channel.read(stream),
    Opcode.STATISTICS: lambda stream, length: Statistics.read(stream),
    Opcode.CHUNK_INDEX: lambda stream, length: ChunkIndex.read(stream),
    Opcode.ATTACHMENT_INDEX: lambda stream, length: AttachmentIndex.read(stream),
    Opcode.METADATA_INDEX: lambda stream, length: MetadataIndex.read(stream),
}

_MAGIC = b"\x89MCAP0\r\n"
_FOOTER_BODY_LENGTH = 8 + 8 + 4  # summary_start, summary_offset_start, summary_crc
_FOOTER_RECORD_LENGTH = 1 + 8 + _FOOTER_BODY_LENGTH


def _read_footer(path: Path, f: io.BufferedReader) -> tuple[Footer, int]:
    """Check both magics and return the Footer and its byte offset."""
    size = f.seek(0, io.SEEK_END)
    if size < 2 * len(_MAGIC) + _FOOTER_RECORD_LENGTH:
        raise RawLogError(path, "unreadable", f"file of {size} bytes is too short to be MCAP")
    f.seek(0)
    if f.read(len(_MAGIC)) != _MAGIC:
        raise RawLogError(path, "unreadable", "no MCAP magic at the start of the file")
    footer_start = size - len(_MAGIC) - _FOOTER_RECORD_LENGTH
    f.seek(footer_start)
    tail = f.read(_FOOTER_RECORD_LENGTH + len(_MAGIC))
    if tail[_FOOTER_RECORD_LENGTH:] != _MAGIC:
        raise RawLogError(path, "unreadable", "no MCAP magic at the end of the file (truncated?)")
    opcode, length = tail[0], struct.unpack_from("<Q", tail, 1)[0]
    if opcode != Opcode.FOOTER or length != _FOOTER_BODY_LENGTH:
        raise RawLogError(path, "unreadable", "no Footer record before the closing magic")
    return Footer(*struct.unpack_from("<QQI", tail, 9)), footer_start


def _read_summary(path: Path, f: io.BufferedReader) -> Summary | None:
    footer, footer_start = _read_footer(path, f)
    if footer.summary_start == 0:
        return None
    if not len(_MAGIC) <= footer.summary_start <= footer_start:
        raise RawLogError(path, "unreadable",
                          f"footer summary_start {footer.summary_start} lies outside the file")
    _check_summary_crc(path, f, footer, footer_start)
    f.seek(footer.summary_start)
    data = f.read(footer_start - footer.summary_start)
    summary = Summary()
    for record in _iter_bodies(path, data, _SUMMARY_RECORD_READERS, "the summary section"):
        if isinstance(record, Schema):
            summary.schemas.setdefault(record.id, record)
        elif isinstance(record, Channel):
            summary.channels.setdefault(record.id, record)
        elif isinstance(record, Statistics):
            summary.statistics = record
        elif isinstance(record, ChunkIndex):
            summary.chunk_indexes.append(record)
        elif isinstance(record, AttachmentIndex):
            summary.attachment_indexes.append(record)
        elif isinstance(record, MetadataIndex):
            summary.metadata_indexes.append(record)
    return summary


def read_summary_view(path: str | os.PathLike[str]) -> Summary | None:
    """Read the summary section of the MCAP file at ``path`` (``None`` if it has none).

    The equivalent of ``mcap.reader.make_reader(f).get_summary()``, but: both magics and the
    Footer are checked, the footer's ``summary_crc`` is verified when non-zero, every summary
    record is parsed from exactly its declared length (trailing bytes skipped), and the first
    Schema/Channel record of an id wins. The result is an ``mcap.summary.Summary``.

    It is a *view of what the summary section stores*, nothing more: a file need not repeat its
    Schema and Channel records there, so ``schemas``/``channels`` may be incomplete or empty (use
    :func:`iter_indexed_messages`, which finds them wherever the file keeps them), and
    ``statistics`` is ``None`` when the writer wrote no Statistics record.

    Raises:
        RawLogError: reason ``unreadable``.
    """
    path = Path(path)
    with _unreadable(path):
        with open(path, "rb") as f:
            return _read_summary(path, f)


def _read_indexed_chunk(path: Path, f: io.BufferedReader, index: ChunkIndex) -> Chunk:
    """Read the Chunk record a ChunkIndex points to."""
    f.seek(index.chunk_start_offset)
    head = f.read(9)
    if len(head) < 9 or head[0] != Opcode.CHUNK:
        raise RawLogError(path, "unreadable",
                          f"chunk index points at offset {index.chunk_start_offset}, "
                          "which does not hold a Chunk record")
    (length,) = struct.unpack_from("<Q", head, 1)
    body = f.read(length)
    if len(body) < length:
        raise RawLogError(path, "unreadable",
                          f"Chunk at offset {index.chunk_start_offset} runs past the end of the file")
    return Chunk.read(ReadDataStream(io.BytesIO(body)))


def _topic_set(topics: Iterable[str] | str | None) -> frozenset[str] | None:
    if topics is None:
        return None
    return frozenset([topics] if isinstance(topics, str) else topics)


class _Definitions:
    """Schemas and channels known so far; falls back to one full scan for ids not yet seen."""

    def __init__(self, path: Path, schemas: dict[int, Schema], channels: dict[int, Channel]):
        self.path = path
        self.schemas = dict(schemas)
        self.channels = dict(channels)
        self._scanned = False

    def add(self, record: McapRecord) -> None:
        if isinstance(record, Schema):
            self.schemas.setdefault(record.id, record)
        elif isinstance(record, Channel):
            self.channels.setdefault(record.id, record)

    def _scan(self) -> None:
        # Definitions kept somewhere the index does not lead to (the data section outside
        # chunks, or a chunk not yet decoded): read the whole file once.
        self._scanned = True
        for record in iter_records(self.path):
            self.add(record)

    def resolve(self, message: Message) -> tuple[Schema | None, Channel]:
        channel = self.channels.get(message.channel_id)
        if channel is None and not self._scanned:
            self._scan()
            channel = self.channels.get(message.channel_id)
        if channel is None:
            raise RawLogError(self.path, "unreadable",
                              f"message refers to channel {message.channel_id}, "
                              "which the file does not define")
        if channel.schema_id == 0:
            return None, channel
        schema = self.schemas.get(channel.schema_id)
        if schema is None and not self._scanned:
            self._scan()
            schema = self.schemas.get(channel.schema_id)
        if schema is None:
            raise RawLogError(self.path, "unreadable",
                              f"channel {channel.id} refers to schema {channel.schema_id}, "
                              "which the file does not define")
        return schema, channel


def _iter_linear(path: Path, topics: frozenset[str] | None
                 ) -> Iterator[tuple[Schema | None, Channel, Message]]:
    """No chunk index to use: read every record (like ``mcap``'s NonSeekingReader), then sort."""
    definitions = _Definitions(path, {}, {})
    messages: list[Message] = []
    for record in iter_records(path):
        if isinstance(record, Message):
            messages.append(record)
        else:
            definitions.add(record)
    definitions._scanned = True  # everything the file defines has been seen
    messages.sort(key=lambda m: m.log_time)  # stable: equal log times keep file order
    for message in messages:
        schema, channel = definitions.resolve(message)
        if topics is None or channel.topic in topics:
            yield schema, channel, message


def _chunk_may_match(index: ChunkIndex, topics: frozenset[str] | None,
                     channels: dict[int, Channel]) -> bool:
    """Use the chunk index's message-index offsets (the channels present) to skip chunks."""
    if topics is None or not index.message_index_offsets:
        return True
    for channel_id in index.message_index_offsets:
        channel = channels.get(channel_id)
        if channel is None or channel.topic in topics:
            return True  # unknown from the summary alone: the chunk must be read
    return False


def _iter_chunk_indexed(path: Path, f: io.BufferedReader, summary: Summary,
                        topics: frozenset[str] | None
                        ) -> Iterator[tuple[Schema | None, Channel, Message]]:
    """Merge the indexed chunks in log-time order, decoding each only when its turn comes.

    The heap holds chunks keyed ``(message_start_time, chunk offset, -1)`` and decoded messages
    keyed ``(log_time, chunk offset, position in chunk)``: a chunk is opened before any message
    later than its start time is yielded (so the chunk index's start times must not overstate),
    and equal log times come out in file order, across chunks as within one.
    """
    definitions = _Definitions(path, summary.schemas, summary.channels)
    by_offset = {ci.chunk_start_offset: ci for ci in summary.chunk_indexes}
    heap: list[tuple[int, int, int, Any]] = [
        (ci.message_start_time, offset, -1, ci) for offset, ci in by_offset.items()
        if _chunk_may_match(ci, topics, definitions.channels)
    ]
    heapq.heapify(heap)
    count = 0
    while heap:
        log_time, offset, position, item = heapq.heappop(heap)
        if position >= 0:
            schema, channel = definitions.resolve(item)
            if topics is None or channel.topic in topics:
                count += 1
                yield schema, channel, item
            continue
        where = f"the Chunk at offset {offset}"
        chunk = _read_indexed_chunk(path, f, item)
        for n, record in enumerate(_chunk_records(path, chunk, where)):
            if not isinstance(record, Message):
                definitions.add(record)
                continue
            if record.log_time < item.message_start_time:
                raise RawLogError(path, "unreadable",
                                  f"chunk index says {where} starts at log time "
                                  f"{item.message_start_time}, but it holds a message at "
                                  f"{record.log_time}")
            heapq.heappush(heap, (record.log_time, offset, n, record))
    stats = summary.statistics
    if topics is None and stats is not None and stats.message_count != count:
        raise RawLogError(path, "unreadable",
                          f"statistics count {stats.message_count} messages, the indexed chunks "
                          f"hold {count}")


def iter_indexed_messages(path: str | os.PathLike[str], topics: Iterable[str] | str | None = None
                          ) -> Iterator[tuple[Schema | None, Channel, Message]]:
    """Yield ``(schema, channel, message)`` for the messages of the MCAP file at ``path``.

    The project's replacement for ``mcap.reader.make_reader(f).iter_messages()`` (default
    ``log_time_order=True``): messages come in ascending log time, equal log times in file order,
    and ``schema`` is ``None`` for schemaless channels (``schema_id`` 0). With ``topics`` (one
    topic or an iterable of them) only messages on those topics are yielded.

    How the file is read:

    * **chunk-indexed** (summary with ChunkIndex records): only the chunks the index lists are read
      (seek + decode, chunk CRC checked when non-zero, inner records parsed by their declared
      lengths), lazily, merged by log time; with ``topics``, chunks whose message-index offsets
      name only other topics' channels are not read. Schemas and channels come from the summary
      and, when the summary does not repeat them, from the chunks themselves; if a message's
      channel (or a channel's schema) is still unknown, the whole file is scanned once for its
      definition (it may sit in the data section outside the chunks). If Statistics are present,
      their ``chunk_count`` must match the chunk index (otherwise the index is incomplete and the
      file is read linearly) and, without ``topics``, their ``message_count`` must equal the
      number of messages read.
    * **linear** (no summary, or a summary without a chunk index): every record is read with
      :func:`iter_records` (all CRCs checked), then messages are stably sorted by log time. Like
      ``mcap``'s NonSeekingReader, this holds the file's messages in memory.

    The summary CRC is checked when non-zero; the data-section CRC only on the linear path (the
    indexed path does not read the whole data section, as with ``mcap``'s SeekingReader).

    Raises:
        RawLogError: reason ``unreadable`` (missing file, bad magic, truncated, bad CRC, bad or
            unknown compression, malformed record, a chunk index that does not point at a Chunk or
            understates its start time, a message whose channel or schema the file never
            defines, statistics that disagree with the chunks). Raised when the bad part is
            reached, so some messages may already have been yielded.
    """
    path = Path(path)
    wanted = _topic_set(topics)
    with _unreadable(path):
        with open(path, "rb") as f:
            summary = _read_summary(path, f)
            indexed = summary is not None and len(summary.chunk_indexes) > 0
            if indexed and summary.statistics is not None:
                distinct = {ci.chunk_start_offset for ci in summary.chunk_indexes}
                indexed = summary.statistics.chunk_count == len(distinct)
            if indexed:
                yield from _iter_chunk_indexed(path, f, summary, wanted)
                return
        yield from _iter_linear(path, wanted)


def indexed_view(path: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """What the project's indexed reader reports for ``path``, in conformance JSON form.

    Uses :func:`read_summary_view` and :func:`iter_indexed_messages` (the project's indexed reader).
    Returns::

        {"schemas": [...], "channels": [...], "messages": [...], "statistics": [...]}

    * ``schemas``/``channels``: those in the summary section plus those returned with messages,
      deduplicated by id (first seen wins), sorted by id;
    * ``messages``: in the order :func:`iter_indexed_messages` yields them (log time, ties in
      file order);
    * ``statistics``: the summary's Statistics record, if any (a list of zero or one).

    Each entry is in :func:`record_to_conformance_json` form.

    Raises:
        RawLogError: reason ``unreadable`` for anything the reader cannot read.
    """
    path = Path(path)
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    messages: list[Message] = []
    statistics = []
    summary = read_summary_view(path)
    if summary is not None:
        schemas.update(summary.schemas)
        channels.update(summary.channels)
        if summary.statistics is not None:
            statistics.append(summary.statistics)
    for schema, channel, message in iter_indexed_messages(path):
        if schema is not None:
            schemas.setdefault(schema.id, schema)
        channels.setdefault(channel.id, channel)
        messages.append(message)
    return {
        "schemas": [record_to_conformance_json(schemas[i]) for i in sorted(schemas)],
        "channels": [record_to_conformance_json(channels[i]) for i in sorted(channels)],
        "messages": [record_to_conformance_json(m) for m in messages],
        "statistics": [record_to_conformance_json(s) for s in statistics],
    }
