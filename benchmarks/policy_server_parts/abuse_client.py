"""An abusive client of the policy server (benchmarks/policy_server.py, "abuse"). Runs in the
platform's venv (plain websockets client); prints one JSON object when done.

Usage: python abuse_client.py PORT KIND DURATION_S [--max-mb 16]

KIND:
  worst   — connects again and again and sends, in turn, the worst-case messages at the message cap:
            16.7 M empty msgpack maps (the decode bomb of issue 15), 1,000 lists of 16,384 empty maps
            (passes every header check), and a valid observation padded to the cap; reads each answer
            (an error frame, a 1009 close, or actions) and times it.
  noread  — connects with a client that stops reading its socket after two frames and sends valid
            observations padded to the cap, as fast as the server takes them, never reading a reply.
"""

import argparse
import json
import time

import numpy as np
import websockets
from websockets.sync.client import connect

from hvla_platform.lib.serving.wire import pack

MiB = 1024 * 1024


def payloads(cap: int) -> list[tuple[str, bytes]]:
    """(name, message) of each worst-case message, each at most ``cap`` bytes."""
    n = cap - 5
    bomb = b"\xdd" + n.to_bytes(4, "big") + b"\x80" * n
    lists = min(1000, (cap - 3) // (3 + 16384))
    nested = b"\xdc" + lists.to_bytes(2, "big") + (b"\xdc\x40\x00" + b"\x80" * 16384) * lists
    obs = {"observation/state": np.zeros(32, np.float32), "prompt": "pick up the red cube"}
    padded = pack({**obs, "pad": np.zeros(cap - len(pack(obs)) - 200, np.uint8)})
    return [("bomb", bomb), ("nested", nested), ("max_size", padded)]


def worst(port: int, duration_s: float, cap: int) -> dict:
    msgs = payloads(cap)
    answered: dict[str, list[float]] = {name: [] for name, _ in msgs}
    answers: dict[str, str] = {}
    t_end, i = time.monotonic() + duration_s, 0
    while time.monotonic() < t_end:
        name, msg = msgs[i % len(msgs)]
        i += 1
        with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None, open_timeout=30) as ws:
            ws.recv(timeout=30)  # metadata
            t0 = time.perf_counter()
            ws.send(msg)
            try:
                reply = ws.recv(timeout=30)
                answers[name] = reply[:120] if isinstance(reply, str) else "actions"
            except websockets.ConnectionClosed as exc:
                answers[name] = f"closed {exc.rcvd.code if exc.rcvd else None}"
            answered[name].append((time.perf_counter() - t0) * 1e3)
    return {"kind": "worst", "sent": i, "answer": answers,
            "answer_ms_max": {k: max(v) if v else None for k, v in answered.items()},
            "answer_ms_p50": {k: float(np.median(v)) if v else None for k, v in answered.items()}}


def noread(port: int, duration_s: float, cap: int) -> dict:
    msg = payloads(cap)[2][1]
    sent, closed = 0, None
    ws = connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None, max_queue=1, open_timeout=30)
    t_end = time.monotonic() + duration_s
    try:
        while time.monotonic() < t_end:
            ws.send(msg)  # blocks while the server does not read; replies are never read
            sent += 1
    except websockets.ConnectionClosed as exc:
        closed = str(exc)
    finally:
        ws.close_socket()
    return {"kind": "noread", "sent": sent, "closed": closed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("kind", choices=["worst", "noread"])
    ap.add_argument("duration", type=float)
    ap.add_argument("--max-mb", type=int, default=16)
    args = ap.parse_args()
    fn = worst if args.kind == "worst" else noread
    print(json.dumps(fn(args.port, args.duration, args.max_mb * MiB)))


if __name__ == "__main__":
    main()
