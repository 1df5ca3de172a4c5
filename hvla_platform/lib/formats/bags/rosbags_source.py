"""rosbag2 sqlite3 (``.db3``) and ROS 1 (``.bag``) bags, read with the ``rosbags`` library.

Each data file is opened with its own ``rosbags`` storage reader (``Sqlite3Reader`` /
``rosbag1.Reader``, read-only); messages of a file come in log-time order (sqlite3: ``ORDER BY
timestamp``; ROS 1: the bag's index) and the files of a split bag are merged by log time with
:func:`heapq.merge` (equal log times: earlier file first). Messages are decoded with a ``rosbags``
typestore built from the definitions stored in the bag, else the known registry
(:mod:`hvla_platform.lib.formats.bags.definitions`). ROS 1 types come out in ROS 2 naming
(``sensor_msgs/msg/JointState``); a ROS 1 ``std_msgs/Header`` has ``seq`` and ``stamp.sec`` /
``stamp.nanosec`` like ROS 2's.
"""

from __future__ import annotations

import contextlib
import heapq
import sqlite3
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import apsw
from rosbags.interfaces import ConnectionExtRosbag2, MessageDefinitionFormat
from rosbags.rosbag1 import Reader as Ros1Reader
from rosbags.rosbag1 import ReaderError as Ros1ReaderError
from rosbags.rosbag2.errors import ReaderError as Ros2ReaderError
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader
from rosbags.serde import SerdeError

from hvla_platform.lib.formats.bags.definitions import Definition, TypeRegistry
from hvla_platform.lib.formats.bags.messages import BagMessage, RawMessage, TopicInfo, ros2_msgtype
from hvla_platform.lib.formats.mcap.errors import RawLogError

#: What the ``rosbags`` readers raise on a damaged file (besides their ReaderError): the sqlite
#: driver's errors, and the struct / assertion / decompression errors of the ROS 1 parser.
READ_ERRORS = (Ros1ReaderError, Ros2ReaderError, apsw.Error, sqlite3.Error, struct.error, OSError, EOFError,
               AssertionError, KeyError, ValueError, IndexError, RuntimeError)


class RosbagsSource:
    """The data files of one sqlite3 or ROS 1 bag, in read order (see the module docstring).

    Args:
        kind: ``rosbag2_sqlite3`` or ``ros1``.
        files: the ``.db3`` / ``.bag`` files, in read order.
        rosbag2_metadata: the bag's ``rosbag2_bagfile_information`` (sqlite3 in a bag directory),
            whose topic list adds topics registered without messages; None otherwise.
        display: the path named in errors about the bag as a whole.
    """

    def __init__(self, kind: str, files: Iterable[Path], *, rosbag2_metadata: dict[str, Any] | None = None,
                 display: Path | None = None):
        if kind not in ("rosbag2_sqlite3", "ros1"):
            raise ValueError(f"RosbagsSource reads rosbag2_sqlite3 or ros1 bags, not {kind!r}")
        self.kind = kind
        self.files = [Path(f) for f in files]
        self.rosbag2_metadata = rosbag2_metadata
        self.display = display or self.files[0]
        self._registry: TypeRegistry | None = None

    @property
    def ros1(self) -> bool:
        """True for a ROS 1 bag (ROS 1 serialisation instead of CDR)."""
        return self.kind == "ros1"

    @contextlib.contextmanager
    def open_file(self, index: int) -> Iterator[Any]:
        """The opened ``rosbags`` reader of data file ``index`` (closed on exit).

        Raises:
            RawLogError: ``unreadable``: the file cannot be opened as this kind of bag.
        """
        path = self.files[index]
        reader = Ros1Reader(path) if self.ros1 else Sqlite3Reader(path)
        try:
            reader.open()
        except READ_ERRORS as exc:
            raise RawLogError(path, "unreadable", f"cannot open as {self.kind}: {type(exc).__name__}: {exc}") from exc
        try:
            yield reader
        finally:
            with contextlib.suppress(*READ_ERRORS):
                reader.close()

    # -- topics ---------------------------------------------------------------------------------
    def _bounds(self, reader: Any) -> dict[int, tuple[int, int]]:
        if self.ros1:
            return {cid: (idx[0].time, idx[-1].time) for cid, idx in reader.indexes.items() if idx}
        rows = reader.dbconn.execute("SELECT topic_id, MIN(timestamp), MAX(timestamp) FROM messages GROUP BY topic_id")
        return {int(cid): (int(lo), int(hi)) for cid, lo, hi in rows}

    def topics(self) -> dict[str, TopicInfo]:
        """Topic → :class:`TopicInfo` over all files (counts and log-time bounds from the files'
        tables / indexes, without reading message data).

        Raises:
            RawLogError: ``unreadable``.
        """
        acc: dict[str, dict[str, Any]] = {}
        for i, path in enumerate(self.files):
            with self.open_file(i) as reader:
                try:
                    bounds = self._bounds(reader)
                except READ_ERRORS as exc:
                    raise RawLogError(path, "unreadable", f"{type(exc).__name__}: {exc}") from exc
                for c in reader.connections:
                    t = acc.setdefault(c.topic, {"types": [], "count": 0, "first": None, "last": None})
                    msgtype = ros2_msgtype(c.msgtype)
                    if msgtype not in t["types"]:
                        t["types"].append(msgtype)
                    t["count"] += int(c.msgcount)
                    if c.id in bounds:
                        lo, hi = bounds[c.id]
                        t["first"] = lo if t["first"] is None else min(t["first"], lo)
                        t["last"] = hi if t["last"] is None else max(t["last"], hi)
        for entry in (self.rosbag2_metadata or {}).get("topics_with_message_count") or []:
            meta = entry.get("topic_metadata") or {} if isinstance(entry, dict) else {}
            name, typ = meta.get("name"), meta.get("type")
            if isinstance(name, str) and isinstance(typ, str) and name not in acc:
                acc[name] = {"types": [ros2_msgtype(typ)], "count": 0, "first": None, "last": None}
        return {name: TopicInfo(name, " | ".join(t["types"]), t["count"], t["first"], t["last"])
                for name, t in sorted(acc.items())}

    # -- definitions ----------------------------------------------------------------------------
    def stored_definitions(self) -> dict[str, Definition | None]:
        """Message type → the definition the bag stores (None: the bag stores none for the type).

        Raises:
            RawLogError: ``unreadable``.
        """
        out: dict[str, Definition | None] = {}
        for i in range(len(self.files)):
            with self.open_file(i) as reader:
                for c in reader.connections:
                    msgtype = ros2_msgtype(c.msgtype)
                    if c.msgdef.format == MessageDefinitionFormat.NONE:
                        out.setdefault(msgtype, None)
                        continue
                    fmt = "ros1msg" if self.ros1 else ("ros2idl" if c.msgdef.format == MessageDefinitionFormat.IDL
                                                        else "ros2msg")
                    if out.get(msgtype) is None:
                        out[msgtype] = Definition(fmt, c.msgdef.data)
        return out

    @property
    def registry(self) -> TypeRegistry:
        """The bag's :class:`TypeRegistry` (built once).

        Raises:
            RawLogError: ``unreadable``.
        """
        if self._registry is None:
            self._registry = TypeRegistry(self.display, self.stored_definitions(), ros1=self.ros1)
        return self._registry

    # -- messages -------------------------------------------------------------------------------
    def file_messages(self, index: int, topics: frozenset[str] | None) -> Iterator[tuple[RawMessage, Any]]:
        """``(RawMessage, connection)`` of data file ``index`` in log-time order (``topics`` None:
        every topic).

        Raises:
            RawLogError: ``unreadable`` (the file is damaged; raised when reached), or
                ``undecodable`` (a rosbag2 connection whose serialization format is not CDR).
        """
        path = self.files[index]
        with self.open_file(index) as reader:
            conns = [c for c in reader.connections if topics is None or c.topic in topics]
            for c in conns:
                if isinstance(c.ext, ConnectionExtRosbag2) and c.ext.serialization_format != "cdr":
                    raise RawLogError(path, "undecodable", f"topic {c.topic}: serialization format "
                                                           f"{c.ext.serialization_format!r} is not cdr")
            if not conns:
                return
            n = 0
            try:
                for conn, log_ns, data in reader.messages(conns):
                    n += 1
                    yield RawMessage(conn.topic, ros2_msgtype(conn.msgtype), int(log_ns), bytes(data), index), conn
            except READ_ERRORS as exc:
                raise RawLogError(path, "unreadable", f"after {n} message(s): {type(exc).__name__}: {exc}") from exc

    def raw_messages(self, topics: Iterable[str]) -> Iterator[RawMessage]:
        """Messages on ``topics`` as stored, merged over the files by log time.

        Raises:
            RawLogError: as :meth:`file_messages`.
        """
        wanted = frozenset(topics)
        streams = [(raw for raw, _ in self.file_messages(i, wanted)) for i in range(len(self.files))]
        if len(streams) == 1:
            return streams[0]
        return heapq.merge(*streams, key=lambda raw: raw.log_ns)

    def decode(self, raw: RawMessage) -> Any:
        """Decode one stored message with the bag's typestore.

        Raises:
            RawLogError: ``undecodable``, naming the topic, type and log time.
        """
        self.registry.require(raw.topic, raw.msgtype)
        ts = self.registry.typestore
        try:
            if self.ros1:
                return ts.deserialize_ros1(raw.data, raw.msgtype)
            return ts.deserialize_cdr(raw.data, raw.msgtype)
        except (SerdeError, struct.error, ValueError, KeyError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise RawLogError(self.files[raw.file_index], "undecodable", (
                f"topic {raw.topic} ({raw.msgtype}) message at log time {raw.log_ns}: {type(exc).__name__}: {exc}")) from exc

    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage]:
        """Decoded messages on ``topics`` in log-time order.

        Raises:
            RawLogError: ``unreadable`` or ``undecodable`` (a type nobody defines is reported
                before any message is read, naming the topic and type).
        """
        wanted = frozenset(topics)
        for name, info in self.topics().items():
            if name in wanted and info.message_count:
                for msgtype in info.msgtype.split(" | "):
                    self.registry.require(name, msgtype)
        for raw in self.raw_messages(wanted):
            yield BagMessage(raw.topic, raw.msgtype, raw.log_ns, self.decode(raw))
