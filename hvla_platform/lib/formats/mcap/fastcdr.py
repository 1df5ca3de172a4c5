"""Fast ROS 2 CDR decoders for the recording contract's hot message types, equal to ``mcap_ros2``'s.

``mcap_ros2``'s generic decoder (``mcap_ros2._dynamic``) reads a message field by field and an array
element by element in Python: for a 30-joint ``JointState`` that is ~130 calls per message and most
of the time of converting a low-resolution recording. :func:`fast_decoder` returns, for a schema
whose **layout** is exactly one of the types below, a decoder that reads each numeric array with one
``struct.unpack_from`` and produces what ``mcap_ros2`` produces: the same field names, Python
``list`` of ``float`` for ``float64[]``, ``list`` of ``str`` for ``string[]``, ``bytes`` for
``uint8[]``, ``int``/``float``/``str`` scalars, nested messages as attribute objects
(:class:`types.SimpleNamespace`; not ``mcap_ros2``'s generated classes, so no ``_type`` attribute).
A ``JointState`` decoder decodes the ``name`` strings once while their bytes repeat from message to
message (a fresh list each time). For any other schema it returns None (use ``mcap_ros2``).

=====================================  =========================================================
type (ROS 2 Humble layout)             fields
=====================================  =========================================================
``sensor_msgs/JointState``             header, ``string[] name``, ``float64[]`` position,
                                       velocity, effort
``std_msgs/Float64MultiArray``         layout (``dim[]`` of label/size/stride, data_offset),
                                       ``float64[] data``
``std_msgs/Float64``                   ``float64 data``
``sensor_msgs/CompressedImage``        header, ``string format``, ``uint8[] data``
``sensor_msgs/Image``                  header, height, width, encoding, is_bigendian, step, data
``sensor_msgs/Imu``                    header, orientation (quaternion), angular velocity, linear
                                       acceleration (vectors), three ``float64[9]`` covariances
``hvla_msgs/LocomotionCommand``        header, ``int8`` forward/lateral/yaw flags, ``float32``
                                       stance_height (our contract type)
=====================================  =========================================================

Wire format: XCDR1 as ROS 2 ``rmw`` writes it (OMG DDS-XTypes 1.3 §7.4.3): a 4-byte encapsulation
header whose byte 1 bit 0 selects little-endian; primitives aligned to their size relative to the
end of that header; sequences and strings prefixed by a ``uint32`` count (strings count their NUL;
a count of 0 or 1 is the empty string). The reading rules copy ``mcap_ros2._cdr.CdrReader`` exactly
(``mcap-ros2-support`` 0.6.0, pinned in ``pyproject.toml``; ``test_fastcdr`` compares the two), including its leniencies: an array of 0 elements aligns nothing, a
``uint8[]`` or string running past the end is cut short (a slice) rather than rejected, trailing
bytes are ignored, and ``builtin_interfaces/Time.sec`` is read as ``uint32`` unless the schema
defines ``Time`` itself (then as it says). A buffer too short for a number raises
``struct.error``, as ``mcap_ros2`` does; fewer than 4 bytes raise ``ValueError``.

The schema is checked **structurally**: its ``.msg`` text and every ``MSG:`` section it depends on
(comments, constants and blank lines ignored; types resolved to ``package/Type``, a bare type
name in the section's own package) must list exactly the fields above, and every nested type must
have its section (``mcap_ros2`` cannot decode without it) — except ``builtin_interfaces/Time``,
which ``mcap_ros2`` knows built in. Anything else (another field, a fixed-size or bounded array,
a missing section) falls back to ``mcap_ros2``.
"""

from __future__ import annotations

import re
import struct
from types import SimpleNamespace
from typing import Any, Callable

#: Field layouts, (type as ``pkg/Type`` or primitive, name), of the types decoded here and those they use.
_LAYOUTS: dict[str, list[tuple[str, str]]] = {
    "builtin_interfaces/Time": [("int32", "sec"), ("uint32", "nanosec")],
    "std_msgs/Header": [("builtin_interfaces/Time", "stamp"), ("string", "frame_id")],
    "sensor_msgs/JointState": [("std_msgs/Header", "header"), ("string[]", "name"), ("float64[]", "position"),
                               ("float64[]", "velocity"), ("float64[]", "effort")],
    "std_msgs/MultiArrayDimension": [("string", "label"), ("uint32", "size"), ("uint32", "stride")],
    "std_msgs/MultiArrayLayout": [("std_msgs/MultiArrayDimension[]", "dim"), ("uint32", "data_offset")],
    "std_msgs/Float64MultiArray": [("std_msgs/MultiArrayLayout", "layout"), ("float64[]", "data")],
    "std_msgs/Float64": [("float64", "data")],
    "sensor_msgs/CompressedImage": [("std_msgs/Header", "header"), ("string", "format"), ("uint8[]", "data")],
    "sensor_msgs/Image": [("std_msgs/Header", "header"), ("uint32", "height"), ("uint32", "width"),
                          ("string", "encoding"), ("uint8", "is_bigendian"), ("uint32", "step"), ("uint8[]", "data")],
    "geometry_msgs/Quaternion": [("float64", "x"), ("float64", "y"), ("float64", "z"), ("float64", "w")],
    "geometry_msgs/Vector3": [("float64", "x"), ("float64", "y"), ("float64", "z")],
    "sensor_msgs/Imu": [("std_msgs/Header", "header"), ("geometry_msgs/Quaternion", "orientation"),
                        ("float64[9]", "orientation_covariance"), ("geometry_msgs/Vector3", "angular_velocity"),
                        ("float64[9]", "angular_velocity_covariance"), ("geometry_msgs/Vector3", "linear_acceleration"),
                        ("float64[9]", "linear_acceleration_covariance")],
    "hvla_msgs/LocomotionCommand": [("std_msgs/Header", "header"), ("int8", "forward_flag"), ("int8", "lateral_flag"),
                                    ("int8", "yaw_flag"), ("float32", "stance_height")],
}

#: The nested types each decoded type needs a section for (Time: built into mcap_ros2).
_DEPENDS: dict[str, tuple[str, ...]] = {
    "sensor_msgs/JointState": ("std_msgs/Header",),
    "std_msgs/Float64MultiArray": ("std_msgs/MultiArrayLayout", "std_msgs/MultiArrayDimension"),
    "std_msgs/Float64": (),
    "sensor_msgs/CompressedImage": ("std_msgs/Header",),
    "sensor_msgs/Image": ("std_msgs/Header",),
    "sensor_msgs/Imu": ("std_msgs/Header", "geometry_msgs/Quaternion", "geometry_msgs/Vector3"),
    "hvla_msgs/LocomotionCommand": ("std_msgs/Header",),
}

_PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32",
               "uint32", "int64", "uint64", "string", "wstring"}


def _short_name(name: str) -> str:
    """``pkg/msg/Type`` or ``pkg/Type`` → ``pkg/Type``."""
    parts = name.strip().split("/")
    return f"{parts[0]}/{parts[-1]}" if len(parts) >= 2 else name.strip()


def _resolve(ftype: str, package: str) -> str:
    """A field type as written → primitive or ``pkg/Type`` (array suffix kept)."""
    base, bracket, rest = ftype.partition("[")
    suffix = bracket + rest
    if base in _PRIMITIVES:
        return base + suffix
    if "/" in base:
        return _short_name(base) + suffix
    return f"{package}/{base}" + suffix


def _fields(text: str, package: str) -> list[tuple[str, str]] | None:
    """(type, name) of the fields of one ``.msg`` section (constants skipped), None if unparsable."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2:
            return None
        if "=" in line:  # a constant (``uint8 A=1`` or ``uint8 A = 1``): no wire bytes
            continue
        out.append((_resolve(parts[0], package), parts[1]))
    return out


def _sections(schema_name: str, text: str) -> dict[str, list[tuple[str, str]] | None]:
    """``pkg/Type`` → fields of every section of a concatenated ROS 2 definition, split the way
    ``mcap_ros2._dynamic._for_each_msgdef`` splits it (lines of 3 or more ``=``; a ``MSG: name`` line
    names the section, else it keeps the previous name; a later section of the same name wins)."""
    current = schema_name
    out: dict[str, list[tuple[str, str]] | None] = {}
    text = "\n".join(s for s in text.splitlines() if s.strip())
    for chunk in re.split(r"^={3,}$", text, flags=re.MULTILINE):
        chunk = chunk.strip()
        match = re.match(r"^MSG:\s+(\S+)$", chunk, flags=re.MULTILINE)
        if match:
            current = match.group(1)
            chunk = re.sub(r"^MSG:\s+(\S+)$", "", chunk, flags=re.MULTILINE)
        name = _short_name(current)
        out[name] = _fields(chunk, name.split("/")[0])
    return out


def matches_layout(schema_name: str, schema_text: str) -> tuple[bool, bool]:
    """``(decodable here, Time.sec signed)`` for a ``ros2msg`` schema (see the module docstring)."""
    name = _short_name(schema_name)
    if name not in _DEPENDS:
        return False, False
    secs = _sections(schema_name, schema_text)
    for t in (name, *_DEPENDS[name]):
        if secs.get(t) != _LAYOUTS[t]:
            return False, False
    signed = False
    if "std_msgs/Header" in _DEPENDS[name] and "builtin_interfaces/Time" in secs:
        time = secs["builtin_interfaces/Time"]
        if time == _LAYOUTS["builtin_interfaces/Time"]:
            signed = True
        elif time != [("uint32", "sec"), ("uint32", "nanosec")]:
            return False, False
    return True, signed


# ------------------------------------------------------------------------------------------------
# readers: (data, offset) → (value, new offset); offsets count from the start of ``data``; alignment is
# relative to byte 4 (the end of the encapsulation header)

_U32 = {True: struct.Struct("<I").unpack_from, False: struct.Struct(">I").unpack_from}
_TIME = {(True, False): struct.Struct("<II").unpack_from, (False, False): struct.Struct(">II").unpack_from,
         (True, True): struct.Struct("<iI").unpack_from, (False, True): struct.Struct(">iI").unpack_from}
_F64 = {True: struct.Struct("<d").unpack_from, False: struct.Struct(">d").unpack_from}
_U8 = struct.Struct("B").unpack_from
_I8X3 = struct.Struct("bbb").unpack_from


def _align(o: int, size: int) -> int:
    r = (o - 4) % size
    return o + size - r if r else o


def _string(d: bytes, o: int, le: bool) -> tuple[str, int]:
    o = _align(o, 4)
    (n,) = _U32[le](d, o)
    o += 4
    if n <= 1:
        return "", o + n
    return d[o:o + n - 1].decode("utf-8"), o + n


def _header(d: bytes, o: int, le: bool, signed: bool) -> tuple[SimpleNamespace, int]:
    o = _align(o, 4)
    sec, nanosec = _TIME[(le, signed)](d, o)
    frame_id, o = _string(d, o + 8, le)
    return SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=nanosec), frame_id=frame_id), o


def _f64_array(d: bytes, o: int, le: bool) -> tuple[list[float], int]:
    o = _align(o, 4)
    (n,) = _U32[le](d, o)
    o += 4
    if not n:
        return [], o
    o = _align(o, 8)
    return list(struct.unpack_from(("<" if le else ">") + f"{n}d", d, o)), o + 8 * n


def _bytes(d: bytes, o: int, le: bool) -> tuple[bytes, int]:
    o = _align(o, 4)
    (n,) = _U32[le](d, o)
    o += 4
    return d[o:o + n], o + n


def _start(data: bytes) -> bool:
    if len(data) < 4:
        raise ValueError(f"Invalid CDR data size {len(data)}, must contain at least a 4-byte header")
    return _U8(data, 1)[0] & 1 == 1


def _joint_state(data: bytes, signed: bool, last: list[Any]) -> SimpleNamespace:
    """``last``: ``[bytes, names]`` of the previous message's ``name`` field (count, strings and their
    padding, from a 4-aligned offset): equal bytes there parse to equal names (a driver publishes
    the same names in every message), so the strings are decoded once per change."""
    le = _start(data)
    header, o = _header(data, 4, le, signed)
    o = _align(o, 4)
    region = last[0]
    if region and data[o:o + len(region)] == region:
        names = list(last[1])
        o += len(region)
    else:
        start = o
        (n,) = _U32[le](data, o)
        o += 4
        names = []
        for _ in range(n):
            s, o = _string(data, o, le)
            names.append(s)
        last[0], last[1] = data[start:o], tuple(names)
    position, o = _f64_array(data, o, le)
    velocity, o = _f64_array(data, o, le)
    effort, o = _f64_array(data, o, le)
    return SimpleNamespace(header=header, name=names, position=position, velocity=velocity, effort=effort)


def _float64_multi_array(data: bytes, signed: bool) -> SimpleNamespace:
    le = _start(data)
    o = _align(4, 4)
    (n,) = _U32[le](data, o)
    o += 4
    dims = []
    for _ in range(n):
        label, o = _string(data, o, le)
        o = _align(o, 4)
        size, stride = _U32[le](data, o)[0], _U32[le](data, o + 4)[0]
        o += 8
        dims.append(SimpleNamespace(label=label, size=size, stride=stride))
    o = _align(o, 4)
    (offset,) = _U32[le](data, o)
    values, o = _f64_array(data, o + 4, le)
    return SimpleNamespace(layout=SimpleNamespace(dim=dims, data_offset=offset), data=values)


def _float64(data: bytes, signed: bool) -> SimpleNamespace:
    le = _start(data)
    return SimpleNamespace(data=_F64[le](data, _align(4, 8))[0])


def _compressed_image(data: bytes, signed: bool) -> SimpleNamespace:
    le = _start(data)
    header, o = _header(data, 4, le, signed)
    fmt, o = _string(data, o, le)
    payload, o = _bytes(data, o, le)
    return SimpleNamespace(header=header, format=fmt, data=payload)


def _image(data: bytes, signed: bool) -> SimpleNamespace:
    le = _start(data)
    header, o = _header(data, 4, le, signed)
    o = _align(o, 4)
    height, width = _U32[le](data, o)[0], _U32[le](data, o + 4)[0]
    encoding, o = _string(data, o + 8, le)
    is_bigendian = _U8(data, o)[0]
    o = _align(o + 1, 4)
    (step,) = _U32[le](data, o)
    payload, o = _bytes(data, o + 4, le)
    return SimpleNamespace(header=header, height=height, width=width, encoding=encoding,
                           is_bigendian=is_bigendian, step=step, data=payload)


def _imu(data: bytes, signed: bool) -> SimpleNamespace:
    le = _start(data)
    header, o = _header(data, 4, le, signed)
    v = struct.unpack_from(("<" if le else ">") + "37d", data, _align(o, 8))  # every field after the header: float64
    return SimpleNamespace(
        header=header, orientation=SimpleNamespace(x=v[0], y=v[1], z=v[2], w=v[3]),
        orientation_covariance=list(v[4:13]), angular_velocity=SimpleNamespace(x=v[13], y=v[14], z=v[15]),
        angular_velocity_covariance=list(v[16:25]), linear_acceleration=SimpleNamespace(x=v[25], y=v[26], z=v[27]),
        linear_acceleration_covariance=list(v[28:37]))


def _locomotion_command(data: bytes, signed: bool) -> SimpleNamespace:
    le = _start(data)
    header, o = _header(data, 4, le, signed)
    forward, lateral, yaw = _I8X3(data, o)
    (stance,) = struct.unpack_from("<f" if le else ">f", data, _align(o + 3, 4))
    return SimpleNamespace(header=header, forward_flag=forward, lateral_flag=lateral, yaw_flag=yaw,
                           stance_height=stance)


_DECODERS: dict[str, Callable[[bytes, bool], SimpleNamespace]] = {  # JointState: its own, with a names cache
    "std_msgs/Float64MultiArray": _float64_multi_array,
    "std_msgs/Float64": _float64,
    "sensor_msgs/CompressedImage": _compressed_image,
    "sensor_msgs/Image": _image,
    "sensor_msgs/Imu": _imu,
    "hvla_msgs/LocomotionCommand": _locomotion_command,
}


def fast_decoder(schema_name: str, schema_text: str) -> Callable[[bytes], Any] | None:
    """A decoder ``bytes → message`` for ``schema_name`` (``pkg/msg/Type`` or ``pkg/Type``) whose
    ``ros2msg`` definition ``schema_text`` has one of the layouts of the module docstring, equal to
    what ``mcap_ros2.decoder.DecoderFactory`` decodes; None for any other schema.

    The decoder raises ``struct.error`` (a number past the end of the buffer), ``ValueError`` (fewer
    than 4 bytes) or ``UnicodeDecodeError`` (a string that is not UTF-8), as ``mcap_ros2`` does.
    """
    ok, signed = matches_layout(schema_name, schema_text)
    if not ok:
        return None
    name = _short_name(schema_name)
    if name == "sensor_msgs/JointState":
        last: list[Any] = [b"", ()]
        return lambda data: _joint_state(data, signed, last)
    fn = _DECODERS[name]
    return lambda data: fn(data, signed)
