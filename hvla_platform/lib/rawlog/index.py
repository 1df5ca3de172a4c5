"""Index an MCAP file: topics, schemas, message counts, time ranges, monotonicity, size, sha256.

The file is read once, linearly, in file order, by :class:`McapScan` (so "timestamps went
backwards" means what the recorder wrote, not what a log-time-ordered reader would present).
Files without a summary or index are read by scanning, like any other: the summary is never
needed to find messages.

Why not ``mcap.reader.make_reader``: with its defaults (mcap 1.6) it validates **no** CRC (a byte
flipped inside a compressed chunk is read as good data), its linear fallback for files without a
summary drops ``validate_crcs`` even when asked, its record-length limit is 4 GiB and it trusts a
chunk's declared uncompressed size (a small zstd chunk can ask for gigabytes). :class:`McapScan`
uses mcap's record classes to parse fields but does the framing itself, so that:

* every record, and every record inside a chunk, must fit in the bytes that remain (a cut file is
  reported as *truncated* at a byte offset, never read short);
* no record, and no chunk once decompressed, may exceed ``max_record_bytes``
  (:data:`MAX_RECORD_BYTES`): nothing larger is ever allocated;
* chunk CRCs, the data-section CRC (``DataEnd``) and the summary CRC (``Footer``) are checked when
  the writer stored them (a stored 0 means "no CRC", as the MCAP specification says);
* the summary, when present, must agree with the data section (message count, channel records).
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import lz4.frame
import zstandard
from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel, Footer, Header, Message, Schema, Statistics

from hvla_platform.lib.rawlog.cdr import header_stamp_ns, schema_starts_with_header
from hvla_platform.lib.rawlog.errors import RawLogError
from hvla_platform.lib.storage.lake import sha256_file

#: Largest record (or decompressed chunk) ingest will load, bytes. A compressed camera frame is
#: well under 1 MiB and a raw 4K RGB frame is 24 MiB; anything above this is refused as
#: ``too_large`` instead of being allocated.
MAX_RECORD_BYTES = 64 * 2**20

MAGIC = b"\x89MCAP0\r\n"
_OPCODE_NAMES = {int(o): o.name.title().replace("_", "") for o in Opcode}  # CHUNK_INDEX -> ChunkIndex


class _Overrun(Exception):
    """A field needs more bytes than its record holds."""


class _StrictStream(ReadDataStream):
    """A :class:`ReadDataStream` over one record body that never returns a short read."""

    def __init__(self, data: bytes | memoryview):
        super().__init__(io.BytesIO(data))
        self.size = len(data)

    def read(self, length: int) -> bytes:
        if length < 0 or length > self.size - self.count:
            raise _Overrun(f"a field needs {length} byte(s), {self.size - self.count} left in the record")
        return super().read(length)


def _name(opcode: int) -> str:
    return f"{_OPCODE_NAMES[opcode]} record" if opcode in _OPCODE_NAMES else f"unknown record (opcode 0x{opcode:02x})"


class McapScan:
    """One linear, validating pass over an MCAP file (see the module docstring).

    Iterate :meth:`messages` to the end: the summary section and the footer are checked after the
    last message, so an error there is raised when the iteration finishes. After a complete
    iteration ``header``, ``footer``, ``schemas``, ``channels`` (every Channel record, including
    channels that carry no message), ``statistics``, ``chunk_count`` and ``chunks_without_crc`` are
    filled in.

    Args:
        path: the MCAP file.
        max_record_bytes: largest record or decompressed chunk that will be loaded.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_record_bytes: int = MAX_RECORD_BYTES):
        self.path = Path(path)
        self.max_record_bytes = max_record_bytes
        self.header: Header | None = None
        self.footer: Footer | None = None
        self.schemas: dict[int, Schema] = {}
        self.channels: dict[int, Channel] = {}
        self.statistics: Statistics | None = None
        self.message_count = 0
        self.chunk_count = 0
        self.chunks_without_crc = 0

    # ---- errors ------------------------------------------------------------------------
    def _err(self, reason: str, detail: str) -> RawLogError:
        return RawLogError(self.path, reason, detail)

    # ---- framing -----------------------------------------------------------------------
    def _records(self, f: BinaryIO, size: int, crc: list[int]) -> Iterator[tuple[int, int, bytes]]:
        """(offset, opcode, body) of the top-level records after the leading magic, up to the Footer."""
        pos = len(MAGIC)
        while True:
            if size - pos < 9:
                raise self._err("unreadable", f"truncated: the file ends at byte {size} with no Footer record "
                                               f"(a record header needs 9 bytes at byte {pos}, {size - pos} left)")
            head = f.read(9)
            opcode, length = struct.unpack("<BQ", head)
            if length > self.max_record_bytes:
                raise self._err("too_large", f"{_name(opcode)} at byte {pos} is {length} bytes, more than the "
                                             f"{self.max_record_bytes}-byte record limit; not loaded")
            if length > size - pos - 9:
                raise self._err("unreadable", f"truncated: {_name(opcode)} at byte {pos} declares {length} bytes "
                                               f"but the file ends {size - pos - 9} bytes later (file size {size})")
            body = f.read(length)
            if opcode != Opcode.DATA_END and self.footer is None:
                crc[0] = zlib.crc32(body, zlib.crc32(head, crc[0]))
            yield pos, opcode, body
            pos += 9 + length
            if opcode == Opcode.FOOTER:
                tail = f.read(len(MAGIC) + 1)
                if tail[: len(MAGIC)] != MAGIC:
                    raise self._err("unreadable", f"truncated: no closing magic after the Footer at byte {pos} "
                                                   f"(found {tail[:len(MAGIC)]!r})")
                if len(tail) > len(MAGIC):
                    raise self._err("unreadable", f"{size - pos - len(MAGIC)} unexpected byte(s) after the closing "
                                                   f"magic at byte {pos + len(MAGIC)}")
                return

    def _parse(self, cls: Any, body: bytes | memoryview, where: str, *args: Any) -> Any:
        stream = _StrictStream(body)
        try:
            return cls.read(stream, *args)
        except (_Overrun, struct.error, UnicodeDecodeError, ValueError) as exc:
            raise self._err("unreadable", f"corrupt {cls.__name__} record {where}: {exc}") from exc

    def _chunk_data(self, body: bytes, where: str) -> bytes:
        s = _StrictStream(body)
        try:
            s.read8(), s.read8()  # message start / end time
            usize, ucrc = s.read8(), s.read4()
            compression = s.read_prefixed_string()
            data = s.read(s.read8())
        except (_Overrun, struct.error, UnicodeDecodeError) as exc:
            raise self._err("unreadable", f"corrupt Chunk record {where}: {exc}") from exc
        if usize > self.max_record_bytes:
            raise self._err("too_large", f"Chunk {where} decompresses to {usize} bytes, more than the "
                                         f"{self.max_record_bytes}-byte record limit; not decompressed")
        try:
            if compression == "":
                out = data
            elif compression == "zstd":
                out = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read(usize + 1)
            elif compression == "lz4":
                with lz4.frame.open(io.BytesIO(data), "rb") as lz:
                    out = lz.read(usize + 1)
            else:
                raise self._err("unreadable", f"Chunk {where} uses unsupported compression {compression!r}")
        except (zstandard.ZstdError, RuntimeError, OSError, EOFError) as exc:
            raise self._err("unreadable", f"corrupt Chunk {where}: {compression} decompression failed: "
                                          f"{type(exc).__name__}: {exc}") from exc
        if len(out) != usize:
            got = f"more than {usize}" if len(out) > usize else str(len(out))
            raise self._err("unreadable", f"corrupt Chunk {where}: decompresses to {got} bytes, its header "
                                          f"declares {usize}")
        self.chunk_count += 1
        if ucrc == 0:
            self.chunks_without_crc += 1
        elif zlib.crc32(out) != ucrc:
            raise self._err("unreadable", f"CRC mismatch in Chunk {where}: stored 0x{ucrc:08x}, computed "
                                          f"0x{zlib.crc32(out):08x}; the chunk's content is corrupt")
        return out

    def _chunk_records(self, data: bytes, where: str) -> Iterator[tuple[int, bytes]]:
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            if len(view) - pos < 9:
                raise self._err("unreadable", f"corrupt Chunk {where}: {len(view) - pos} stray byte(s) at its end")
            opcode, length = struct.unpack_from("<BQ", view, pos)
            if length > len(view) - pos - 9:
                raise self._err("unreadable", f"corrupt Chunk {where}: {_name(opcode)} at chunk byte {pos} declares "
                                              f"{length} bytes, {len(view) - pos - 9} left in the chunk")
            yield opcode, view[pos + 9: pos + 9 + length]
            pos += 9 + length

    # ---- records -----------------------------------------------------------------------
    def _register(self, opcode: int, body: bytes | memoryview, where: str) -> None:
        if opcode == Opcode.SCHEMA:
            sch = self._parse(Schema, body, where)
            old = self.schemas.setdefault(sch.id, sch)
            if old != sch:
                raise self._err("unreadable", f"Schema id {sch.id} {where} redefines {old.name!r} as {sch.name!r}")
        else:
            ch = self._parse(Channel, body, where)
            if ch.schema_id != 0 and ch.schema_id not in self.schemas:
                raise self._err("unreadable", f"Channel {ch.topic!r} (id {ch.id}) {where} refers to schema id "
                                              f"{ch.schema_id}, which no earlier Schema record defines")
            old = self.channels.setdefault(ch.id, ch)
            if old != ch:
                raise self._err("unreadable", f"Channel id {ch.id} {where} redefines {old.topic!r} as {ch.topic!r}")

    def _message(self, body: bytes | memoryview, where: str) -> tuple[Schema | None, Channel, Message]:
        if len(body) < 22:
            raise self._err("unreadable", f"corrupt Message record {where}: {len(body)} bytes, fewer than its 22-byte header")
        msg = self._parse(Message, body, where, len(body))
        ch = self.channels.get(msg.channel_id)
        if ch is None:
            raise self._err("unreadable", f"Message {where} is on channel id {msg.channel_id}, which no earlier "
                                          "Channel record defines")
        self.message_count += 1
        return (self.schemas[ch.schema_id] if ch.schema_id else None), ch, msg

    def messages(self) -> Iterator[tuple[Schema | None, Channel, Message]]:
        """Yield ``(schema or None, channel, message)`` in file order, validating as it goes.

        Raises:
            RawLogError: reason ``unreadable`` (not an MCAP file, truncated, CRC mismatch, corrupt
                record or compression, summary disagreeing with the data) or ``too_large`` (a record
                or decompressed chunk above ``max_record_bytes``); the detail names the record and
                its byte offset.
        """
        try:
            size = self.path.stat().st_size
            f = open(self.path, "rb")
        except OSError as exc:
            raise self._err("unreadable", f"cannot open file: {exc}") from exc
        with f:
            magic = f.read(len(MAGIC))
            if magic != MAGIC:
                raise self._err("unreadable", f"not an MCAP file: it starts with {magic!r}, not the MCAP magic")
            crc = [zlib.crc32(magic)]
            in_summary = False
            for pos, opcode, body in self._records(f, size, crc):
                where = f"at byte {pos}"
                if self.header is None:
                    if opcode != Opcode.HEADER:
                        raise self._err("unreadable", f"the first record is {_name(opcode)}, not a Header")
                    self.header = self._parse(Header, body, where)
                    continue
                if opcode in (Opcode.SCHEMA, Opcode.CHANNEL):
                    self._register(opcode, body, where)
                elif opcode in (Opcode.MESSAGE, Opcode.CHUNK):
                    if in_summary:
                        raise self._err("unreadable", f"{_name(opcode)} {where} is inside the summary section")
                    if opcode == Opcode.MESSAGE:
                        yield self._message(body, where)
                        continue
                    data = self._chunk_data(bytes(body), where)
                    for opc, rec in self._chunk_records(data, where):
                        inner = f"in the Chunk at byte {pos}"
                        if len(rec) > self.max_record_bytes:
                            raise self._err("too_large", f"{_name(opc)} {inner} is {len(rec)} bytes, more than the "
                                                         f"{self.max_record_bytes}-byte record limit")
                        if opc in (Opcode.SCHEMA, Opcode.CHANNEL):
                            self._register(opc, rec, inner)
                        elif opc == Opcode.MESSAGE:
                            yield self._message(rec, inner)
                elif opcode == Opcode.DATA_END:
                    stored = struct.unpack_from("<I", body, 0)[0] if len(body) >= 4 else 0
                    if stored and stored != crc[0]:
                        raise self._err("unreadable", f"CRC mismatch of the data section (DataEnd {where}): stored "
                                                      f"0x{stored:08x}, computed 0x{crc[0]:08x}; the file is corrupt")
                    in_summary = True
                elif opcode == Opcode.STATISTICS:
                    self.statistics = self._parse(Statistics, body, where)
                elif opcode == Opcode.FOOTER:
                    self.footer = self._parse(Footer, body, where)
            self._check_summary(f, size)

    def _check_summary(self, f: BinaryIO, size: int) -> None:
        footer = self.footer
        assert footer is not None
        if footer.summary_start:
            end = size - len(MAGIC) - 4  # the CRC covers everything up to the footer's summary_crc field
            if not 0 < footer.summary_start < end:
                raise self._err("unreadable", f"Footer points to a summary at byte {footer.summary_start}, "
                                              f"outside the file ({size} bytes)")
            if footer.summary_crc:
                f.seek(footer.summary_start)
                crc, left = 0, end - footer.summary_start
                while left:
                    block = f.read(min(left, 1 << 20))
                    crc, left = zlib.crc32(block, crc), left - len(block)
                if crc != footer.summary_crc:
                    raise self._err("unreadable", f"CRC mismatch of the summary section: stored "
                                                  f"0x{footer.summary_crc:08x}, computed 0x{crc:08x}; the file is corrupt")
        if self.statistics is not None and self.statistics.message_count != self.message_count:
            raise self._err("unreadable", f"the summary's Statistics count {self.statistics.message_count} messages, "
                                          f"the data section holds {self.message_count}")

    @property
    def has_summary(self) -> bool:
        """True if the Footer points to a summary section (only meaningful after a full iteration)."""
        return bool(self.footer and self.footer.summary_start)


@dataclass
class TopicStats:
    """Per-topic statistics of one MCAP file.

    Times are ns since the Unix epoch (ROS time). ``*_stamp_*`` fields are the ``std_msgs/Header``
    stamps when the message type has one, else ``None``. A topic whose channel is registered but
    carries no message has ``message_count == 0``. ``first_backwards_at`` is the 0-based number
    (within the topic) of the first message whose log time or header stamp went backwards.
    """

    topic: str
    schema_name: str
    schema_encoding: str
    message_encoding: str
    message_count: int = 0
    first_log_time_ns: int | None = None
    last_log_time_ns: int | None = None
    log_time_backwards: int = 0
    first_stamp_ns: int | None = None
    last_stamp_ns: int | None = None
    stamp_backwards: int = 0
    max_message_bytes: int = 0
    first_backwards_at: int | None = None

    @property
    def rate_hz(self) -> float | None:
        """Mean message rate over the topic's log-time span, Hz (None for < 2 messages)."""
        if self.message_count < 2 or self.first_log_time_ns is None or self.last_log_time_ns is None:
            return None
        span = (self.last_log_time_ns - self.first_log_time_ns) / 1e9
        return (self.message_count - 1) / span if span > 0 else None

    @property
    def monotonic(self) -> bool:
        """True if neither log times nor header stamps ever went backwards."""
        return self.log_time_backwards == 0 and self.stamp_backwards == 0


@dataclass
class McapIndex:
    """What ingest knows about one MCAP file after reading it once.

    ``chunk_count`` counts the chunks read, ``chunks_without_crc`` those whose writer stored no CRC
    (they could not be checked).
    """

    path: str
    size_bytes: int
    sha256: str
    profile: str
    library: str
    has_summary: bool
    topics: dict[str, TopicStats] = field(default_factory=dict)
    chunk_count: int = 0
    chunks_without_crc: int = 0

    @property
    def message_count(self) -> int:
        """Total number of messages."""
        return sum(t.message_count for t in self.topics.values())

    @property
    def start_ns(self) -> int | None:
        """Earliest log time, ns."""
        vals = [t.first_log_time_ns for t in self.topics.values() if t.first_log_time_ns is not None]
        return min(vals) if vals else None

    @property
    def end_ns(self) -> int | None:
        """Latest log time, ns."""
        vals = [t.last_log_time_ns for t in self.topics.values() if t.last_log_time_ns is not None]
        return max(vals) if vals else None

    @property
    def duration_s(self) -> float:
        """Log-time span, seconds (0 for fewer than two messages)."""
        if self.start_ns is None or self.end_ns is None:
            return 0.0
        return (self.end_ns - self.start_ns) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, with per-topic rate and monotonic flags."""
        d = asdict(self)
        d["topics"] = {
            name: {**asdict(t), "rate_hz": t.rate_hz, "monotonic": t.monotonic} for name, t in self.topics.items()
        }
        d.update(message_count=self.message_count, start_ns=self.start_ns, end_ns=self.end_ns,
                 duration_s=self.duration_s)
        return d


def _stats_for(schema: Schema | None, channel: Channel) -> TopicStats:
    return TopicStats(topic=channel.topic, schema_name=schema.name if schema else "",
                      schema_encoding=schema.encoding if schema else "", message_encoding=channel.message_encoding)


def index_mcap(path: str | os.PathLike[str], *, max_record_bytes: int = MAX_RECORD_BYTES) -> McapIndex:
    """Read ``path`` once with :class:`McapScan` and return its :class:`McapIndex`.

    Every registered channel is listed, including channels without messages. Header stamps are
    peeked (not fully decoded) for CDR channels whose ``ros2msg`` schema starts with a
    ``std_msgs/Header``; any other schema or encoding (service events, IDL, JSON) is indexed
    without stamps.

    Raises:
        RawLogError: reason ``unreadable`` (cannot be opened, not MCAP, truncated, CRC mismatch,
            corrupt compression or records), ``too_large`` (a record above ``max_record_bytes``) or
            ``undecodable`` (a message too short for the header its schema declares). The message
            names the file; the detail names the record, its byte offset and the problem.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        digest = sha256_file(path)
    except OSError as exc:
        raise RawLogError(path, "unreadable", f"cannot read file: {exc}") from exc
    scan = McapScan(path, max_record_bytes=max_record_bytes)
    topics: dict[str, TopicStats] = {}
    header_schema: dict[int, bool] = {}
    for schema, channel, message in scan.messages():
        st = topics.get(channel.topic)
        if st is None:
            st = topics[channel.topic] = _stats_for(schema, channel)
        n = st.message_count
        st.message_count += 1
        st.max_message_bytes = max(st.max_message_bytes, len(message.data))
        lt = message.log_time
        if st.last_log_time_ns is not None and lt < st.last_log_time_ns:
            st.log_time_backwards += 1
            st.first_backwards_at = n if st.first_backwards_at is None else st.first_backwards_at
        st.first_log_time_ns = lt if st.first_log_time_ns is None else min(st.first_log_time_ns, lt)
        st.last_log_time_ns = lt if st.last_log_time_ns is None else max(st.last_log_time_ns, lt)
        if schema is None or channel.message_encoding != "cdr" or schema.encoding != "ros2msg":
            continue
        has_header = header_schema.get(schema.id)
        if has_header is None:
            has_header = header_schema[schema.id] = schema_starts_with_header(schema.data.decode("utf-8", "replace"))
        if has_header:
            try:
                stamp = header_stamp_ns(message.data)
            except ValueError as exc:
                raise RawLogError(path, "undecodable", f"topic {channel.topic} message {n}: {exc}") from exc
            if st.last_stamp_ns is not None and stamp < st.last_stamp_ns:
                st.stamp_backwards += 1
                st.first_backwards_at = n if st.first_backwards_at is None else st.first_backwards_at
            st.first_stamp_ns = stamp if st.first_stamp_ns is None else min(st.first_stamp_ns, stamp)
            st.last_stamp_ns = stamp if st.last_stamp_ns is None else max(st.last_stamp_ns, stamp)
    for cid in sorted(scan.channels):  # channels registered without any message
        ch = scan.channels[cid]
        if ch.topic not in topics:
            topics[ch.topic] = _stats_for(scan.schemas.get(ch.schema_id), ch)
    assert scan.header is not None  # a complete iteration has read the Header
    return McapIndex(path=str(path), size_bytes=size, sha256=digest, profile=scan.header.profile,
                     library=scan.header.library, has_summary=scan.has_summary, topics=topics,
                     chunk_count=scan.chunk_count, chunks_without_crc=scan.chunks_without_crc)
