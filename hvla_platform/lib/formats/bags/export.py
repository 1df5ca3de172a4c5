"""Re-write a recording's bag in another storage format (for tests and tools).

:func:`export_recording` reads a recording's bag with :func:`~hvla_platform.lib.formats.bags.bag.open_bag`
and writes the same messages (same topics, types, log times and serialized bytes; ROS 1 data
converted from CDR by ``rosbags``) with the ``rosbags`` writers:

* ``storage="sqlite3"`` / ``"mcap"``: a rosbag2 bag directory ``<dst>/bag/`` (metadata version 9,
  message definitions stored: the sqlite3 ``message_definitions`` table / MCAP schemas). With
  ``split_max_bytes`` the bag is split into ``bag_0``, ``bag_1``, ... files, each holding at most
  that many bytes of message data (at least one message), as ``ros2 bag record
  --max-bag-size`` does. ``rosbags``' writer cannot split, so each file is written by its own
  writer and ``metadata.yaml`` (``relative_file_paths``, ``files``, per-topic counts) is written for
  the whole bag here.
* ``storage="ros1"``: one ROS 1 bag ``<dst>/<dst name>.bag`` (rosbag v2.0, message definitions and
  md5sums in the connection headers, ``std_msgs/Header`` with ``seq`` = 0).

hvla's ``metadata.yaml`` and ``operator_notes.md`` are copied unchanged (``metadata.yaml`` last).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import yaml
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Ros2Writer
from rosbags.typesys import Stores, get_typestore

from hvla_platform.lib.formats.bags.bag import Bag, open_bag
from hvla_platform.lib.formats.bags.definitions import TypeRegistry
from hvla_platform.lib.formats.bags.layout import METADATA_YAML, ROSBAG2_KEY
from hvla_platform.lib.formats.bags.messages import RawMessage

#: Name of the rosbag2 bag directory :func:`export_recording` writes.
EXPORT_BAG_DIR = "bag"
NOTES = "operator_notes.md"

Storage = Literal["sqlite3", "mcap", "ros1"]


def _registry(bag: Bag) -> TypeRegistry:
    """The source bag's definitions; every type of a topic with messages must be usable.

    Raises:
        ValueError: the source is a ROS 1 bag (its data is not CDR).
        RawLogError: ``undecodable`` (a type without a usable definition).
    """
    if bag.kind == "ros1":
        raise ValueError(f"{bag.layout.display}: export reads ROS 2 (CDR) bags; this is a ROS 1 bag")
    reg = TypeRegistry(bag.layout.display, bag.definitions())
    for name, info in bag.topics().items():
        reg.require(name, info.msgtype)
    return reg


class _PartWriter:
    """Writes the files of a rosbag2 bag one after the other, each with its own ``rosbags`` writer
    (in ``staging/<bag dir>_<k>/``), moving each finished data file into ``bag_dir``."""

    def __init__(self, staging: Path, bag_dir: Path, plugin: StoragePlugin, bag: Bag, reg: TypeRegistry):
        self.staging, self.bag_dir, self.plugin, self.bag, self.reg = staging, bag_dir, plugin, bag, reg
        self.names: list[str] = []
        self.infos: list[dict[str, Any]] = []
        self.writer: Ros2Writer | None = None
        self.conns: dict[str, Any] = {}
        self.size = self.count = 0

    def open(self) -> None:
        """Start the next file, with a connection for every topic of the source bag."""
        tmp = self.staging / f"{EXPORT_BAG_DIR}_{len(self.names)}"
        self.writer = Ros2Writer(tmp, version=Ros2Writer.VERSION_LATEST, storage_plugin=self.plugin)
        self.writer.open()
        self.conns = {}
        for name, info in self.bag.topics().items():  # every file names every topic: each is self-describing
            d = self.reg.definitions[info.msgtype]
            self.conns[name] = self.writer.add_connection(name, info.msgtype, msgdef=d.text,
                                                          rihs01=self.reg.typestore.hash_rihs01(info.msgtype))
        self.size = self.count = 0

    def write(self, raw: RawMessage) -> None:
        """Write one message (same log time and bytes) to the current file."""
        assert self.writer is not None
        self.writer.write(self.conns[raw.topic], raw.log_ns, raw.data)
        self.size += len(raw.data)
        self.count += 1

    def close(self) -> None:
        """Finish the current file and move it into the bag directory."""
        assert self.writer is not None
        tmp = self.writer.path
        self.writer.close()
        self.writer = None
        info = yaml.safe_load((tmp / METADATA_YAML).read_text())[ROSBAG2_KEY]
        (name,) = info["relative_file_paths"]
        (tmp / name).rename(self.bag_dir / name)
        self.names.append(name)
        self.infos.append(info)

    def abort(self) -> None:
        """Drop a file left unfinished by an error (nothing when every file was closed)."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None


def _merge_rosbag2_metadata(infos: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """One ``metadata.yaml`` for the parts (each part's own metadata, as its writer wrote it)."""
    counted = [i for i in infos if i["message_count"]]
    start = min((i["starting_time"]["nanoseconds_since_epoch"] for i in counted), default=0)
    end = max((i["starting_time"]["nanoseconds_since_epoch"] + i["duration"]["nanoseconds"] for i in counted),
              default=start)
    topics = []
    for k, entry in enumerate(infos[0]["topics_with_message_count"]):
        topics.append({**entry, "message_count": sum(i["topics_with_message_count"][k]["message_count"] for i in infos)})
    files = [{**i["files"][0], "path": name} for i, name in zip(infos, names)]
    return {ROSBAG2_KEY: {
        **infos[0],
        "relative_file_paths": names,
        "duration": {"nanoseconds": end - start},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(i["message_count"] for i in infos),
        "topics_with_message_count": topics,
        "files": files,
    }}


def _export_rosbag2(bag: Bag, out: Path, storage: Storage, split_max_bytes: int | None) -> None:
    """Stream the messages into ``out/bag/``, starting a new file when the next message would take
    the current one over ``split_max_bytes`` of message data (a file holds at least one message)."""
    reg = _registry(bag)
    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    bag_dir = out / EXPORT_BAG_DIR
    bag_dir.mkdir()
    staging = out / ".export-parts"
    staging.mkdir()
    parts = _PartWriter(staging, bag_dir, plugin, bag, reg)
    try:
        parts.open()
        for raw in bag.raw_messages(list(bag.topics())):
            if split_max_bytes is not None and parts.count and parts.size + len(raw.data) > split_max_bytes:
                parts.close()
                parts.open()
            parts.write(raw)
        parts.close()
        text = yaml.safe_dump(_merge_rosbag2_metadata(parts.infos, parts.names), sort_keys=False)
        (bag_dir / METADATA_YAML).write_text(text, encoding="utf-8")
    finally:
        parts.abort()
        shutil.rmtree(staging, ignore_errors=True)


def _export_ros1(bag: Bag, out: Path, split_max_bytes: int | None) -> None:
    if split_max_bytes is not None:
        raise ValueError("a ROS 1 recording is one .bag file: split_max_bytes applies to sqlite3 / mcap exports")
    reg = _registry(bag)
    # ROS 1 has its own std_msgs/Header (with seq); the rest of the types are the source's
    header = get_typestore(Stores.ROS1_NOETIC).fielddefs["std_msgs/msg/Header"]
    ros1_types = get_typestore(Stores.EMPTY)
    ros1_types.register({**reg.typestore.fielddefs, "std_msgs/msg/Header": header})
    with Ros1Writer(out / f"{out.name}.bag") as writer:
        conns = {name: writer.add_connection(name, info.msgtype, typestore=ros1_types)
                 for name, info in bag.topics().items()}
        for raw in bag.raw_messages(list(bag.topics())):
            writer.write(conns[raw.topic], raw.log_ns, reg.typestore.cdr_to_ros1(raw.data, raw.msgtype))


def export_recording(src_recording_dir: str | os.PathLike[str], dst_recording_dir: str | os.PathLike[str],
                     storage: Storage, split_max_bytes: int | None = None) -> Path:
    """Write a copy of the recording at ``src_recording_dir`` whose bag is stored as ``storage``
    (see the module docstring for what is written).

    Args:
        src_recording_dir: a recording folder (any layout :func:`open_bag` reads, except ROS 1).
        dst_recording_dir: the new recording folder; must not exist, or be empty.
        storage: ``sqlite3`` or ``mcap`` (a rosbag2 directory ``bag/``), or ``ros1`` (one ``.bag``).
        split_max_bytes: rosbag2 only: split into files of at most this many bytes of message data.

    Returns:
        ``dst_recording_dir`` as a Path.

    Raises:
        ValueError: unknown ``storage``, ``split_max_bytes`` < 1 or given for ``ros1``, a ROS 1
            source bag.
        FileExistsError: ``dst_recording_dir`` exists and is not empty.
        RawLogError: the source bag cannot be located, read, or has a type without definition.
    """
    if storage not in ("sqlite3", "mcap", "ros1"):
        raise ValueError(f"storage must be 'sqlite3', 'mcap' or 'ros1', not {storage!r}")
    if split_max_bytes is not None and split_max_bytes < 1:
        raise ValueError(f"split_max_bytes must be a positive number of bytes, not {split_max_bytes}")
    src, out = Path(src_recording_dir), Path(dst_recording_dir)
    bag = open_bag(src)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; export writes a new recording folder")
    out.mkdir(parents=True, exist_ok=True)
    if storage == "ros1":
        _export_ros1(bag, out, split_max_bytes)
    else:
        _export_rosbag2(bag, out, storage, split_max_bytes)
    for name in (NOTES, METADATA_YAML):  # hvla's metadata.yaml last: it marks the recording complete
        if (src / name).is_file():
            shutil.copyfile(src / name, out / name)
    return out
