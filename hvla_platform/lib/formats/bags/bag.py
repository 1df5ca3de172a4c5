"""One bag, whatever its layout: :func:`open_bag` and :class:`Bag`.

MCAP data (a recording's ``*.mcap`` files, or a rosbag2 directory with MCAP storage) is read with
our strict MCAP reader (:mod:`~hvla_platform.lib.formats.bags.mcap_source`); sqlite3 and ROS 1 bags
with the ``rosbags`` readers (:mod:`~hvla_platform.lib.formats.bags.rosbags_source`). Either way a
caller sees the same topics (types in ROS 2 form) and the same decoded messages, merged across the
files of a split bag in log-time order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path

from hvla_platform.lib.formats.bags.definitions import Definition
from hvla_platform.lib.formats.bags.layout import BagLayout, locate_bag
from hvla_platform.lib.formats.bags.mcap_source import McapSource
from hvla_platform.lib.formats.bags.messages import BagMessage, RawMessage, TopicInfo
from hvla_platform.lib.formats.bags.rosbags_source import RosbagsSource


class Bag:
    """A located bag (see :func:`open_bag`). Read-only: nothing here ever writes to its files.

    Attributes:
        layout: where its files are (:class:`~hvla_platform.lib.formats.bags.layout.BagLayout`).
    """

    def __init__(self, layout: BagLayout):
        self.layout = layout
        if layout.kind in ("mcap", "rosbag2_mcap"):
            self._source: McapSource | RosbagsSource = McapSource(layout.files)
        else:
            self._source = RosbagsSource(layout.kind, layout.files, rosbag2_metadata=layout.rosbag2_metadata,
                                         display=layout.display)

    def __repr__(self) -> str:
        return f"Bag(kind={self.kind!r}, files={[str(f) for f in self.files]})"

    @property
    def kind(self) -> str:
        """``mcap``, ``rosbag2_mcap``, ``rosbag2_sqlite3`` or ``ros1``."""
        return self.layout.kind

    @property
    def files(self) -> list[Path]:
        """The data files (``.mcap`` / ``.db3`` / ``.bag``), in read order."""
        return list(self.layout.files)

    @property
    def source(self) -> McapSource | RosbagsSource:
        """The reader behind this bag (MCAP: :class:`McapSource`; sqlite3 / ROS 1: :class:`RosbagsSource`)."""
        return self._source

    @cached_property
    def _topics(self) -> dict[str, TopicInfo]:
        return self._source.topics()

    def topics(self) -> dict[str, TopicInfo]:
        """Topic → :class:`~hvla_platform.lib.formats.bags.messages.TopicInfo` (type in ROS 2 form,
        message count over all files, log-time bounds when cheaply known), sorted by topic. Read
        once per :class:`Bag`; no message is decoded.

        Raises:
            RawLogError: ``unreadable`` / ``too_large`` (a file cannot be opened or its summary /
                tables read).
        """
        return dict(self._topics)

    def messages(self, topics: Iterable[str]) -> Iterator[BagMessage]:
        """Decoded messages on ``topics`` only, merged across split files in log-time order
        (equal log times: earlier file first, then stored order). A topic the bag does not have
        yields nothing: check :meth:`topics` first.

        Raises:
            RawLogError: ``unreadable`` / ``too_large`` (damaged file, raised when reached) or
                ``undecodable`` (a message does not decode, or its type is defined neither in the
                bag nor in the known definitions: the message names the topic and the type).
        """
        return self._source.messages(list(topics))

    def raw_messages(self, topics: Iterable[str]) -> Iterator[RawMessage]:
        """Messages on ``topics`` as stored (CDR; ROS 1 serialisation for ``ros1``), in the order of
        :meth:`messages`.

        Raises:
            RawLogError: ``unreadable`` / ``too_large``.
        """
        if isinstance(self._source, McapSource):
            return (raw for raw, _schema, _channel in self._source.raw_messages(list(topics)))
        return self._source.raw_messages(list(topics))

    def definitions(self) -> dict[str, Definition | None]:
        """Message type → the definition stored in the bag (None: the bag stores none for it).

        Raises:
            RawLogError: ``unreadable``.
        """
        if isinstance(self._source, McapSource):
            return self._source.definitions()
        return self._source.stored_definitions()


def open_bag(path: str | os.PathLike[str]) -> Bag:
    """The one bag of a recording folder (or ``path`` taken as a bag): see
    :func:`~hvla_platform.lib.formats.bags.layout.locate_bag` and docs/recordings.md.

    Only names and the rosbag2 ``metadata.yaml`` are read here; files are opened by the
    :class:`Bag`'s methods.

    Raises:
        RawLogError: ``no_bag``, ``several_bags``, ``unsupported_storage``, ``incomplete_bag`` or
            ``unreadable`` (one line naming the path).
    """
    return Bag(locate_bag(path))
