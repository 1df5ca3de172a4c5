"""Index an MCAP file: topics, schemas, message counts, time ranges, monotonicity, size, sha256.

The file is read once, linearly, in file order (so "timestamps went backwards" means what the
recorder wrote, not what a log-time-ordered reader would present). Files without a summary or
index are read by scanning, like any other (mcap's reader falls back to a linear scan).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mcap.exceptions import McapError
from mcap.reader import make_reader

from hvla_platform.lib.rawlog.cdr import header_stamp_ns, schema_starts_with_header
from hvla_platform.lib.rawlog.errors import RawLogError
from hvla_platform.lib.storage.lake import sha256_file


@dataclass
class TopicStats:
    """Per-topic statistics of one MCAP file.

    Times are ns since the Unix epoch (ROS time). ``*_stamp_*`` fields are the ``std_msgs/Header``
    stamps when the message type has one, else ``None``.
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
    """What ingest knows about one MCAP file after reading it once."""

    path: str
    size_bytes: int
    sha256: str
    profile: str
    library: str
    has_summary: bool
    topics: dict[str, TopicStats] = field(default_factory=dict)

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


def index_mcap(path: str | os.PathLike[str]) -> McapIndex:
    """Read ``path`` once and return its :class:`McapIndex`.

    Raises:
        RawLogError: reason ``unreadable`` (not MCAP, truncated, bad CRC, bad compression...),
            with the underlying error in the message.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RawLogError(path, "unreadable", f"cannot stat file: {exc}") from exc
    digest = sha256_file(path)
    header_schema: dict[int, bool] = {}
    try:
        with open(path, "rb") as f:
            reader = make_reader(f)
            header = reader.get_header()
            summary = reader.get_summary()
            idx = McapIndex(path=str(path), size_bytes=size, sha256=digest, profile=header.profile,
                            library=header.library, has_summary=summary is not None)
            for schema, channel, message in reader.iter_messages(log_time_order=False):
                st = idx.topics.get(channel.topic)
                if st is None:
                    st = TopicStats(
                        topic=channel.topic,
                        schema_name=schema.name if schema else "",
                        schema_encoding=schema.encoding if schema else "",
                        message_encoding=channel.message_encoding,
                    )
                    idx.topics[channel.topic] = st
                st.message_count += 1
                st.max_message_bytes = max(st.max_message_bytes, len(message.data))
                lt = message.log_time
                if st.last_log_time_ns is not None and lt < st.last_log_time_ns:
                    st.log_time_backwards += 1
                st.first_log_time_ns = lt if st.first_log_time_ns is None else min(st.first_log_time_ns, lt)
                st.last_log_time_ns = lt if st.last_log_time_ns is None else max(st.last_log_time_ns, lt)
                if schema is not None and channel.message_encoding == "cdr":
                    has_header = header_schema.get(schema.id)
                    if has_header is None:
                        has_header = schema_starts_with_header(schema.data.decode("utf-8", "replace"))
                        header_schema[schema.id] = has_header
                    if has_header:
                        try:
                            stamp = header_stamp_ns(message.data)
                        except ValueError as exc:
                            raise RawLogError(path, "undecodable", f"topic {channel.topic}: {exc}") from exc
                        if st.last_stamp_ns is not None and stamp < st.last_stamp_ns:
                            st.stamp_backwards += 1
                        st.first_stamp_ns = stamp if st.first_stamp_ns is None else min(st.first_stamp_ns, stamp)
                        st.last_stamp_ns = stamp if st.last_stamp_ns is None else max(st.last_stamp_ns, stamp)
    except RawLogError:
        raise
    except (McapError, EOFError, ValueError, KeyError, OSError, RuntimeError) as exc:
        raise RawLogError(path, "unreadable", f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # compression libraries raise their own error types (zstd, lz4)
        if type(exc).__module__.split(".")[0] in ("zstandard", "lz4", "_lz4", "struct"):
            raise RawLogError(path, "unreadable", f"{type(exc).__name__}: {exc}") from exc
        raise
    return idx
