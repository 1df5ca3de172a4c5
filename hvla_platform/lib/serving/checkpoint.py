"""From a checkpoint reference to a policy that may be served: locate, authorize, load, describe.

A reference is a local directory (``.hvla/lake/checkpoints/<config>/<exp>/<step>``, as openpi's
``--policy.dir``) or a lake key (``checkpoints/<config>/<exp>/<step>``, fetched from the lake,
local or S3). Authorization (:func:`hvla_platform.lib.serving.authorization.authorize_serving`) happens
before the policy is loaded and before any socket is opened.

Evaluation in the simulator is not a deployment: :data:`EVALUATION_USE` serves a checkpoint to the
evaluation's own robot client on loopback, whatever its ``serving_allowed`` list says (evaluating a
model is part of training it, which its data's ``internal_training`` right already covers).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from hvla_platform.lib.core.manifest import CheckpointManifest
from hvla_platform.lib.serving.authorization import authorize_serving, verify_checkpoint
from hvla_platform.lib.core.lake import Lake, LocalLake
from hvla_platform.lib.training import checkpoint as ckpt

#: the serving use of closed-loop evaluation in simulation (loopback only, never a robot).
EVALUATION_USE = "simulation_eval"
#: wire protocol this server speaks (openpi-client 0.1.2's websocket protocol).
PROTOCOL = "openpi-websocket (openpi-client 0.1.2)"


@contextlib.contextmanager
def resolve_checkpoint(ref: str | Path, lake: Lake | None) -> Iterator[tuple[Path, str | None]]:
    """Yield ``(local step dir, lake key or None)`` for a checkpoint reference.

    Raises:
        FileNotFoundError: ``ref`` is neither an existing directory nor a checkpoint in the lake.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        key = None
        if isinstance(lake, LocalLake):
            try:
                key = path.resolve().relative_to(lake.root).as_posix()
            except ValueError:
                key = None
        yield path.resolve(), key
        return
    key = str(ref).strip("/")
    if lake is not None and lake.read_manifest(key) is not None:
        with lake.local_artifact(key) as step_dir:
            yield step_dir, key
        return
    where = f" nor a committed artifact in {lake.root_uri()}" if lake is not None else ""
    raise FileNotFoundError(f"checkpoint {ref!r} is neither a directory{where}; expected "
                            "checkpoints/<config>/<exp>/<step> as written by the `checkpoint` asset")


def authorize(step_dir: Path, use: str, *, lake: Lake | None, checkpoint_key: str | None) -> CheckpointManifest:
    """The committed checkpoint manifest, after verifying the folder against it
    (:func:`~hvla_platform.lib.serving.authorization.verify_checkpoint`) and checking the
    checkpoint may be served for ``use`` (not for :data:`EVALUATION_USE`, which is verified only).

    Raises:
        CheckpointError: ``step_dir`` is not a complete checkpoint.
        CheckpointTampered: uncommitted or modified folder. ServingRefused: the deployment use is
            blocked, retention passed, or the checkpoint is flagged in ``lake``.
    """
    step_dir = ckpt.check_checkpoint_dir(step_dir)
    if use == EVALUATION_USE:
        return verify_checkpoint(step_dir)
    return authorize_serving(step_dir, use, lake=lake, checkpoint_key=checkpoint_key)


def server_metadata(policy_metadata: dict[str, Any], *, use: str, checkpoint_key: str | None) -> dict[str, Any]:
    """The metadata dict a server sends after the handshake: the policy's own metadata plus the
    serving use, protocol and an ``observation_spec`` (key → shape/dtype) clients can build from."""
    spec: dict[str, Any] = {"observation/state": {"shape": [policy_metadata["state_dim"]], "dtype": "float32",
                                                  "names": policy_metadata.get("state_names")}}
    for cam, shape in policy_metadata.get("image_shapes", {}).items():
        spec[f"observation/images/{cam}"] = {"shape": list(shape), "dtype": "uint8"}
    spec["prompt"] = {"dtype": "str", "optional": True}
    return {**policy_metadata, "checkpoint_key": checkpoint_key, "serving_use": use, "protocol": PROTOCOL,
            "observation_spec": spec,
            "action_spec": {"shape": [policy_metadata["action_horizon"], policy_metadata["action_dim"]],
                            "dtype": "float32", "names": policy_metadata.get("action_names"), "units": "rad"}}
