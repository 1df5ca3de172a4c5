"""Record each rollout of ``hvla deploy`` on the robot side, as a recording in the robots' ROS 2 MCAP
contract, with rights from the deployment's runtime-data policy.

Seed 000: "If you use rollout telemetry to fine-tune the next checkpoint, that telemetry loops back
to the beginning of the lifecycle and becomes training data". So a rollout is recorded like any
robot episode (``hvla sim record``'s folder layout, docs/recordings.md) and lands through the same
ingest, and its ``metadata.yaml`` says where it came from (``source: rollout`` and a ``rollout``
block: checkpoint id and key, server instance, outcome and cause, the runtime-data policy) and what
it may be used for (the rights block from :func:`~hvla_platform.lib.formats.recording.runtime_policy.rollout_rights_block`).

What is recorded, one folder per trial ``<out_root>/<UTC day>/<robot_id>/<episode_id>/``:

==================================  ===============================================================
topic                               content (stamp = rollout start + the robot's time since reset)
==================================  ===============================================================
``/joint_states``                   every observation's 29 joint positions (rad) and velocities (rad/s)
``/camera/<cam>/image_raw/compressed``  every observation's camera frames, JPEG q=85 (the simulated
                                    recorder's encoder); private
                                    frames (the policy's ``redaction``) blacked out or dropped
                                    **before** they are written: private pixels never leave the robot
``/arm_controller/joint_command``   each command sent to the joint controller **after the action
                                    guard** (14 arm joints, rad), stamped when it was sent
``/locomotion/command``             the locomotion command in force (pelvis fixed: 0, 0, 0, stance)
``/task/instruction``               the instruction, once a second
``/safety/events``                  every robot-safety-log line of the trial (``std_msgs/String``,
                                    the JSON line): modes, clipped commands (``limit``), ``estop``,
                                    faults and the ``stop`` line
==================================  ===============================================================

How it hooks in without changing the control loop: :meth:`RolloutRecorder.wrap_env` wraps the
environment factory (observations come out of ``reset``/``step``, the guarded command goes into
``step``) and :meth:`RolloutRecorder.wrap_safety_log` the safety log (every event is also written
to the trial's ``/safety/events``; the trial's ``stop`` line closes the recording, so the outcome
and its cause are known when ``metadata.yaml`` is written).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import yaml

from hvla_platform import __version__
from hvla_platform.lib.core.keys import check_id
from hvla_platform.lib.formats.recording.contract import (
    CAMERA_TOPICS,
    G1_ARM_JOINTS,
    G1_JOINTS,
    MSG_STRING,
    ROBOT_MODEL_G1,
    TOPIC_TASK,
)
from hvla_platform.lib.formats.recording.mcap_writer import RecordingWriter
from hvla_platform.lib.formats.recording.metadata import ROLLOUT_SOURCE, parse_recording_metadata
from hvla_platform.lib.formats.recording.runtime_policy import RuntimeDataPolicy, rollout_rights_block
from hvla_platform.lib.sim.frames import encode_compressed

#: Topic of the safety events in a rollout recording (std_msgs/String holding one JSON line).
SAFETY_TOPIC = "/safety/events"
_TASK_EVERY_NS = 1_000_000_000


@dataclass
class _Trial:
    """One rollout being recorded."""

    index: int
    seed: int
    episode_id: str
    folder: Path
    writer: RecordingWriter
    start_ns: int
    t0_s: float
    task: str
    last_ns: int = 0
    next_task_ns: int = 0
    frames_redacted: int = 0
    causes: dict[str, str] = field(default_factory=dict)
    stance: float = 0.0


class _RecordingEnv:
    """An environment whose observations and guarded commands are recorded (see the module docstring)."""

    def __init__(self, env: Any, recorder: RolloutRecorder):
        self._env = env
        self._rec = recorder

    def reset(self, seed: int) -> Mapping[str, Any]:
        obs = self._env.reset(seed)
        scene = getattr(getattr(self._env, "sim", None), "scene", None)
        self._rec._start_trial(int(seed), obs, str(obs.get("task") or getattr(self._env, "task", "")),
                               float(getattr(scene, "stance_height", 0.0) or 0.0))
        return obs

    def step(self, arm_targets: np.ndarray) -> Mapping[str, Any]:
        self._rec._command(arm_targets)
        obs = self._env.step(arm_targets)
        self._rec._observe(obs)
        return obs

    @property
    def success(self) -> bool:
        return bool(self._env.success)

    @property
    def task(self) -> str:
        return str(self._env.task)

    def close(self) -> None:
        self._env.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)


class _RecordingSafetyLog:
    """A robot safety log whose lines are also written to the open rollout's ``/safety/events``."""

    def __init__(self, slog: Any, recorder: RolloutRecorder):
        self._slog = slog
        self._rec = recorder

    def write(self, event: str, **fields: Any) -> None:
        if self._slog is not None:
            self._slog.write(event, **fields)
        self._rec._safety_event(event, fields)

    def mode(self, mode: str, **fields: Any) -> None:
        self.write("mode", mode=mode, **fields)

    def close(self) -> None:
        if self._slog is not None:
            self._slog.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._slog, name)


class RolloutRecorder:
    """Records the trials of one ``hvla deploy`` run as rollout recordings (see the module docstring).

    Args:
        out_root: recordings root; a trial goes to ``<out_root>/<UTC day>/<robot_id>/<episode_id>/``
            with ``<episode_id>_0.mcap``, ``metadata.yaml`` and ``operator_notes.md`` (what
            ``hvla ingest`` lands).
        policy: the deployment's validated runtime-data policy.
        robot_id: the robot's id (a lake key segment).
        server_url: the policy server's URL as the robot connected to it.
        server_metadata: the metadata the server sent (``checkpoint``, ``checkpoint_key``,
            ``server_instance``, ``serving_use``).
        operator: who ran the deployment.
        now_ns: clock (ns since the Unix epoch) stamping each trial's start.

    Episode ids are ``ro-<UTC start of the run>-<6 hex>-<robot_id>-<trial, 3 digits>``.

    Attributes:
        folders: the recordings written so far, in trial order.

    Raises:
        UnsafeIdError: ``robot_id`` is not a safe id.
    """

    def __init__(self, out_root: str | Path, policy: RuntimeDataPolicy, *, robot_id: str, server_url: str,
                 server_metadata: Mapping[str, Any], operator: str = "deploy",
                 now_ns: Callable[[], int] = time.time_ns):
        self.out_root = Path(out_root)
        self.policy = policy
        self.robot_id = check_id(robot_id, "robot id")
        self.server_url = server_url
        self.meta = dict(server_metadata)
        self.operator = operator
        self._now_ns = now_ns
        self._trial: _Trial | None = None
        self._count = 0
        # one run id per deploy: its UTC start and 6 random hex digits (two robots started in the same second differ)
        self._run = f"{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.folders: list[Path] = []

    # -- hooks ---------------------------------------------------------------------------------
    def wrap_env(self, factory: Callable[[], Any]) -> Callable[[], Any]:
        """An environment factory whose environments are recorded."""
        return lambda: _RecordingEnv(factory(), self)

    def wrap_safety_log(self, slog: Any) -> Any:
        """A safety log (``write``/``mode``/``close``) that also records each line into the open trial."""
        return _RecordingSafetyLog(slog, self)

    def finish(self, result: Mapping[str, Any] | None = None) -> list[Path]:
        """Close a trial left open (the loop raised before its ``stop`` line: recorded as a fault
        naming ``result``'s ``stop_cause`` or ``recording interrupted``); return :attr:`folders`."""
        if self._trial is not None:
            cause = str((result or {}).get("stop_cause") or "recording interrupted before the trial's stop line")
            self._trial.causes.setdefault("fault", cause)
            self._close_trial("fault")
        return self.folders

    # -- recording -----------------------------------------------------------------------------
    def _stamp(self, obs: Mapping[str, Any]) -> int:
        tr = self._trial
        assert tr is not None
        t = float(obs.get("time_s", 0.0)) - tr.t0_s
        return max(tr.last_ns, tr.start_ns + int(round(t * 1e9)))

    def _start_trial(self, seed: int, obs: Mapping[str, Any], task: str, stance: float) -> None:
        if self._trial is not None:  # a trial that never wrote its stop line
            self.finish()
        start_ns = int(self._now_ns())
        day = dt.datetime.fromtimestamp(start_ns / 1e9, dt.timezone.utc).date().isoformat()
        ep = check_id(f"ro-{self._run}-{self.robot_id}-{self._count:03d}", "episode id")
        folder = self.out_root / day / self.robot_id / ep
        folder.mkdir(parents=True, exist_ok=False)
        self._trial = _Trial(index=self._count, seed=seed, episode_id=ep, folder=folder,
                             writer=RecordingWriter(folder / f"{ep}_0.mcap"), start_ns=start_ns,
                             t0_s=float(obs.get("time_s", 0.0)), task=task, last_ns=start_ns,
                             next_task_ns=start_ns, stance=stance)
        self._count += 1
        self._observe(obs)

    def _observe(self, obs: Mapping[str, Any]) -> None:
        tr = self._trial
        if tr is None:
            return
        ns = self._stamp(obs)
        tr.last_ns = ns
        w = tr.writer
        w.joint_state(ns, ns, G1_JOINTS, np.asarray(obs["state"], dtype=np.float64),
                      np.asarray(obs.get("velocity", ()), dtype=np.float64))
        red = self.policy.redaction
        t_s = (ns - tr.start_ns) / 1e9
        for cam, frame in (obs.get("images") or {}).items():
            if cam not in CAMERA_TOPICS:
                continue
            pixels = np.asarray(frame)
            if red is not None and red.is_private(cam, t_s):
                tr.frames_redacted += 1
                if red.rule == "drop":
                    continue
                pixels = np.zeros_like(pixels)
            w.image(cam, ns, ns, encode_compressed(pixels, "jpeg"), "jpeg")
        w.locomotion(ns, ns, 0, 0, 0, tr.stance)
        if ns >= tr.next_task_ns:
            w.task(ns, tr.task, topic=TOPIC_TASK)
            tr.next_task_ns = ns + _TASK_EVERY_NS

    def _command(self, arm_targets: np.ndarray) -> None:
        tr = self._trial
        if tr is not None:
            tr.writer.arm_command(tr.last_ns, tr.last_ns, G1_ARM_JOINTS, np.asarray(arm_targets, dtype=np.float64))

    def _safety_event(self, event: str, fields: Mapping[str, Any]) -> None:
        tr = self._trial
        if tr is None:
            return
        tr.last_ns += 1_000  # after everything recorded so far (events carry no robot time)
        tr.writer.add(SAFETY_TOPIC, MSG_STRING, {"data": json.dumps({"event": event, **fields}, default=str)},
                      tr.last_ns)
        if event == "mode" and fields.get("mode") == "fault":
            tr.causes["fault"] = str(fields.get("cause") or fields.get("error") or "fault")
        elif event == "mode" and fields.get("mode") == "estop":
            tr.causes["estop"] = str(fields.get("reason") or "emergency stop")
        elif event == "stop" and fields.get("trial") == tr.index:
            self._close_trial(str(fields.get("reason")))

    def _close_trial(self, outcome: str) -> None:
        tr = self._trial
        assert tr is not None
        self._trial = None
        tr.writer.close(metadata={"hvla_rollout": {"checkpoint": str(self.meta.get("checkpoint")),
                                                   "server_instance": str(self.meta.get("server_instance")),
                                                   "platform_version": __version__}})
        day = tr.folder.parent.parent.name
        cause = tr.causes.get(outcome) if outcome in ("fault", "estop") else None
        red = self.policy.redaction
        rollout = {
            "checkpoint": self.meta.get("checkpoint"), "checkpoint_key": self.meta.get("checkpoint_key"),
            "server_instance": self.meta.get("server_instance"), "server": self.server_url,
            "serving_use": self.meta.get("serving_use"), "trial": tr.index, "seed": tr.seed,
            "start_ns": tr.start_ns, "outcome": outcome, "cause": cause,
            "incident": ({"kind": outcome, "cause": cause or outcome} if outcome in ("fault", "estop") else None),
            "safety_topic": SAFETY_TOPIC,
            "redaction": (None if red is None else {"rule": red.rule, "cameras": list(red.cameras),
                                                    "windows_s": [list(w) for w in red.windows_s],
                                                    "frames_redacted": tr.frames_redacted}),
            "runtime_policy": self.policy.model_dump(mode="json"),
        }
        meta = {
            "episode_id": tr.episode_id,
            "robot": {"id": self.robot_id, "model": ROBOT_MODEL_G1},
            "capture_date": day, "operator": self.operator, "site": self.policy.site,
            "customer": self.policy.customer, "task": tr.task, "source": ROLLOUT_SOURCE,
            "recorder": {"name": "hvla-deploy", "version": __version__},
            "topics": sorted([*CAMERA_TOPICS.values(), "/joint_states", "/arm_controller/joint_command",
                              "/locomotion/command", TOPIC_TASK, SAFETY_TOPIC]),
            "duration_s": round((tr.last_ns - tr.start_ns) / 1e9, 6),
            "outcome": {"success": outcome == "success"},
            "rights": rollout_rights_block(self.policy, day),
            "rollout": rollout,
        }
        parse_recording_metadata(meta, source=str(tr.folder / "metadata.yaml"))  # the contract ingest reads
        (tr.folder / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        (tr.folder / "operator_notes.md").write_text(
            f"# {tr.episode_id}\n\n- rollout of checkpoint {self.meta.get('checkpoint')} served by "
            f"{self.server_url} (instance {self.meta.get('server_instance')})\n- outcome: {outcome}"
            f"{': ' + cause if cause else ''}\n- runtime-data policy: {self.policy.policy_id} "
            f"(retraining {'permitted' if self.policy.retrain_permission.granted else 'NOT permitted'})\n")
        self.folders.append(tr.folder)
