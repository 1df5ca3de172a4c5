"""The ``hvla_openpi`` inspect-robots policy: a client of an openpi-protocol policy server
(``hvla serve``, or the evaluation's own :class:`~hvla_platform.lib.serving.server.PolicyServer`
on loopback), built from the metadata the server sends.

Unlike inspect-robots' ``openpi`` clients (fixed keys of other robots, 224 × 224 images), every key,
camera, image shape, state joint and action joint comes from the server
(:mod:`.server_spec`). One query per chunk: the observation holds what the robot client of
``hvla deploy`` sends (:func:`hvla_platform.lib.serving.control_loop.build_observation`: the state
joints picked by name, the camera images as they are, the instruction as the prompt), and each
chunk's rows are reordered from the server's action joints to the embodiment's
(``ActionSemantics.dim_labels``). inspect-robots' ``DefaultController`` then executes the first
``replan_every`` actions of each chunk open-loop and queries again, as ``hvla deploy`` does.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from inspect_robots import (
    Action, ActionChunk, ActionSemantics, Box, CameraSpec, EmbodimentInfo, Observation, ObservationSpace,
    PolicyBase, PolicyConfig, PolicyInfo, Scene)

from hvla_platform.lib.evaluation.inspect_robots.errors import PluginConfigError
from hvla_platform.lib.evaluation.inspect_robots.names import POLICY
from hvla_platform.lib.evaluation.inspect_robots.server_spec import ServerSpec, parse_server_metadata
from hvla_platform.lib.serving.client import PolicyClient, ServerError

#: environment variable holding the server's API key (the one ``hvla serve`` / ``hvla deploy`` read).
API_KEY_ENV = "HVLA_API_KEY"


class OpenpiServerPolicy(PolicyBase):
    """An inspect-robots policy answered by a policy server over openpi's websocket protocol.

    Args:
        url: ``ws://host:port`` of the server.
        api_key: sent as ``Authorization: Api-Key <key>`` (None: no key).
        replan_every: actions executed from each chunk before querying again (1 ≤ replan_every ≤
            the server's action horizon H); None: H (the whole chunk).
        connect_timeout_s: keep retrying a refused connection this long, seconds.
        recv_timeout_s: longest wait for one reply, seconds.

    Attributes:
        spec: the server's layout (:class:`~.server_spec.ServerSpec`).
        metadata: the server's metadata as sent.
        server_url: ``url`` (inspect-robots names it in connection-failure hints).

    Raises:
        ServerMetadataError: the metadata lacks ``observation_spec`` / ``action_spec`` or they
            cannot be read (a :class:`ValueError`; the connection is closed).
        ValueError: ``replan_every`` outside 1..H.
        ServerError / OSError / TimeoutError: no server, or the handshake was refused.
    """

    def __init__(self, url: str = "ws://127.0.0.1:8000", *, api_key: str | None = None,
                 replan_every: int | None = None, connect_timeout_s: float = 30.0,
                 recv_timeout_s: float = 60.0):
        self.server_url = url
        self._client = PolicyClient(url, None, api_key=api_key, connect_timeout_s=connect_timeout_s,
                                    recv_timeout_s=recv_timeout_s)
        try:
            self.metadata = dict(self._client.metadata)
            self.spec: ServerSpec = parse_server_metadata(self.metadata, url)
            horizon = self.spec.action_horizon
            replan = horizon if replan_every is None else int(replan_every)
            if not 1 <= replan <= horizon:
                raise ValueError(f"replan_every={replan} must be between 1 and the server's action horizon "
                                 f"{horizon}")
        except BaseException:
            self._client.close()
            raise
        spec = self.spec
        self.info = PolicyInfo(
            name=POLICY,
            action_space=Box((len(spec.action_names),),
                             semantics=ActionSemantics("joint_pos", dim_labels=spec.action_names)),
            observation_space=ObservationSpace(
                cameras=tuple(CameraSpec(cam, *img.shape) for cam, img in spec.images.items()),
                state_keys=frozenset(spec.state_names)),
            checkpoint=spec.checkpoint)
        self.config = PolicyConfig(action_horizon=horizon, replan_interval=replan)
        self._order: np.ndarray | None = None
        self._prompt: str | None = None
        self._latencies_s: list[float] = []

    # ---- inspect-robots hooks ---------------------------------------------------------------
    def bind(self, embodiment_info: EmbodimentInfo) -> None:
        """Map the server's action joints onto the embodiment's (its action ``dim_labels``) and check
        that each camera the embodiment offers has the image shape the server expects.

        Raises:
            ValueError: the embodiment does not name its action dimensions, they are not a
                permutation of the server's action joints, or a camera's (H, W, C) differs.
        """
        sem = embodiment_info.action_space.semantics
        labels = list(sem.dim_labels) if sem is not None and sem.dim_labels is not None else None
        if labels is None:
            raise ValueError(f"embodiment {embodiment_info.name!r} does not name its action dimensions "
                             "(ActionSemantics.dim_labels); the server's action joints cannot be placed")
        names = list(self.spec.action_names)
        if sorted(labels) != sorted(names) or len(set(names)) != len(names):
            raise ValueError(f"the server's action joints {names} are not a permutation of embodiment "
                             f"{embodiment_info.name!r}'s {labels}")
        offered = {c.name: (c.height, c.width, c.channels) for c in embodiment_info.observation_space.cameras}
        for cam, img in self.spec.images.items():
            if cam in offered and offered[cam] != img.shape:
                raise ValueError(f"camera {cam!r}: embodiment {embodiment_info.name!r} gives {offered[cam]} "
                                 f"images, the policy server expects {img.shape}")
        self._order = np.asarray([names.index(n) for n in labels], dtype=np.int64)

    def reset(self, scene: Scene) -> None:
        """Start a trial: the scene's instruction is the prompt unless observations carry one."""
        self._prompt = scene.instruction
        self._latencies_s = []

    def act(self, observation: Observation) -> ActionChunk:
        """One server query: ``observation`` → an (H,)-action chunk in the embodiment's joint order.

        Each action is (A,) float32 joint targets, radians; ``inference_latency_s`` is the round trip.

        Raises:
            RuntimeError: :meth:`bind` was not called (``inspect_robots.eval`` calls it).
            ValueError: the observation lacks a state joint or camera the server needs, an image has
                another shape, or the reply is not (≥ replan_every, A) finite actions.
            ServerError: the server rejected the observation or closed the connection.
        """
        if self._order is None:
            raise RuntimeError("bind(embodiment_info) must be called before act() (inspect_robots.eval does)")
        spec = self.spec
        missing = [n for n in spec.state_names if n not in observation.state]
        if missing:
            raise ValueError(f"observation has no state for joint(s) {missing} the server needs")
        obs: dict[str, Any] = {spec.state_key: np.concatenate(
            [np.asarray(observation.state[n], dtype=spec.state_dtype).reshape(-1) for n in spec.state_names])}
        for cam, img in spec.images.items():
            if cam not in observation.images:
                raise ValueError(f"observation has no {cam!r} image (has {sorted(observation.images)})")
            frame = np.asarray(observation.images[cam])
            if frame.shape != img.shape or frame.dtype != np.uint8:
                raise ValueError(f"camera {cam!r} gives {frame.shape} {frame.dtype}, the server expects "
                                 f"{img.shape} uint8")
            obs[img.key] = frame
        if spec.prompt_key is not None:
            obs[spec.prompt_key] = observation.instruction or self._prompt or ""
        t0 = time.perf_counter()
        reply = self._client.infer(obs)
        latency = time.perf_counter() - t0
        chunk = np.asarray(reply["actions"], dtype=np.float32)
        a = len(spec.action_names)
        if chunk.ndim != 2 or chunk.shape[1] != a:
            raise ValueError(f"server returned actions of shape {chunk.shape}, expected (H, {a})")
        if chunk.shape[0] < (self.config.replan_interval or 1):
            raise ValueError(f"server chunk has {chunk.shape[0]} actions, fewer than replan_every="
                             f"{self.config.replan_interval}")
        if not np.all(np.isfinite(chunk)):
            raise ValueError("server returned non-finite actions")
        self._latencies_s.append(latency)
        ordered = chunk[:, self._order]
        return ActionChunk(actions=[Action(data=row) for row in ordered], inference_latency_s=latency,
                           meta={"server_timing": dict(reply.get("server_timing") or {})})

    def on_trial_end(self, record: Any, log_dir: str, run_id: str) -> None:
        """Record the trial's ``queries`` and ``infer_ms_mean`` (round trip, ms) in its EvalLog metadata."""
        record.metadata["queries"] = len(self._latencies_s)
        record.metadata["infer_ms_mean"] = (float(np.mean(self._latencies_s)) * 1000.0
                                            if self._latencies_s else None)

    # ---- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (normal closure)."""
        self._client.close()

    def __enter__(self) -> "OpenpiServerPolicy":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_api_key(api_key_file: str | None) -> str | None:
    """The API key from ``api_key_file`` (its first line) or ``$HVLA_API_KEY``; None when neither is set.

    Raises:
        FileNotFoundError: ``api_key_file`` does not exist.
    """
    if api_key_file:
        return Path(api_key_file).expanduser().read_text(encoding="utf-8").splitlines()[0].strip() or None
    return os.environ.get(API_KEY_ENV) or None


def openpi_server_policy(url: str = "ws://127.0.0.1:8000", api_key_file: str | None = None,
                         replan_every: int | None = 5, connect_timeout_s: float = 30.0) -> OpenpiServerPolicy:
    """Registry factory of ``hvla_openpi`` (``inspect-robots run --policy hvla_openpi -P url=ws://…``).

    ``replan_every`` defaults to 5, the eval report's and ``hvla deploy``'s; the API key is read from
    ``api_key_file`` or ``$HVLA_API_KEY`` (as ``hvla deploy``). See :class:`OpenpiServerPolicy`.

    Raises:
        PluginConfigError: no server at ``url`` (within ``connect_timeout_s``), the handshake was
            refused, its metadata cannot be used, or ``replan_every`` is out of range.
    """
    try:
        return OpenpiServerPolicy(url, api_key=read_api_key(api_key_file), replan_every=replan_every,
                                  connect_timeout_s=connect_timeout_s)
    except PluginConfigError:
        raise
    except (ValueError, ServerError, OSError) as exc:  # OSError: refused, unreachable, timed out, no key file
        raise PluginConfigError(f"{POLICY}: cannot use the policy server at {url}: {exc}") from exc
