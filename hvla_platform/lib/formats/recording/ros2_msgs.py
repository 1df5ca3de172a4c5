"""ROS 2 message definitions of the recording contract, as ``ros2 bag record`` stores them.

An MCAP schema record with encoding ``ros2msg`` holds the message's ``.msg`` text followed by the
definitions of every message type it uses, each preceded by a separator line of 80 ``=`` and a
``MSG: <package>/<Type>`` line (the MCAP ROS 2 profile, ``rosbag2_storage_mcap``). The texts below
are the interface definitions of ROS 2 Humble (``sensor_msgs``, ``std_msgs``,
``builtin_interfaces``, ``geometry_msgs``) without comments, plus our
``hvla_msgs/LocomotionCommand``. Field types are written with their package
(``geometry_msgs/Wrench wrench``, ``std_msgs/MultiArrayLayout layout``) and constants' default
values are left out, as ``rosbags``' Humble typestore generates them, so every ROS 2 parser reads
them.

What the simulated recorder writes with each type:

* ``sensor_msgs/msg/JointState``: joint state (rad, rad/s, N·m) and joint-target commands (rad);
* ``std_msgs/msg/Float64MultiArray``: joint-target commands, ``data`` in the profile's joint order;
* ``std_msgs/msg/Float64``: a one-joint command (e.g. a gripper's driver joint, rad);
* ``sensor_msgs/msg/CompressedImage``: JPEG/PNG camera frames;
* ``sensor_msgs/msg/Image``: raw frames, ``rgb8``/``bgr8``/``mono8``, depth ``16UC1`` (mm) or
  ``32FC1`` (m) (REP 118);
* ``sensor_msgs/msg/Imu``: orientation (unit quaternion), angular velocity (rad/s), linear
  acceleration (m/s², gravity included), with diagonal covariances;
* ``geometry_msgs/msg/WrenchStamped``: force (N) and torque (N·m) in the sensor frame;
* ``std_msgs/msg/String``: the task instruction; ``hvla_msgs/msg/LocomotionCommand``: seed 004's
  LMO command.
"""

from __future__ import annotations

from hvla_platform.lib.formats.recording.contract import (
    LOCOMOTION_COMMAND_MSG_DEF,
    MSG_COMPRESSED_IMAGE,
    MSG_JOINT_STATE,
    MSG_LOCOMOTION_COMMAND,
    MSG_STRING,
)

MSG_IMAGE = "sensor_msgs/msg/Image"
MSG_FLOAT64_MULTI_ARRAY = "std_msgs/msg/Float64MultiArray"
MSG_FLOAT64 = "std_msgs/msg/Float64"
MSG_IMU = "sensor_msgs/msg/Imu"
MSG_WRENCH_STAMPED = "geometry_msgs/msg/WrenchStamped"

_SEP = "=" * 80

TIME = "int32 sec\nuint32 nanosec\n"
HEADER = "builtin_interfaces/Time stamp\nstring frame_id\n"


def _with_deps(main: str, deps: list[tuple[str, str]]) -> str:
    out = main.rstrip("\n") + "\n"
    for name, text in deps:
        out += f"{_SEP}\nMSG: {name}\n{text.rstrip(chr(10))}\n"
    return out


_HEADER_DEPS = [("std_msgs/Header", HEADER), ("builtin_interfaces/Time", TIME)]

#: ``std_msgs/MultiArrayLayout`` and ``std_msgs/MultiArrayDimension`` (ROS 2 Humble).
MULTI_ARRAY_LAYOUT = "std_msgs/MultiArrayDimension[] dim\nuint32 data_offset\n"
MULTI_ARRAY_DIMENSION = "string label\nuint32 size\nuint32 stride\n"
#: ``geometry_msgs`` (ROS 2 Humble).
QUATERNION = "float64 x\nfloat64 y\nfloat64 z\nfloat64 w\n"
VECTOR3 = "float64 x\nfloat64 y\nfloat64 z\n"
WRENCH = "geometry_msgs/Vector3 force\ngeometry_msgs/Vector3 torque\n"

#: ``ros2msg`` schema text per contract message type.
SCHEMAS: dict[str, str] = {
    MSG_JOINT_STATE: _with_deps(
        "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n",
        _HEADER_DEPS),
    MSG_COMPRESSED_IMAGE: _with_deps("std_msgs/Header header\nstring format\nuint8[] data\n", _HEADER_DEPS),
    MSG_STRING: "string data\n",
    MSG_LOCOMOTION_COMMAND: _with_deps(LOCOMOTION_COMMAND_MSG_DEF, _HEADER_DEPS),
    MSG_IMAGE: _with_deps(
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
        "uint32 step\nuint8[] data\n", _HEADER_DEPS),
    MSG_FLOAT64_MULTI_ARRAY: _with_deps(
        "std_msgs/MultiArrayLayout layout\nfloat64[] data\n",
        [("std_msgs/MultiArrayLayout", MULTI_ARRAY_LAYOUT), ("std_msgs/MultiArrayDimension", MULTI_ARRAY_DIMENSION)]),
    MSG_FLOAT64: "float64 data\n",
    MSG_IMU: _with_deps(
        "std_msgs/Header header\ngeometry_msgs/Quaternion orientation\nfloat64[9] orientation_covariance\n"
        "geometry_msgs/Vector3 angular_velocity\nfloat64[9] angular_velocity_covariance\n"
        "geometry_msgs/Vector3 linear_acceleration\nfloat64[9] linear_acceleration_covariance\n",
        [*_HEADER_DEPS, ("geometry_msgs/Quaternion", QUATERNION), ("geometry_msgs/Vector3", VECTOR3)]),
    MSG_WRENCH_STAMPED: _with_deps(
        "std_msgs/Header header\ngeometry_msgs/Wrench wrench\n",
        [*_HEADER_DEPS, ("geometry_msgs/Wrench", WRENCH), ("geometry_msgs/Vector3", VECTOR3)]),
}
