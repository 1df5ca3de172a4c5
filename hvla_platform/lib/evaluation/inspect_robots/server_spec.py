"""What an openpi-protocol policy server wants, read from the metadata it sends after the handshake.

No observation key, camera, image size or action dimension is assumed: all of them come from the
server's ``observation_spec`` and ``action_spec`` (``hvla serve`` sends both, built by
:func:`hvla_platform.lib.serving.checkpoint.server_metadata`)::

    observation_spec: {key: {"shape": [...], "dtype": "float32" | "uint8" | "str", "names": [...]?}}
    action_spec:      {"shape": [H, A], "dtype": "float32", "names": [A joint names], "units": "rad"}

An observation entry is read by its dtype and shape: ``str`` is the prompt, ``uint8`` of shape
``(H, W, C)`` a camera image (the camera is the key's last ``/`` segment, e.g.
``observation/images/head`` → ``head``), a 1-D float entry with ``names`` the proprioceptive
state (joint positions picked by name, radians).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from hvla_platform.lib.evaluation.inspect_robots.errors import PluginConfigError

#: metadata keys the client needs.
REQUIRED_KEYS = ("observation_spec", "action_spec")
_FLOATS = ("float16", "float32", "float64")


class ServerMetadataError(PluginConfigError):
    """The server's metadata lacks (or garbles) something the client needs to build observations
    (a :class:`ValueError`; inspect-robots' command line shows it as one line)."""


@dataclass(frozen=True)
class ImageInput:
    """One camera the server wants: observation ``key``, ``shape`` (H, W, C) uint8."""

    key: str
    shape: tuple[int, int, int]


@dataclass(frozen=True)
class ServerSpec:
    """The observation and action layout of a policy server.

    Attributes:
        state_key: observation key of the state vector (e.g. ``observation/state``).
        state_names: (S,) joint names of the state vector, in order.
        state_dtype: its dtype (e.g. float32).
        images: camera name → :class:`ImageInput`.
        prompt_key: observation key of the task instruction, None when the server takes none.
        action_horizon: H, actions per chunk.
        action_names: (A,) joint names of each action row, in order (radians, absolute targets).
        checkpoint: the served checkpoint (``checkpoint_key`` or ``checkpoint``), if stated.
    """

    state_key: str
    state_names: tuple[str, ...]
    state_dtype: np.dtype
    images: dict[str, ImageInput]
    prompt_key: str | None
    action_horizon: int
    action_names: tuple[str, ...]
    checkpoint: str | None


def _fail(url: str, what: str) -> ServerMetadataError:
    return ServerMetadataError(f"policy server {url}: {what}; the hvla_openpi client needs "
                               "'observation_spec' (observation keys with shape/dtype, state joint names) "
                               "and 'action_spec' (shape [H, A], joint names) in its metadata, as "
                               "`hvla serve` sends")


def parse_server_metadata(metadata: Mapping[str, Any], url: str) -> ServerSpec:
    """Read a server's observation and action layout from its handshake metadata.

    Args:
        metadata: the dict the server sent after the handshake.
        url: the server's address (for messages).

    Raises:
        ServerMetadataError: a required key is missing, or an entry cannot be read (no state entry
            with joint names, an image that is not (H, W, C) uint8, an observation the client cannot
            provide, an action spec whose names do not match its shape, units other than radians).
    """
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise _fail(url, f"metadata lacks {missing} (it has {sorted(str(k) for k in metadata)})")
    obs_spec, act_spec = metadata["observation_spec"], metadata["action_spec"]
    if not isinstance(obs_spec, Mapping) or not isinstance(act_spec, Mapping):
        raise _fail(url, "observation_spec and action_spec must be maps")
    state: list[tuple[str, tuple[str, ...], np.dtype]] = []
    images: dict[str, ImageInput] = {}
    prompt_key = None
    for key, entry in obs_spec.items():
        if not isinstance(entry, Mapping) or "dtype" not in entry:
            raise _fail(url, f"observation_spec[{key!r}] has no dtype")
        dtype, shape = str(entry["dtype"]), [int(v) for v in entry.get("shape") or []]
        if dtype == "str":
            prompt_key = str(key)
        elif dtype == "uint8" and len(shape) == 3:
            cam = str(key).rsplit("/", 1)[-1]
            if cam in images:
                raise _fail(url, f"two image keys end in the camera name {cam!r}")
            images[cam] = ImageInput(str(key), (shape[0], shape[1], shape[2]))
        elif dtype in _FLOATS and len(shape) == 1:
            names = entry.get("names")
            if not names or len(names) != shape[0]:
                raise _fail(url, f"state entry {key!r} of shape {shape} does not name its {shape[0]} joints "
                                 f"(names: {names!r})")
            state.append((str(key), tuple(str(n) for n in names), np.dtype(dtype)))
        else:
            raise _fail(url, f"cannot provide observation {key!r} (dtype {dtype}, shape {shape})")
    if len(state) != 1:
        found = [s[0] for s in state]
        raise _fail(url, f"observation_spec must have exactly one named state vector, found {found}")
    a_shape = [int(v) for v in act_spec.get("shape") or []]
    a_names = act_spec.get("names")
    if len(a_shape) != 2 or min(a_shape) < 1:
        raise _fail(url, f"action_spec shape must be [H, A], got {act_spec.get('shape')!r}")
    if not a_names or len(a_names) != a_shape[1]:
        raise _fail(url, f"action_spec names {a_names!r} do not name its {a_shape[1]} action dimensions")
    if act_spec.get("units", "rad") != "rad":
        raise _fail(url, f"action units {act_spec.get('units')!r}: only joint targets in radians are "
                         "supported")
    ckpt = metadata.get("checkpoint_key") or metadata.get("checkpoint")
    return ServerSpec(state_key=state[0][0], state_names=state[0][1], state_dtype=state[0][2], images=images,
                      prompt_key=prompt_key, action_horizon=a_shape[0],
                      action_names=tuple(str(n) for n in a_names), checkpoint=str(ckpt) if ckpt else None)
