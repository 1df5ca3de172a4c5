"""Index an MCAP file: topics, schemas, message counts, time ranges, monotonicity, size, sha256.

The file is read once, linearly, in file order, by :class:`McapScan` (so "timestamps went
backwards" means what the recorder wrote, not what a log-time-ordered reader would present).
Files without a summary or index are read by scanning, like any other: the summary is never
needed to find messages.

Why not ``mcap.reader.make_reader``: with its defaults (mcap 1.6) it validates **no** CRC (a byte
flipped inside a compressed chunk is read as good data), its linear fallback for files without a
summary drops ``validate_crcs`` even when asked, its record-length limit is 4 GiB and it trusts a
chunk's declared uncompressed size (a small zstd chunk can ask for gigabytes). :class:`McapScan`
reads records with the project's strict framing (:mod:`hvla_platform.lib.formats.mcap.framing`: CRCs,
truncation offsets, :data:`MAX_RECORD_BYTES`, chunk records by length; the same framing the MCAP
conformance suite checks through :mod:`~hvla_platform.lib.formats.mcap.records`) and adds the checks
that need the whole file: Schema/Channel ids defined once and before use, and the summary's
message count agreeing with the data section.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mcap.records import Channel, Footer, Header, Message, Schema, Statistics

from hvla_platform.lib.formats.mcap.cdr import header_stamp_ns, schema_starts_with_header
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.framing import MAX_RECORD_BYTES, LinearScan
from hvla_platform.lib.core.lake import sha256_file

__all__ = ["MAX_RECORD_BYTES", "McapIndex", "McapScan", "TopicStats", "index_mcap"]


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
        self._scan = LinearScan(path, max_record_bytes=max_record_bytes)

    @property
    def chunk_count(self) -> int:
        """Chunks read so far."""
        return self._scan.chunk_count

    @property
    def chunks_without_crc(self) -> int:
        """Chunks read so far whose writer stored no CRC (they could not be checked)."""
        return self._scan.chunks_without_crc

    def _err(self, reason: str, detail: str) -> RawLogError:
        return RawLogError(self.path, reason, detail)

    def _register(self, record: Schema | Channel, where: str) -> None:
        if isinstance(record, Schema):
            old = self.schemas.setdefault(record.id, record)
            if old != record:
                raise self._err("unreadable", f"Schema id {record.id} {where} redefines {old.name!r} as {record.name!r}")
            return
        ch = record
        if ch.schema_id != 0 and ch.schema_id not in self.schemas:
            raise self._err("unreadable", f"Channel {ch.topic!r} (id {ch.id}) {where} refers to schema id "
                                          f"{ch.schema_id}, which no earlier Schema record defines")
        old = self.channels.setdefault(ch.id, ch)
        if old != ch:
            raise self._err("unreadable", f"Channel id {ch.id} {where} redefines {old.topic!r} as {ch.topic!r}")

    def _message(self, msg: Message, where: str) -> tuple[Schema | None, Channel, Message]:
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
        for where, record in self._scan.records():
            if isinstance(record, Message):
                yield self._message(record, where)
            elif isinstance(record, (Schema, Channel)):
                self._register(record, where)
            elif isinstance(record, Header):
                self.header = record
            elif isinstance(record, Statistics):
                self.statistics = record
            elif isinstance(record, Footer):
                self.footer = record
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

    def observe(self, size_bytes: int, log_ns: int) -> int:
        """Count one message of ``size_bytes`` logged at ``log_ns`` (ns); return its index in the topic."""
        n = self.message_count
        self.message_count += 1
        self.max_message_bytes = max(self.max_message_bytes, size_bytes)
        if self.last_log_time_ns is not None and log_ns < self.last_log_time_ns:
            self.log_time_backwards += 1
            self.first_backwards_at = n if self.first_backwards_at is None else self.first_backwards_at
        self.first_log_time_ns = log_ns if self.first_log_time_ns is None else min(self.first_log_time_ns, log_ns)
        self.last_log_time_ns = log_ns if self.last_log_time_ns is None else max(self.last_log_time_ns, log_ns)
        return n

    def observe_stamp(self, n: int, stamp_ns: int) -> None:
        """Record message ``n``'s header stamp (ns)."""
        if self.last_stamp_ns is not None and stamp_ns < self.last_stamp_ns:
            self.stamp_backwards += 1
            self.first_backwards_at = n if self.first_backwards_at is None else self.first_backwards_at
        self.first_stamp_ns = stamp_ns if self.first_stamp_ns is None else min(self.first_stamp_ns, stamp_ns)
        self.last_stamp_ns = stamp_ns if self.last_stamp_ns is None else max(self.last_stamp_ns, stamp_ns)


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
        n = st.observe(len(message.data), message.log_time)
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
            st.observe_stamp(n, stamp)
    for cid in sorted(scan.channels):  # channels registered without any message
        ch = scan.channels[cid]
        if ch.topic not in topics:
            topics[ch.topic] = _stats_for(scan.schemas.get(ch.schema_id), ch)
    assert scan.header is not None  # a complete iteration has read the Header
    return McapIndex(path=str(path), size_bytes=size, sha256=digest, profile=scan.header.profile,
                     library=scan.header.library, has_summary=scan.has_summary, topics=topics,
                     chunk_count=scan.chunk_count, chunks_without_crc=scan.chunks_without_crc)
