"""Record-level access to MCAP files, and their MCAP-conformance JSON form.

Two ways of reading an MCAP file, both on the project's strict framing
(:mod:`hvla_platform.lib.formats.mcap.framing`: CRCs, truncation offsets, the
:data:`~hvla_platform.lib.formats.mcap.framing.MAX_RECORD_BYTES` cap on records and decompressed
chunks, chunk records parsed by their declared lengths):

* **streamed** (:func:`iter_records`): every record, in file order: the linear scan
  :class:`~hvla_platform.lib.formats.mcap.framing.LinearScan`, the same one ingest's
  :class:`~hvla_platform.lib.formats.mcap.index.McapScan` is built on. This is what the MCAP
  conformance suite's streamed runners check.
* **indexed** (:func:`iter_indexed_messages`, :func:`read_summary_view`): the project's
  replacement for ``mcap.reader.make_reader(f).iter_messages()``, used by conversion
  (:mod:`hvla_platform.lib.formats.mcap.streams`). It reads the summary section, uses the chunk index to
  read only the chunks it needs, lazily and merged into log-time order, and takes schemas/channels
  from the summary *or*, when the summary does not repeat them, from the chunks (mcap 1.6.0's
  SeekingReader only looks in the summary and raises ``KeyError`` there). Without a chunk index
  it falls back to the linear scan. (The conformance suite's JSON form lives with its test, in
  ``hvla_platform_tests/lib/formats/mcap/conformance_json.py``.)

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
:class:`~hvla_platform.lib.formats.mcap.errors.RawLogError` with reason ``unreadable``, or
``too_large`` for a record or decompressed chunk above the cap.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mcap.opcode import Opcode
from mcap.records import (AttachmentIndex, Channel, Chunk, ChunkIndex, McapRecord, Message, MetadataIndex, Schema,
                          Statistics)
from mcap.summary import Summary

from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.framing import LinearScan, McapFile, open_mcap, record_name

__all__ = ["iter_records", "iter_indexed_messages", "read_summary_view"]


def iter_records(path: str | os.PathLike[str], *, emit_chunks: bool = False) -> Iterator[McapRecord]:
    """Yield every record of the MCAP file at ``path``, in file order (a linear scan).

    The records of :class:`~hvla_platform.lib.formats.mcap.framing.LinearScan`: the DataEnd
    ``data_section_crc``, each Chunk's ``uncompressed_crc`` and the Footer's ``summary_crc`` are
    checked when non-zero (Attachment CRCs are not, but the data-section CRC covers their bytes);
    records and decompressed chunks above ``MAX_RECORD_BYTES`` are refused.

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
            unsupported or corrupt compression, malformed record) or ``too_large``, raised when
            the bad part is reached, so records before it may already have been yielded.
    """
    for _, record in LinearScan(path).records(emit_chunks=emit_chunks):
        yield record


# --- indexed reading -------------------------------------------------------------------------

# Records the summary section may hold (MCAP spec, "Summary Section"). SummaryOffset records are
# only pointers into the summary itself and are skipped, like unknown opcodes.
_SUMMARY_OPCODES = frozenset([Opcode.SCHEMA, Opcode.CHANNEL, Opcode.STATISTICS, Opcode.CHUNK_INDEX,
                              Opcode.ATTACHMENT_INDEX, Opcode.METADATA_INDEX])


def _read_summary(mf: McapFile) -> tuple[Summary | None, int]:
    """The summary (``None`` without one) and where it starts (where the data section ends)."""
    footer, footer_start = mf.read_footer()
    if footer.summary_start == 0:
        return None, footer_start
    mf.check_summary(footer, footer_start)
    summary = Summary()
    for pos, opcode, body in mf.records(footer.summary_start, footer_start):
        if opcode in (Opcode.MESSAGE, Opcode.CHUNK):
            raise mf.err("unreadable", f"{record_name(opcode)} at byte {pos} is inside the summary section")
        if opcode not in _SUMMARY_OPCODES:
            continue
        record = mf.parse(opcode, body, f"at byte {pos}")
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
    return summary, footer.summary_start


def read_summary_view(path: str | os.PathLike[str]) -> Summary | None:
    """Read the summary section of the MCAP file at ``path`` (``None`` if it has none).

    The equivalent of ``mcap.reader.make_reader(f).get_summary()``, but: both magics and the
    Footer are checked, the footer's ``summary_crc`` is verified when non-zero, every summary
    record is framed strictly (truncation, ``MAX_RECORD_BYTES``) and parsed from exactly its
    declared length (trailing bytes skipped), and the first Schema/Channel record of an id wins.
    The result is an ``mcap.summary.Summary``.

    It is a *view of what the summary section stores*, nothing more: a file need not repeat its
    Schema and Channel records there, so ``schemas``/``channels`` may be incomplete or empty (use
    :func:`iter_indexed_messages`, which finds them wherever the file keeps them), and
    ``statistics`` is ``None`` when the writer wrote no Statistics record.

    Raises:
        RawLogError: reason ``unreadable`` or ``too_large``.
    """
    mf = open_mcap(path)
    with mf.f:
        return _read_summary(mf)[0]


def _read_indexed_chunk(mf: McapFile, index: ChunkIndex, data_end: int) -> Chunk:
    """Read the Chunk record a ChunkIndex points to (it must end before ``data_end``)."""
    offset = index.chunk_start_offset
    if not 0 < offset < data_end:
        raise mf.err("unreadable", f"chunk index points at offset {offset}, outside the data section")
    mf.f.seek(offset)
    if mf.f.read(1) != bytes([Opcode.CHUNK]):
        raise mf.err("unreadable", f"chunk index points at offset {offset}, which does not hold a Chunk record")
    _, body = mf.record_at(offset, data_end)
    return mf.parse(Opcode.CHUNK, body, f"at byte {offset}")


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


def _resolved_elsewhere(definitions: _Definitions, message: Message, topics: frozenset[str]) -> bool:
    """True if ``message``'s channel and schema are already known and the channel's topic is not in
    ``topics``: :meth:`_Definitions.resolve` would succeed and the message be dropped (definitions
    never change once known), so it need not wait in the merge heap."""
    channel = definitions.channels.get(message.channel_id)
    if channel is None or channel.topic in topics:
        return False
    return channel.schema_id == 0 or channel.schema_id in definitions.schemas


def _iter_chunk_indexed(mf: McapFile, summary: Summary, data_end: int, topics: frozenset[str] | None
                        ) -> Iterator[tuple[Schema | None, Channel, Message]]:
    """Merge the indexed chunks in log-time order, decoding each only when its turn comes.

    The heap holds chunks keyed ``(message_start_time, chunk offset, -1)`` and decoded messages
    keyed ``(log_time, chunk offset, position in chunk)``: a chunk is opened before any message
    later than its start time is yielded (so the chunk index's start times must not overstate),
    and equal log times come out in file order, across chunks as within one.
    """
    path = mf.path
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
        chunk = _read_indexed_chunk(mf, item, data_end)
        for n, record in enumerate(mf.chunk_records(chunk, offset)):
            if not isinstance(record, Message):
                definitions.add(record)
                continue
            if record.log_time < item.message_start_time:
                raise RawLogError(path, "unreadable",
                                  f"chunk index says {where} starts at log time "
                                  f"{item.message_start_time}, but it holds a message at "
                                  f"{record.log_time}")
            if topics is not None and _resolved_elsewhere(definitions, record, topics):
                continue  # another topic, its definitions known: would be resolved and dropped when popped
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

    Both paths use the strict framing of :mod:`~hvla_platform.lib.formats.mcap.framing`: records and
    decompressed chunks above ``MAX_RECORD_BYTES`` are refused (``too_large``) before they are
    loaded. The summary CRC is checked when non-zero; the data-section CRC only on the linear path
    (the indexed path does not read the whole data section, as with ``mcap``'s SeekingReader).

    Raises:
        RawLogError: reason ``too_large`` (see above) or ``unreadable`` (missing file, bad magic,
            truncated, bad CRC, bad or unknown compression, malformed record, a chunk index that
            does not point at a Chunk or understates its start time, a message whose channel or
            schema the file never defines, statistics that disagree with the chunks). Raised when
            the bad part is reached, so some messages may already have been yielded.
    """
    path = Path(path)
    wanted = _topic_set(topics)
    mf = open_mcap(path)
    with mf.f:
        summary, data_end = _read_summary(mf)
        indexed = summary is not None and len(summary.chunk_indexes) > 0
        if indexed and summary.statistics is not None:
            distinct = {ci.chunk_start_offset for ci in summary.chunk_indexes}
            indexed = summary.statistics.chunk_count == len(distinct)
        if indexed:
            yield from _iter_chunk_indexed(mf, summary, data_end, wanted)
            return
    yield from _iter_linear(path, wanted)
