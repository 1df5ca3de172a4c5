"""Minimal CDR peeking: read a ROS 2 message's ``std_msgs/Header`` stamp without a full decode.

ROS 2 messages on the wire are XCDR1 ("CDR") with a 4-byte encapsulation header: byte 1 is
0x00 (big-endian CDR) or 0x01 (little-endian CDR). A message whose first field is
``std_msgs/Header header`` starts with ``builtin_interfaces/Time stamp`` = ``int32 sec``,
``uint32 nanosec`` (OMG DDS-XTypes 1.3 §7.4.3; ROS 2 ``rmw`` CDR serialization). Reading those 8
bytes lets ingest check header-stamp monotonicity of camera streams without decoding the images.
"""

from __future__ import annotations

import re
import struct

_FIRST_FIELD = re.compile(r"^\s*([A-Za-z0-9_/]+)\s+([A-Za-z0-9_]+)", re.MULTILINE)


def schema_starts_with_header(schema_text: str) -> bool:
    """True if the first field of a ROS 2 ``.msg`` definition is a ``std_msgs/Header``."""
    for line in schema_text.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        m = _FIRST_FIELD.match(stripped)
        return bool(m) and m.group(1) in ("std_msgs/Header", "Header", "std_msgs/msg/Header")
    return False


def header_stamp_ns(data: bytes) -> int:
    """The header stamp (ns since epoch) of a CDR message that starts with a ``std_msgs/Header``.

    Raises:
        ValueError: the buffer is too short or has an unknown encapsulation kind.
    """
    if len(data) < 12:
        raise ValueError(f"CDR buffer of {len(data)} bytes is too short for a header stamp")
    kind = data[1]
    if kind in (0x00, 0x02):
        sec, nsec = struct.unpack_from(">iI", data, 4)
    elif kind in (0x01, 0x03):
        sec, nsec = struct.unpack_from("<iI", data, 4)
    else:
        raise ValueError(f"unknown CDR encapsulation kind 0x{kind:02x}")
    return sec * 1_000_000_000 + nsec
