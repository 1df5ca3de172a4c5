"""MCAP bags (one file or a split bag, directly or in a rosbag2 directory), read with our strict reader.

Messages come from :func:`~hvla_platform.lib.formats.mcap.records.iter_indexed_messages` (strict
framing, CRCs, chunk index, log-time order within a file) and are decoded with
``mcap_ros2.decoder.DecoderFactory``, as :mod:`hvla_platform.lib.formats.mcap.streams` does — except the
contract's hot types (``JointState``, ``Float64MultiArray``, ``Float64``, ``CompressedImage``,
``Image``, ``Imu``, ``LocomotionCommand``) when their schema has the standard layout, which
:func:`~hvla_platform.lib.formats.mcap.fastcdr.fast_decoder` decodes to the same values faster. The files
of a split bag are merged by log time with :func:`heapq.merge` (equal log times: earlier file
first). Schema and channel ids are per file, so decoders are kept per file.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from mcap.exceptions import McapError
from mcap.records import Channel, Schema
from mcap_ros2.decoder import DecoderFactory

from hvla_platform.lib.formats.bags.definitions import Definition
from hvla_platform.lib.formats.bags.messages import BagMessage, RawMessage, TopicInfo, ros2_msgtype
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.fastcdr import fast_decoder
from hvla_platform.lib.formats.mcap.index import McapScan
from hvla_platform.lib.formats.mcap.records import iter_indexed_messages, read_summary_view

_DECODE_ERRORS = (McapError, ValueError, KeyError, IndexError, TypeError, struct.error, UnicodeDecodeError,
                  AssertionError, NotImplementedError)


def _msgtype(schema: Schema | None) -> str:
    return ros2_msgtype(schema.name) if schema is not None else ""


def _fast_decoder(channel: Channel, schema: Schema | None) -> Callable[[bytes], Any] | None:
    """:func:`~hvla_platform.lib.formats.mcap.fastcdr.fast_decoder` for a CDR channel with a
    ``ros2msg`` schema (equal to ``mcap_ros2``'s decoder, faster), else None."""
    if channel.message_encoding != "cdr" or schema is None or schema.encoding != "ros2msg":
        return None
    try:
        text = schema.data.decode()
    except UnicodeDecodeError:
        return None  # mcap_ros2 reports it
    return fast_decoder(schema.name, text)


class _Topic:
    """Accumulates one topic's facts over channels and files."""

    def __init__(self, topic: str):
        self.topic = topic
        self.types: list[str] = []
        self.count = 0
        self.first: int | None = None
        self.last: int | None = None
        self.times_known = True

    def add(self, msgtype: str, count: int, first: int | None, last: int | None, times_known: bool) -> None:
        if msgtype not in self.types:
            self.types.append(msgtype)
        self.count += count
        self.times_known &= times_known
        if first is not None:
            self.first = first if self.first is None else min(self.first, first)
        if last is not None:
            self.last = last if self.last is None else max(self.last, last)

    def info(self) -> TopicInfo:
        known = self.times_known and self.count > 0
        return TopicInfo(self.topic, " | ".join(self.types), self.count,
                         self.first if known else None, self.last if known else None)


class McapSource:
    """The MCAP data files of one bag, in read order (see the module docstring).

    Args:
        files: the ``.mcap`` files, in read order.
    """

    def __init__(self, files: Iterable[Path]):
        self.files = [Path(f) for f in files]

    # -- topics ---------------------------------------------------------------------------------
    def _file_topics(self, path: Path, acc: dict[str, _Topic]) -> None:
        summary = read_summary_view(path)
        stats = summary.statistics if summary is not None else None
        usable = (summary is not None and stats is not None and summary.channels
                  and stats.channel_count == len(summary.channels)
                  and (stats.channel_message_counts or stats.message_count == 0)
                  and all(c.schema_id == 0 or c.schema_id in summary.schemas for c in summary.channels.values()))
        if usable:
            assert summary is not None and stats is not None
            for cid in sorted(summary.channels):
                ch = summary.channels[cid]
                schema = summary.schemas.get(ch.schema_id)
                acc.setdefault(ch.topic, _Topic(ch.topic)).add(
                    _msgtype(schema), int(stats.channel_message_counts.get(cid, 0)), None, None, False)
            return
        # no (complete) summary: read the file once, without decoding
        scan = McapScan(path)
        per: dict[int, list[int]] = {}
        for _schema, channel, message in scan.messages():
            c = per.setdefault(channel.id, [0, message.log_time, message.log_time])
            c[0] += 1
            c[1] = min(c[1], message.log_time)
            c[2] = max(c[2], message.log_time)
        for cid in sorted(scan.channels):
            ch = scan.channels[cid]
            n, first, last = per.get(cid, [0, None, None])
            acc.setdefault(ch.topic, _Topic(ch.topic)).add(
                _msgtype(scan.schemas.get(ch.schema_id)), n, first, last, True)

    def topics(self) -> dict[str, TopicInfo]:
        """Topic → :class:`TopicInfo` over all files. Counts come from each file's summary
        statistics when complete (log-time bounds then unknown: None), else from one strict scan
        of the file (bounds known).

        Raises:
            RawLogError: ``unreadable`` / ``too_large`` (see
                :func:`~hvla_platform.lib.formats.mcap.records.read_summary_view`).
        """
        acc: dict[str, _Topic] = {}
        for path in self.files:
            self._file_topics(path, acc)
        return {t: acc[t].info() for t in sorted(acc)}

    # -- definitions ----------------------------------------------------------------------------
    def definitions(self) -> dict[str, Definition | None]:
        """Message type → the definition stored in the first file that has the type's schema
        (None for a schemaless channel's type, which cannot exist: those have no type)."""
        out: dict[str, Definition | None] = {}
        for path in self.files:
            summary = read_summary_view(path)
            schemas = dict(summary.schemas) if summary is not None else {}
            if summary is None or not schemas:
                scan = McapScan(path)
                for _ in scan.messages():
                    pass
                schemas = scan.schemas
            for s in schemas.values():
                fmt = "ros2idl" if s.encoding == "ros2idl" else "ros2msg"
                out.setdefault(ros2_msgtype(s.name), Definition(fmt, s.data.decode("utf-8", "replace")))
        return out

    # -- messages -------------------------------------------------------------------------------
    def _file_messages(self, index: int, topics: frozenset[str]
                       ) -> Iterator[tuple[RawMessage, Schema | None, Channel]]:
        types: dict[int, str] = {}  # channel id → message type (computed once per channel)
        for schema, channel, message in iter_indexed_messages(self.files[index], topics=topics):
            msgtype = types.get(channel.id)
            if msgtype is None:
                msgtype = types[channel.id] = _msgtype(schema)
            yield (RawMessage(channel.topic, msgtype, int(message.log_time), message.data, index), schema, channel)

    def raw_messages(self, topics: Iterable[str]) -> Iterator[tuple[RawMessage, Schema | None, Channel]]:
        """``(RawMessage, schema, channel)`` of the messages on ``topics``, merged over the files
        by log time (equal log times: earlier file first, then file order).

        Raises:
            RawLogError: ``unreadable`` / ``too_large`` (see ``iter_indexed_messages``).
        """
        wanted = frozenset(topics)
        streams = [self._file_messages(i, wanted) for i in range(len(self.files))]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=lambda item: item[0].log_ns)

    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage]:
        """Decoded messages on ``topics`` in log-time order (see :meth:`raw_messages`).

        Raises:
            RawLogError: as :meth:`raw_messages`, or ``undecodable`` (no ROS 2 CDR decoder for the
                channel, or a message does not decode), naming the topic, type and log time.
        """
        factories = [DecoderFactory() for _ in self.files]  # schema ids are per file
        decoders: dict[tuple[int, int], Callable[[bytes], Any]] = {}
        for raw, schema, channel in self.raw_messages(topics):
            path = self.files[raw.file_index]
            key = (raw.file_index, channel.id)
            decode = decoders.get(key)
            if decode is None:
                try:
                    decode = _fast_decoder(channel, schema) or factories[raw.file_index].decoder_for(
                        channel.message_encoding, schema)
                except Exception as exc:  # noqa: BLE001 - the vendored msg parser raises its own classes
                    raise RawLogError(path, "undecodable", f"topic {raw.topic}: schema {raw.msgtype!r} cannot be "
                                                           f"parsed: {type(exc).__name__}: {exc}") from exc
                if decode is None:
                    raise RawLogError(path, "undecodable", (
                        f"topic {raw.topic}: no decoder for message encoding {channel.message_encoding!r} with "
                        f"schema encoding {(schema.encoding if schema else 'none')!r} (ROS 2 CDR with a ros2msg "
                        "schema is read)"))
                decoders[key] = decode
            try:
                msg = decode(raw.data)
            except _DECODE_ERRORS as exc:
                raise RawLogError(path, "undecodable", f"topic {raw.topic} ({raw.msgtype}) message at log time "
                                                       f"{raw.log_ns}: {type(exc).__name__}: {exc}") from exc
            yield BagMessage(raw.topic, raw.msgtype, raw.log_ns, msg)


def log_time_span(path: Path) -> tuple[int, int] | None:
    """(first, last) log time of the MCAP at ``path``, ns, from its summary statistics, or from
    one strict scan when it has none; None for a file without messages.

    Raises:
        RawLogError: ``unreadable`` / ``too_large``.
    """
    summary = read_summary_view(path)
    stats = summary.statistics if summary is not None else None
    if stats is not None:
        return (int(stats.message_start_time), int(stats.message_end_time)) if stats.message_count else None
    first = last = None
    for _schema, _channel, message in McapScan(path).messages():
        first = message.log_time if first is None else min(first, message.log_time)
        last = message.log_time if last is None else max(last, message.log_time)
    return None if first is None else (int(first), int(last))


def check_split_parts(files: list[Path]) -> None:
    """Check that ``files`` are the parts of one split bag: each part's messages start at or after
    the previous parts' end (``ros2 bag record`` closes a file before opening the next). Two copies
    of one file, or two recordings side by side, are not.

    Raises:
        RawLogError: ``several_bags`` naming the two files and their log times, or
            ``unreadable`` / ``too_large`` (a summary cannot be read).
    """
    prev: tuple[Path, int] | None = None
    for path in files:
        span = log_time_span(path)
        if span is None:
            continue
        if prev is not None and span[0] < prev[1]:
            raise RawLogError(path.parent, "several_bags", (
                f"{path.name} starts at log time {span[0]}, before {prev[0].name} ends ({prev[1]}): the files are not "
                "the consecutive parts of one split bag"))
        if prev is None or span[1] >= prev[1]:
            prev = (path, span[1])
