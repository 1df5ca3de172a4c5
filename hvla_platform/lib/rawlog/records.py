"""Record-level access to MCAP files, and their MCAP-conformance JSON form.

Two ways of reading an MCAP file, both through the ``mcap`` library:

* **streamed** (:func:`iter_records`): a linear scan of every record, in file order, with
  ``mcap.stream_reader.StreamReader`` (CRC validation on). This is how files without a summary
  or index are read, and what the MCAP conformance suite's streamed runners check.
* **indexed** (:func:`indexed_view`): ``mcap.reader.make_reader(f).get_summary()`` plus
  ``iter_messages(log_time_order=True)``, i.e. exactly what ingest (``index.py``, ``streams.py``)
  does, presented as schemas/channels deduplicated by id and messages in log-time order.

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
import io
import os
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.reader import make_reader
from mcap.records import Channel, Chunk, Footer, McapRecord, Message, Schema
from mcap.stream_reader import StreamReader, get_chunk_data_stream

from hvla_platform.lib.rawlog.errors import RawLogError

__all__ = ["iter_records", "record_to_conformance_json", "indexed_view"]

# Records a Chunk may contain (MCAP spec, "Chunk": Schema, Channel and Message records).
_CHUNK_RECORD_READERS = {
    Opcode.SCHEMA: lambda stream, length: Schema.read(stream),
    Opcode.CHANNEL: lambda stream, length: Channel.read(stream),
    Opcode.MESSAGE: lambda stream, length: Message.read(stream, length),
}

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


def _chunk_records(path: Path, chunk: Chunk) -> Iterator[McapRecord]:
    """Yield the records inside ``chunk``, honouring each inner record's declared length.

    The spec lets a record carry bytes after its known fields (newer minor versions may add
    fields); a reader must skip them using the record length, inside chunks as elsewhere.
    Unknown record types are skipped. The chunk's uncompressed CRC is checked when non-zero.
    """
    stream, size = get_chunk_data_stream(chunk, validate_crc=True)
    while stream.count < size:
        opcode = stream.read1()
        length = stream.read8()
        start = stream.count
        if start + length > size:
            raise RawLogError(path, "unreadable",
                              f"record (opcode {opcode:#04x}) of {length} bytes overruns its chunk")
        reader = _CHUNK_RECORD_READERS.get(opcode)
        record = reader(stream, length) if reader is not None else None
        used = stream.count - start
        if used > length:
            raise RawLogError(path, "unreadable",
                              f"record (opcode {opcode:#04x}) is longer than its declared {length} bytes")
        if used < length:
            stream.read(length - used)
        if record is not None:
            yield record


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


def indexed_view(path: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """Read ``path`` the way ingest does and return what an indexed reader reports, as JSON.

    Uses ``mcap.reader.make_reader(f)`` (default options, like ``index.py``/``streams.py``),
    ``get_summary()`` and ``iter_messages(log_time_order=True)``. Returns::

        {"schemas": [...], "channels": [...], "messages": [...], "statistics": [...]}

    * ``schemas``/``channels``: every Schema/Channel the reader knows of — those in the summary
      section plus those it returned with messages — deduplicated by id (first seen wins),
      sorted by id;
    * ``messages``: in the order ``iter_messages(log_time_order=True)`` yields them;
    * ``statistics``: the summary's Statistics record, if any (a list of zero or one).

    Each entry is in :func:`record_to_conformance_json` form.

    Raises:
        RawLogError: reason ``unreadable`` for anything the library cannot read, including a
            ``KeyError`` from a chunk-indexed file whose summary lacks the Schema/Channel records
            its messages refer to (the library resolves those from the summary only).
    """
    path = Path(path)
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    messages: list[Message] = []
    statistics = []
    with _unreadable(path):
        with open(path, "rb") as f:
            reader = make_reader(f)
            summary = reader.get_summary()
            if summary is not None:
                for schema_id, schema in summary.schemas.items():
                    schemas.setdefault(schema_id, schema)
                for channel_id, channel in summary.channels.items():
                    channels.setdefault(channel_id, channel)
                if summary.statistics is not None:
                    statistics.append(summary.statistics)
            for schema, channel, message in reader.iter_messages(log_time_order=True):
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
