"""Every way a ROS bag arrives (docs/recordings.md): one bag per recording folder, as MCAP files, a
rosbag2 directory (MCAP or sqlite3 storage, possibly split) or a ROS 1 ``.bag``.

Modules, one concern each:

* :mod:`~hvla_platform.lib.formats.bags.layout` — find the bag of a recording folder (names only);
* :mod:`~hvla_platform.lib.formats.bags.bag` — :func:`open_bag` / :class:`Bag`: topics and decoded
  messages, whatever the layout;
* :mod:`~hvla_platform.lib.formats.bags.mcap_source` — MCAP data, read with our strict reader;
* :mod:`~hvla_platform.lib.formats.bags.rosbags_source` — sqlite3 and ROS 1, read with ``rosbags``;
* :mod:`~hvla_platform.lib.formats.bags.definitions` — message definitions (the bag's, else known ones);
* :mod:`~hvla_platform.lib.formats.bags.index` — a full read of a bag: what raw ingest checks;
* :mod:`~hvla_platform.lib.formats.bags.export` — re-write a recording's bag in another format;
* :mod:`~hvla_platform.lib.formats.bags.profile_check` — how a bag maps to a robot profile.

Errors are :class:`~hvla_platform.lib.formats.mcap.errors.RawLogError` with a reason code.
"""

from hvla_platform.lib.formats.bags.bag import Bag, open_bag
from hvla_platform.lib.formats.bags.export import export_recording
from hvla_platform.lib.formats.bags.index import BagIndex, index_bag
from hvla_platform.lib.formats.bags.layout import BAG_KINDS, BagLayout, locate_bag
from hvla_platform.lib.formats.bags.messages import BagMessage, RawMessage, TopicInfo
from hvla_platform.lib.formats.bags.profile_check import (
    ProfileMatch,
    StreamMatch,
    best_matching_profile,
    check_bag_against_profile,
)

__all__ = ["BAG_KINDS", "Bag", "BagIndex", "BagLayout", "BagMessage", "ProfileMatch", "RawMessage", "StreamMatch",
           "TopicInfo", "best_matching_profile", "check_bag_against_profile", "export_recording", "index_bag",
           "locate_bag", "open_bag"]
