"""Index a whole bag, reading every message once: what raw ingest checks and keeps as ``index.json``.

The same per-topic facts as :class:`~hvla_platform.lib.formats.mcap.index.McapIndex` (counts, log
times, header stamps, monotonicity, largest message), for every layout:

* MCAP (kinds ``mcap`` / ``rosbag2_mcap``): each file strictly, with
  :func:`~hvla_platform.lib.formats.mcap.index.index_mcap` (CRCs, truncation, record limits, the
  summary agreeing with the data), merged over a split bag's files in order (which must follow
  each other in time: :func:`~hvla_platform.lib.formats.bags.mcap_source.check_split_parts`);
* sqlite3 (``rosbag2_sqlite3``): ``PRAGMA integrity_check`` on each ``.db3`` (read-only), then a
  full read of every message through ``rosbags``;
* ROS 1 (``ros1``): a full read of every message through ``rosbags`` (its index, every chunk
  decompressed).

For rosbag2 directories the ``message_count`` of ``metadata.yaml`` must equal what the files hold.
Header stamps are peeked (``std_msgs/Header`` first field, from the stored or known definition)
without decoding messages. For sqlite3 and ROS 1 "file order" is the stored log-time order, so
only header stamps can go backwards there.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hvla_platform.lib.core.lake import sha256_file
from hvla_platform.lib.formats.bags.bag import Bag
from hvla_platform.lib.formats.bags.definitions import known_definition
from hvla_platform.lib.formats.bags.layout import BagLayout
from hvla_platform.lib.formats.bags.mcap_source import check_split_parts
from hvla_platform.lib.formats.bags.messages import RawMessage, TopicInfo, ros2_msgtype
from hvla_platform.lib.formats.bags.rosbags_source import RosbagsSource
from hvla_platform.lib.formats.mcap.cdr import header_stamp_ns, schema_starts_with_header
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.mcap.index import McapIndex, TopicStats, index_mcap

__all__ = ["BagFileEntry", "BagIndex", "bag_sha256", "index_bag", "stamp_peeker"]


@dataclass
class BagFileEntry:
    """One file of a bag: ``path`` relative to the recording folder (``/``-separated)."""

    path: str
    size_bytes: int
    sha256: str


def bag_sha256(entries: list[BagFileEntry]) -> str:
    """The bag's content digest: the file's sha256 for a one-file bag (a recording's ``.mcap``,
    a ``.bag``), else the sha256 of the lines ``<relative path>\\0<sha256>\\n`` of its files in
    order (data files, then the rosbag2 ``metadata.yaml``)."""
    if len(entries) == 1:
        return entries[0].sha256
    return hashlib.sha256("".join(f"{e.path}\0{e.sha256}\n" for e in entries).encode()).hexdigest()


@dataclass
class BagIndex(McapIndex):
    """What ingest knows about one bag after reading it once: the fields (and totals) of
    :class:`~hvla_platform.lib.formats.mcap.index.McapIndex`, plus ``kind`` and ``files``.

    Attributes:
        path: the bag as read (local; ingest replaces it by the lake key in ``index.json``).
        kind: the bag's kind (``mcap``, ``rosbag2_mcap``, ``rosbag2_sqlite3``, ``ros1``).
        size_bytes: total bytes of the bag's files.
        sha256: :func:`bag_sha256`.
        profile / library: the MCAP header's (first file), ``ros2`` / ``ros1`` and the storage
            otherwise.
        has_summary: every MCAP file has a summary section (True for sqlite3 / ROS 1: indexed).
        topics: per-topic statistics (times in ns since the Unix epoch).
        chunk_count / chunks_without_crc: MCAP chunks read / without a CRC (0 otherwise).
        files: the bag's files with sizes and sha256, paths relative to the recording folder.
    """

    kind: str = ""
    files: list[BagFileEntry] = field(default_factory=list)

    def describe(self) -> str:
        """One line saying what was read (the ``readable`` check's detail)."""
        if self.kind in ("mcap", "rosbag2_mcap"):
            where = "" if self.kind == "mcap" and len(self.files) == 1 else f"{self.kind}, {len(self.data_files)} file(s): "
            return (f"{where}{self.message_count} messages on {len(self.topics)} topics, {self.chunk_count} chunk(s) "
                    f"({self.chunks_without_crc} without a CRC to check), "
                    f"{'with summary' if self.has_summary else 'no summary: read by scanning'}")
        extra = ", PRAGMA integrity_check ok" if self.kind == "rosbag2_sqlite3" else ""
        return (f"{self.kind}, {len(self.data_files)} file(s): {self.message_count} messages on "
                f"{len(self.topics)} topics, every message read{extra}")

    def topic_infos(self) -> dict[str, TopicInfo]:
        """Topic → :class:`~hvla_platform.lib.formats.bags.messages.TopicInfo` (type, count and
        log-time bounds as read), what :func:`~hvla_platform.lib.formats.bags.profile_check.check_bag_against_profile`
        compares with a profile."""
        return {name: TopicInfo(name, t.schema_name, t.message_count, t.first_log_time_ns, t.last_log_time_ns)
                for name, t in self.topics.items()}

    @property
    def data_files(self) -> list[BagFileEntry]:
        """The data files (without the rosbag2 ``metadata.yaml``)."""
        return [f for f in self.files if not f.path.endswith("metadata.yaml")]


def _entries(layout: BagLayout, known: dict[Path, str] | None = None) -> list[BagFileEntry]:
    out = []
    for p in layout.all_files:
        try:
            size = p.stat().st_size
            digest = (known or {}).get(p) or sha256_file(p)
        except OSError as exc:
            raise RawLogError(p, "unreadable", f"cannot read file: {exc}") from exc
        out.append(BagFileEntry(layout.relpath(p), size, digest))
    return out


def _merge_stats(acc: dict[str, TopicStats], st: TopicStats) -> None:
    """Add one file's statistics of a topic to the bag's (files in read order)."""
    have = acc.get(st.topic)
    if have is None:
        acc[st.topic] = TopicStats(**asdict(st))
        return
    if have.schema_name != st.schema_name:
        have.schema_name = " | ".join(dict.fromkeys(have.schema_name.split(" | ") + [st.schema_name]))
    base = have.message_count
    # a later file starting before the earlier files end is a step backwards at the boundary
    if st.message_count and have.last_log_time_ns is not None and st.first_log_time_ns is not None \
            and st.first_log_time_ns < have.last_log_time_ns:
        have.log_time_backwards += 1
        have.first_backwards_at = base if have.first_backwards_at is None else have.first_backwards_at
    if st.message_count and have.last_stamp_ns is not None and st.first_stamp_ns is not None \
            and st.first_stamp_ns < have.last_stamp_ns:
        have.stamp_backwards += 1
        have.first_backwards_at = base if have.first_backwards_at is None else have.first_backwards_at
    have.message_count += st.message_count
    have.log_time_backwards += st.log_time_backwards
    have.stamp_backwards += st.stamp_backwards
    if st.first_backwards_at is not None and have.first_backwards_at is None:
        have.first_backwards_at = base + st.first_backwards_at
    have.max_message_bytes = max(have.max_message_bytes, st.max_message_bytes)
    for lo, hi in (("first_log_time_ns", "last_log_time_ns"), ("first_stamp_ns", "last_stamp_ns")):
        a, b = getattr(st, lo), getattr(st, hi)
        if a is not None:
            setattr(have, lo, a if getattr(have, lo) is None else min(getattr(have, lo), a))
        if b is not None:
            setattr(have, hi, b if getattr(have, hi) is None else max(getattr(have, hi), b))


def _index_mcap_bag(bag: Bag) -> BagIndex:
    layout = bag.layout
    if len(layout.files) > 1:
        check_split_parts(list(layout.files))
    topics: dict[str, TopicStats] = {}
    digests: dict[Path, str] = {}
    chunks = no_crc = 0
    has_summary = True
    profile = library = ""
    for i, f in enumerate(layout.files):
        idx = index_mcap(f)
        digests[f] = idx.sha256
        if i == 0:
            profile, library = idx.profile, idx.library
        chunks += idx.chunk_count
        no_crc += idx.chunks_without_crc
        has_summary &= idx.has_summary
        for st in idx.topics.values():
            _merge_stats(topics, st)
    entries = _entries(layout, digests)
    return BagIndex(path=str(layout.display), kind=layout.kind, size_bytes=sum(e.size_bytes for e in entries),
                    sha256=bag_sha256(entries), profile=profile, library=library, has_summary=has_summary,
                    topics=dict(sorted(topics.items())), chunk_count=chunks, chunks_without_crc=no_crc, files=entries)


def _integrity_check(path: Path) -> None:
    """``PRAGMA integrity_check`` on a ``.db3``, opened read-only (the file is never written)."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise RawLogError(path, "unreadable", f"sqlite3: {type(exc).__name__}: {exc}") from exc
    if rows != ["ok"]:
        shown = "; ".join(str(r) for r in rows[:3]) + (f"; ... {len(rows)} problems" if len(rows) > 3 else "")
        raise RawLogError(path, "unreadable", f"PRAGMA integrity_check: {shown}")


def _ros1_stamp(data: bytes) -> int:
    """The stamp of a ROS 1 message starting with a ``std_msgs/Header`` (``uint32 seq``, ``time stamp``)."""
    if len(data) < 12:
        raise ValueError(f"ROS 1 buffer of {len(data)} bytes is too short for a header stamp")
    _seq, sec, nsec = struct.unpack_from("<III", data, 0)
    return sec * 1_000_000_000 + nsec


def stamp_peeker(bag: Bag) -> Callable[[RawMessage], int | None]:
    """A function giving a stored message's ``header.stamp`` (ns since the Unix epoch) without
    decoding it, None for types whose first field is not a ``std_msgs/Header`` (judged from the
    definition stored in the bag, else the known one; types without either have no stamp).

    The function raises ``ValueError`` for a message too short for its header.

    Raises:
        RawLogError: ``unreadable`` (the bag's definitions cannot be read).
    """
    ros1 = bag.kind == "ros1"
    has_header: dict[str, bool] = {}
    for msgtype, d in bag.definitions().items():
        d = d or (None if ros1 else known_definition(msgtype))
        has_header[msgtype] = d is not None and d.format != "ros2idl" and schema_starts_with_header(d.text)
    peek = _ros1_stamp if ros1 else header_stamp_ns

    def stamp(raw: RawMessage) -> int | None:
        return peek(raw.data) if has_header.get(raw.msgtype) else None

    return stamp


def _index_rosbags_bag(bag: Bag) -> BagIndex:
    layout = bag.layout
    src = bag.source
    assert isinstance(src, RosbagsSource)
    if layout.kind == "rosbag2_sqlite3":
        for f in layout.files:
            _integrity_check(f)
    stored = src.stored_definitions()
    peek = stamp_peeker(bag)
    encoding = "ros1" if src.ros1 else "cdr"
    topics: dict[str, TopicStats] = {}
    for i, path in enumerate(layout.files):
        file_topics: dict[str, TopicStats] = {}
        with src.open_file(i) as reader:
            for c in reader.connections:
                d = stored.get(ros2_msgtype(c.msgtype))
                file_topics.setdefault(c.topic, TopicStats(topic=c.topic, schema_name=ros2_msgtype(c.msgtype),
                                                           schema_encoding=d.format if d else "",
                                                           message_encoding=encoding))
        for raw, _conn in src.file_messages(i, None):
            st = file_topics[raw.topic]
            n = st.observe(len(raw.data), raw.log_ns)
            try:
                stamp = peek(raw)
            except ValueError as exc:
                raise RawLogError(path, "undecodable", f"topic {raw.topic} message {n}: {exc}") from exc
            if stamp is None:
                continue
            st.observe_stamp(n, stamp)
        for st in file_topics.values():
            _merge_stats(topics, st)
    for name, info in bag.topics().items():  # topics metadata.yaml lists without any connection
        topics.setdefault(name, TopicStats(topic=name, schema_name=info.msgtype, schema_encoding="",
                                           message_encoding=encoding))
    entries = _entries(layout)
    storage = "sqlite3" if layout.kind == "rosbag2_sqlite3" else "rosbag v2.0"
    return BagIndex(path=str(layout.display), kind=layout.kind, size_bytes=sum(e.size_bytes for e in entries),
                    sha256=bag_sha256(entries), profile="ros1" if src.ros1 else "ros2", library=f"rosbags ({storage})",
                    has_summary=True, topics=dict(sorted(topics.items())), files=entries)


def _check_rosbag2_count(layout: BagLayout, index: BagIndex) -> None:
    info = layout.rosbag2_metadata
    if info is None or layout.metadata_file is None:
        return
    declared = info.get("message_count")
    if isinstance(declared, int) and declared != index.message_count:
        raise RawLogError(layout.metadata_file, "unreadable",
                          f"message_count says {declared} messages, the bag's files hold {index.message_count}")


def index_bag(bag: Bag) -> BagIndex:
    """Read every message of ``bag`` once and return its :class:`BagIndex` (see the module docstring).

    Raises:
        RawLogError: ``unreadable`` (a file cannot be read, is truncated or corrupt, fails
            ``PRAGMA integrity_check``, or disagrees with the rosbag2 ``metadata.yaml``),
            ``several_bags`` (MCAP parts that overlap in time),
            ``too_large`` (an MCAP record above the limit) or ``undecodable`` (a message too short
            for the header its type declares). The message names the file.
    """
    if bag.kind in ("mcap", "rosbag2_mcap"):
        index = _index_mcap_bag(bag)
    else:
        index = _index_rosbags_bag(bag)
    _check_rosbag2_count(bag.layout, index)
    return index
