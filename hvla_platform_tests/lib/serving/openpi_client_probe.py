"""Runs in the openpi-client venv (.venv-openpi, numpy < 2), NOT in the platform's venv.

Drives an hvla policy server with openpi-client 0.1.2's own ``WebsocketClientPolicy`` and
``ActionChunkBroker`` and prints what it saw as one JSON object on stdout.

Usage: python openpi_client_probe.py HOST PORT API_KEY
"""

import json
import sys

import numpy as np
from openpi_client import action_chunk_broker, websocket_client_policy


def observation(meta: dict, rng: np.random.Generator) -> dict:
    """A raw observation built from the server's observation_spec."""
    obs = {}
    for key, spec in meta["observation_spec"].items():
        if key == "prompt":
            obs[key] = "reach the red target with the right hand"
        elif spec["dtype"] == "uint8":
            obs[key] = rng.integers(0, 256, size=spec["shape"], dtype=np.uint8)
        else:
            obs[key] = rng.uniform(-0.5, 0.5, size=spec["shape"]).astype(np.float32)
    return obs


def main() -> None:
    host, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out: dict = {"numpy": np.__version__}
    rng = np.random.default_rng(0)
    policy = websocket_client_policy.WebsocketClientPolicy(host=host, port=port, api_key=key)
    meta = policy.get_server_metadata()
    out["metadata"] = {k: meta[k] for k in ("checkpoint", "action_horizon", "action_dim", "serving_use", "protocol")}
    obs = observation(meta, rng)
    res = policy.infer(obs)
    out["actions_shape"], out["actions_dtype"] = list(res["actions"].shape), str(res["actions"].dtype)
    out["server_timing_keys"] = sorted(res["server_timing"])
    chunk = np.asarray(res["actions"])

    # ActionChunkBroker: one server query per horizon, then one action per call
    horizon = int(meta["action_horizon"])
    broker = action_chunk_broker.ActionChunkBroker(policy, action_horizon=horizon)
    steps = [broker.infer(obs)["actions"] for _ in range(horizon + 1)]
    out["broker_step_shape"] = list(steps[0].shape)
    out["broker_matches_chunk"] = bool(np.allclose(np.stack(steps[:horizon]), chunk, atol=1e-6))
    out["broker_requeried_same"] = bool(np.allclose(steps[horizon], chunk[0], atol=1e-6))

    # a wrongly shaped observation: openpi-client raises RuntimeError with the server's text frame
    bad = dict(obs)
    bad["observation/state"] = np.zeros(3, np.float32)
    try:
        policy.infer(bad)
        out["bad_observation_error"] = None
    except RuntimeError as exc:
        out["bad_observation_error"] = str(exc)

    # a wrong API key is refused at the handshake
    try:
        websocket_client_policy.WebsocketClientPolicy(host=host, port=port, api_key=key + "-wrong")
        out["wrong_key_error"] = None
    except Exception as exc:  # noqa: BLE001 - websockets raises InvalidStatus
        out["wrong_key_error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
