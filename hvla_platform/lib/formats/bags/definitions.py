"""Message definitions of a bag, as a ``rosbags`` typestore: the bag's own, else the known ones.

Every bag format but one stores the definitions of its message types: MCAP schemas, the
``message_definitions`` table of rosbag2 sqlite3 files (schema version 4 and later, ROS 2 Iron+),
the connection headers of ROS 1 bags. Older sqlite3 bags (ROS 2 Foxy–Humble) store none. For
those, this module falls back to a **registry of known definitions**,
:data:`hvla_platform.lib.formats.recording.ros2_msgs.SCHEMAS` (the ROS 2 Humble text of the
recording contract's standard types plus our ``hvla_msgs/msg/LocomotionCommand``). A type the bag
does not define and the registry does not know cannot be decoded: reading its topic raises
``RawLogError(..., "undecodable", ...)`` naming the topic and the type. Types are registered one
by one, so a bad or conflicting definition only makes its own topics undecodable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rosbags.typesys import Stores, get_typestore, get_types_from_idl, get_types_from_msg

from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.recording.ros2_msgs import SCHEMAS

#: Where a definition came from.
DefinitionSource = Literal["bag", "registry"]


@dataclass(frozen=True)
class Definition:
    """One message type's definition text.

    Attributes:
        format: ``ros2msg`` (``.msg`` text with ``MSG:`` sections for the types it uses),
            ``ros2idl`` or ``ros1msg`` (a ROS 1 connection header's ``message_definition``).
        text: the definition.
        source: ``bag`` (stored in the bag) or ``registry`` (from :data:`SCHEMAS`).
    """

    format: Literal["ros2msg", "ros2idl", "ros1msg"]
    text: str
    source: DefinitionSource = "bag"


def known_definition(msgtype: str) -> Definition | None:
    """The registry's definition of ``msgtype`` (ROS 2 ``.msg`` text), None when it has none."""
    text = SCHEMAS.get(msgtype)
    return Definition("ros2msg", text, "registry") if text is not None else None


def _types_of(msgtype: str, d: Definition) -> dict:
    if d.format == "ros2idl":
        sep = "=" * 80 + "\n"
        if d.text.startswith(f"{sep}IDL: "):
            out: dict = {}
            for part in d.text.split(sep)[1:]:
                out.update(get_types_from_idl(part.split("\n", 1)[1]))
            return out
        return get_types_from_idl(d.text)
    return get_types_from_msg(d.text, msgtype)


class TypeRegistry:
    """A ``rosbags`` typestore holding the definitions of one bag (see the module docstring).

    Args:
        path: the bag (named in errors).
        stored: message type (ROS 2 form) → the bag's definition, or None when the bag stores none.
        ros1: the bag is a ROS 1 bag (the registry's ROS 2 texts do not apply to ROS 1 data).

    Attributes:
        typestore: the ``rosbags.typesys.store.Typestore`` with every type that could be registered.
        definitions: message type → the :class:`Definition` used (bag or registry).
        problems: message type → why it cannot be decoded.
    """

    def __init__(self, path: str | os.PathLike[str], stored: dict[str, Definition | None], *, ros1: bool = False):
        self.path = Path(path)
        self.typestore = get_typestore(Stores.EMPTY)
        self.definitions: dict[str, Definition] = {}
        self.problems: dict[str, str] = {}
        pending: list[tuple[str, Definition]] = []
        for msgtype, d in stored.items():
            if d is not None and (d.text.strip() or d.format != "ros1msg"):
                pending.append((msgtype, d))
            elif not ros1 and (k := known_definition(msgtype)) is not None:
                pending.append((msgtype, k))
            else:
                self.problems[msgtype] = ("the bag stores no definition of it and it is not one of the known "
                                          f"definitions (hvla_platform.lib.formats.recording.ros2_msgs.SCHEMAS: "
                                          f"{sorted(SCHEMAS)})")
        # the bag's own definitions first, so the registry never overrides what the bag says
        pending.sort(key=lambda item: item[1].source != "bag")
        for msgtype, d in pending:
            try:
                self.typestore.register(_types_of(msgtype, d))
            except Exception as exc:  # noqa: BLE001 - any parser failure is this type's problem, reported on read
                self.problems[msgtype] = f"its {d.source} definition ({d.format}) cannot be used: {type(exc).__name__}: {exc}"
                continue
            if msgtype not in self.typestore.fielddefs:
                self.problems[msgtype] = f"its {d.source} definition ({d.format}) does not define {msgtype}"
                continue
            self.definitions[msgtype] = d

    def require(self, topic: str, msgtype: str) -> None:
        """Check that messages of ``msgtype`` on ``topic`` can be decoded.

        Raises:
            RawLogError: ``undecodable``, naming the topic, the type and why.
        """
        if msgtype in self.definitions:
            return
        why = self.problems.get(msgtype, "the bag does not list this type")
        raise RawLogError(self.path, "undecodable", f"topic {topic}: message type {msgtype}: {why}")
