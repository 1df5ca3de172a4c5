"""ROS 2 message definitions of the recording contract, as ``ros2 bag record`` stores them.

An MCAP schema record with encoding ``ros2msg`` holds the message's ``.msg`` text followed by the
definitions of every message type it uses, each preceded by a separator line of 80 ``=`` and a
``MSG: <package>/<Type>`` line (the MCAP ROS 2 profile, ``rosbag2_storage_mcap``). The texts below
are the interface definitions of ROS 2 Humble (``sensor_msgs``, ``std_msgs``,
``builtin_interfaces``) without comments, plus our ``hvla_msgs/LocomotionCommand``.
"""

from __future__ import annotations

from hvla_platform.lib.formats.recording.contract import (
    LOCOMOTION_COMMAND_MSG_DEF,
    MSG_COMPRESSED_IMAGE,
    MSG_JOINT_STATE,
    MSG_LOCOMOTION_COMMAND,
    MSG_STRING,
)

_SEP = "=" * 80

TIME = "int32 sec\nuint32 nanosec\n"
HEADER = "builtin_interfaces/Time stamp\nstring frame_id\n"


def _with_deps(main: str, deps: list[tuple[str, str]]) -> str:
    out = main.rstrip("\n") + "\n"
    for name, text in deps:
        out += f"{_SEP}\nMSG: {name}\n{text.rstrip(chr(10))}\n"
    return out


_HEADER_DEPS = [("std_msgs/Header", HEADER), ("builtin_interfaces/Time", TIME)]

#: ``ros2msg`` schema text per contract message type.
SCHEMAS: dict[str, str] = {
    MSG_JOINT_STATE: _with_deps(
        "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n",
        _HEADER_DEPS),
    MSG_COMPRESSED_IMAGE: _with_deps("std_msgs/Header header\nstring format\nuint8[] data\n", _HEADER_DEPS),
    MSG_STRING: "string data\n",
    MSG_LOCOMOTION_COMMAND: _with_deps(LOCOMOTION_COMMAND_MSG_DEF, _HEADER_DEPS),
}
