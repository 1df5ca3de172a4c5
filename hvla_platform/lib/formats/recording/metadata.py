"""The contract of a recording's ``metadata.yaml``: identity, capture, outcome and the rights block.

Operators and recorders (``hvla sim record``, a robot's uploader) write one ``metadata.yaml`` beside
each episode's MCAP. Ingest validates it strictly through :class:`RecordingMetadata` before it
reads the rights (:func:`parse_recording_metadata`): an unknown or misspelled key anywhere in the
file is refused, so ``contains_customer_enviroment: true`` can no longer silently become
``contains_customer_environment: false``. The episode is then quarantined with a one-line reason
naming the file, the key and the closest valid key::

    .../metadata.yaml: rights: unknown key 'contains_customer_enviroment' (did you mean 'contains_customer_environment'?)

Example (what :func:`hvla_platform.lib.sim.recorder.record_episode` writes)::

    episode_id: ep-20261110-g1-001-001
    robot: {id: g1-001, model: unitree_g1, profile: unitree_g1_29dof}   # or a top-level robot_id: g1-001
    #   (robot.profile names the robot profile, hvla_platform/profiles/<name>.yaml; absent = unitree_g1_29dof)
    capture_date: '2026-11-10'
    operator: op-sim-01
    site: sim-lab-g1-001
    customer: internal
    task: touch the blue sphere with the left hand
    source: simulation
    recorder: {name: hvla-sim-record, version: 0.1.0, simulator: mujoco 3.8.1, seed: 0, task_family: reach_touch}
    scene: {object: {colour: blue, shape: sphere, position_m: [0.281, 0.1057]}, hand: left}
    topics: [/arm_controller/joint_command, ...]
    duration_s: 4.5
    outcome: {success: true, min_distance_m: 0.02}
    rights: {data_owner: ..., license: ..., consent_refs: [...], allowed_uses: [...],
             retention_until: '2031-11-10', contains_human_video: false,
             contains_customer_environment: false}

A rollout of a deployed policy (``hvla deploy --record-rollout``) also has ``source: rollout`` and a
``rollout`` block (:class:`RolloutInfo`: checkpoint, server instance, outcome, incident label,
redaction applied, the deployment's runtime-data policy; docs/rollouts.md).

Only the identity (``episode_id``, ``capture_date``, ``robot.id`` or ``robot_id``) is required by
this model; every other section is optional, but when present it may hold only the keys below.
The rights block's values, and whether it is there at all, are checked by
:meth:`hvla_platform.lib.core.rights.Rights.from_episode_metadata`; whether the ids are safe for
lake keys by :func:`hvla_platform.lib.ingest.landing.read_identity`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from hvla_platform.lib.core.contracts import StrictModel, iso_date_to_str, validate_document
from hvla_platform.lib.core.rights import RightsBlock, RightsError
from hvla_platform.lib.formats.recording.runtime_policy import RuntimeDataPolicy

_Day = Annotated[str, BeforeValidator(iso_date_to_str)]
_Number = Annotated[float, Field(strict=True)]


class RecordingMetadataError(RightsError):
    """A ``metadata.yaml`` breaks its contract (unknown key, missing field, wrong type).

    A :class:`~hvla_platform.lib.core.rights.RightsError`, so the ingest path that quarantines an
    episode without valid rights quarantines it for this too.
    """


class RobotInfo(StrictModel):
    """``robot``: which robot recorded the episode."""

    id: str = Field(description="robot id (a lake key segment)")
    model: str | None = Field(default=None, description="robot model, e.g. unitree_g1")
    profile: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_]*(@[0-9]+)?$",
                                description="robot profile the recording follows (<name> or <name>@<version>); "
                                            "absent means the default profile, unitree_g1_29dof")


class RecorderInfo(StrictModel):
    """``recorder``: the tool that wrote the recording."""

    name: str
    version: str | None = None
    simulator: str | None = Field(default=None, description="simulator and version (simulated recordings)")
    seed: Annotated[int, Field(strict=True)] | None = Field(default=None, description="simulation seed")
    task_family: str | None = Field(default=None, description="task family sampled by the simulator")
    frames: Literal["rendered", "synthetic"] | None = Field(
        default=None, description="how a simulator made the camera frames: every frame rendered, or synthesised "
                                  "cheaply from low-resolution renders (hvla sim record --frames)")


class SceneObject(StrictModel):
    """``scene.object``: the object the task is about."""

    colour: str | None = None
    shape: str | None = None
    position_m: list[_Number] | None = Field(default=None, description="(x, y) on the table, metres")


class SceneInfo(StrictModel):
    """``scene``: the set-up of the episode (simulated recordings)."""

    object: SceneObject | None = None
    hand: str | None = Field(default=None, description="the hand the task asks for (left/right)")


class OutcomeInfo(StrictModel):
    """``outcome``: how the episode ended."""

    success: Annotated[bool, Field(strict=True)]
    min_distance_m: _Number | None = Field(default=None, description="closest fingertip-object distance, metres")


class RolloutRedaction(StrictModel):
    """``rollout.redaction``: what the robot did to private frames (the policy's rule, applied)."""

    rule: Literal["blackout", "drop"]
    cameras: list[str]
    windows_s: list[tuple[float, float]]
    frames_redacted: Annotated[int, Field(strict=True, ge=0)] = Field(description="frames blacked out or dropped")


class RolloutIncident(StrictModel):
    """``rollout.incident``: the label of a rollout that ended in a fault or an emergency stop."""

    kind: Literal["fault", "estop"]
    cause: str = Field(min_length=1, description="why it stopped (the fault's cause, the stop's reason)")


class RolloutInfo(StrictModel):
    """``rollout``: provenance of a recording made by ``hvla deploy --record-rollout`` (``source: rollout``).

    The rights of such a recording come from ``runtime_policy`` (the deployment's runtime-data
    policy, :mod:`.runtime_policy`), not from the training data of the checkpoint that acted.
    """

    checkpoint: str | None = Field(default=None, description="the checkpoint id the server named")
    checkpoint_key: str | None = Field(default=None, description="its lake key (checkpoints/<config>/<exp>/<step>)")
    server_instance: str | None = Field(default=None, description="the policy server instance (inference log 'instance')")
    server: str = Field(description="the server's URL as the robot connected to it")
    serving_use: str | None = None
    trial: Annotated[int, Field(strict=True, ge=0)]
    seed: Annotated[int, Field(strict=True)]
    start_ns: Annotated[int, Field(strict=True, ge=0)] = Field(description="rollout start, ns since the Unix epoch")
    outcome: Literal["success", "timeout", "fault", "estop"]
    cause: str | None = Field(default=None, description="the fault's cause or the stop's reason")
    incident: RolloutIncident | None = None
    safety_topic: str = Field(description="topic of the safety events (std_msgs/String JSON)")
    redaction: RolloutRedaction | None = None
    runtime_policy: RuntimeDataPolicy


#: ``source`` of a recording made by ``hvla deploy --record-rollout`` (with a ``rollout`` block).
ROLLOUT_SOURCE = "rollout"


class RecordingMetadata(StrictModel):
    """The contract of a recording's ``metadata.yaml`` (see the module docstring).

    Unknown keys are refused at every level; ``episode_id``, ``capture_date`` and the robot id
    (``robot.id`` or a top-level ``robot_id``) are required.
    """

    episode_id: str
    robot: RobotInfo | None = None
    robot_id: str | None = Field(default=None, description="robot id, when there is no 'robot' block")
    capture_date: _Day = Field(description="capture day, YYYY-MM-DD")
    operator: str | None = None
    site: str | None = None
    customer: str | None = None
    task: str | None = Field(default=None, description="the task instruction")
    source: str | None = Field(default=None, description="where the recording comes from, e.g. simulation")
    recorder: RecorderInfo | None = None
    scene: SceneInfo | None = None
    topics: list[str] | None = Field(default=None, description="topics recorded in the MCAP")
    duration_s: Annotated[float, Field(strict=True, ge=0.0)] | None = None
    outcome: OutcomeInfo | None = None
    rights: RightsBlock | None = Field(default=None, description="the rights block (see core.rights)")
    rollout: RolloutInfo | None = Field(default=None, description="provenance of a deployed policy's rollout")
    format: Literal["seed003_pkl"] | None = Field(
        default=None, description="what the folder holds beside metadata.yaml when it is not a bag: seed003_pkl = a "
                                  "seed-003 teleop episode (frame_NNNN.pkl + episode_meta.json, docs/teleop.md); "
                                  "absent = a robot recording with one bag (docs/recordings.md)")

    @property
    def profile_name(self) -> str | None:
        """``robot.profile`` (``<name>`` or ``<name>@<version>``), None when the recording names none."""
        return self.robot.profile if self.robot is not None else None

    @model_validator(mode="after")
    def _robot_id_given(self) -> RecordingMetadata:
        if self.robot is None and self.robot_id is None:
            raise ValueError("missing required field 'robot' (a mapping with the robot's 'id'; "
                             "or a top-level 'robot_id')")
        return self


def parse_recording_metadata(data: Any, *, source: str = "metadata.yaml") -> RecordingMetadata:
    """Validate a parsed ``metadata.yaml`` (``yaml.safe_load``) strictly against :class:`RecordingMetadata`.

    ``source`` names the file in the message (a path or a lake URI).

    Raises:
        RecordingMetadataError: one line naming ``source`` and each problem: an unknown key (with
            the closest valid key), a missing required field, or a value of the wrong type.
    """
    return validate_document(RecordingMetadata, data, source=source, error_cls=RecordingMetadataError)
