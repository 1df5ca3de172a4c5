"""One openpi-client process (``WebsocketClientPolicy``, openpi-client 0.1.2) sending observations
and timing round trips. Runs in the openpi-client venv; prints one JSON object.

Usage: python client_load.py PORT CAMERAS (--requests N | --rate HZ --duration S) [--warmup N]
"""

import argparse
import json
import time

import numpy as np
from openpi_client import websocket_client_policy


def observation(cameras: int, rng: np.random.Generator) -> dict:
    """state (32,) float32, ``cameras`` × (224, 224, 3) uint8 images, a prompt."""
    obs = {"observation/state": rng.uniform(-1, 1, 32).astype(np.float32), "prompt": "pick up the red cube"}
    for i in range(cameras):
        obs[f"observation/images/cam{i}"] = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    return obs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("cameras", type=int)
    ap.add_argument("--requests", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--duration", type=float, default=0.0)
    ap.add_argument("--warmup", type=int, default=50)
    args = ap.parse_args()
    obs = observation(args.cameras, np.random.default_rng(args.port))
    policy = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=args.port)
    for _ in range(args.warmup):
        policy.infer(obs)
    rtt, infer, errors = [], [], 0
    if args.requests:
        for _ in range(args.requests):
            t0 = time.perf_counter()
            out = policy.infer(obs)
            rtt.append((time.perf_counter() - t0) * 1e3)
            infer.append(out["server_timing"]["infer_ms"])
    else:
        period, t_end = 1.0 / args.rate, time.perf_counter() + args.duration
        nxt = time.perf_counter()
        while nxt < t_end:
            delay = nxt - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            try:
                out = policy.infer(obs)
                rtt.append((time.perf_counter() - t0) * 1e3)
                infer.append(out["server_timing"]["infer_ms"])
            except Exception:  # noqa: BLE001 - counted, the load goes on
                errors += 1
            nxt += period
            if nxt < time.perf_counter() - period:  # fell behind by more than a period: do not burst
                nxt = time.perf_counter()
    print(json.dumps({"rtt_ms": rtt, "infer_ms": infer, "errors": errors,
                      "request_bytes": len(policy._packer.pack(obs))}))


if __name__ == "__main__":
    main()
