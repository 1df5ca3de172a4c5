"""The policy server's inference log (seed 000: "server inference log — checkpoint id, request
time, latency, action shape; ML/infra team; short, sampled").

One JSON object per line in ``<log_dir>/inference-<UTC date>.jsonl`` (a new file each UTC day, so
retention is deleting old files). Request lines hold no camera frames, states or prompts. Storing
observations is a separate, explicit switch: with ``sample_every=N`` every N-th request's
observation is written to ``<log_dir>/samples/<time>-<conn>-<seq>.npz`` and the request line names
the file.

Line kinds (``event``): ``start`` (checkpoint, host, port, auth on/off, sampling), ``open`` /
``close`` (connection id, peer, close code), ``request`` (``t`` request time ISO-8601 UTC,
``checkpoint``, ``conn``, ``seq``, ``latency_ms`` receive→reply, ``infer_ms``, ``request_bytes``,
``action_shape``, ``status`` ok/error, ``error``), ``refused`` (handshake refused: bad API key,
unknown path).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np


class InferenceLog:
    """Append-only JSONL inference log; thread-safe. Lines are buffered and flushed at most
    :attr:`flush_interval_s` after they were written (and on :meth:`close`), so logging costs a
    request microseconds, not a system call; a crash loses at most that much of the log.

    Args:
        log_dir: directory for the daily files (created).
        checkpoint: checkpoint id written on every request line.
        sample_every: store every N-th request's observation (0 = never, the default).
    """

    def __init__(self, log_dir: str | Path, checkpoint: str, *, sample_every: int = 0):
        if sample_every < 0:
            raise ValueError(f"sample_every must be >= 0, got {sample_every}")
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint = checkpoint
        self.sample_every = int(sample_every)
        self._lock = threading.Lock()
        self._day: str | None = None
        self._fh = None
        self._count = 0
        self._last_flush = 0.0

    #: seconds a written line may stay in the buffer before it is flushed to the file.
    flush_interval_s = 0.5

    @property
    def path(self) -> Path:
        """Today's log file."""
        return self.log_dir / f"inference-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.jsonl"

    def write(self, event: str, **fields: Any) -> None:
        """Append one line ``{"event": event, "t": <now>, **fields}``."""
        now = dt.datetime.now(dt.timezone.utc)
        line = json.dumps({"event": event, "t": fields.pop("t", None) or now.isoformat(timespec="microseconds"),
                           **fields}, default=str, check_circular=False)
        with self._lock:
            day = f"{now:%Y-%m-%d}"
            if day != self._day:
                if self._fh is not None:
                    self._fh.close()
                self._fh = open(self.log_dir / f"inference-{day}.jsonl", "a", encoding="utf-8")
                self._day = day
            self._fh.write(line + "\n")
            mono = time.monotonic()
            if event != "request" or mono - self._last_flush >= self.flush_interval_s:
                self._fh.flush()
                self._last_flush = mono

    def request(self, *, t: dt.datetime, conn: int, seq: int, latency_ms: float, infer_ms: float | None,
                request_bytes: int, action_shape: list[int] | None, status: str, error: str = "",
                observation: Mapping[str, Any] | None = None) -> None:
        """Log one request; store its observation if sampling is on and this request is due.

        Args:
            t: when the request arrived (UTC).
            latency_ms: server-side time from receiving the request to sending the reply, ms.
            infer_ms: time spent in the policy, ms (None when it was not reached).
            observation: the decoded observation; only used when sampling is on.
        """
        sample = None
        with self._lock:
            self._count += 1
            due = self.sample_every > 0 and self._count % self.sample_every == 0
        if due and observation is not None:
            sample = self._store_sample(t, conn, seq, observation)
        fields: dict[str, Any] = {"checkpoint": self.checkpoint, "conn": conn, "seq": seq,
                                  "latency_ms": round(latency_ms, 3),
                                  "infer_ms": None if infer_ms is None else round(infer_ms, 3),
                                  "request_bytes": request_bytes, "action_shape": action_shape, "status": status}
        if error:
            fields["error"] = error[:500]
        if sample:
            fields["sample"] = sample
        self.write("request", t=t.isoformat(timespec="microseconds"), **fields)

    def _store_sample(self, t: dt.datetime, conn: int, seq: int, observation: Mapping[str, Any]) -> str:
        d = self.log_dir / "samples"
        d.mkdir(exist_ok=True)
        name = f"{t:%Y%m%dT%H%M%S%f}-{conn}-{seq}.npz"
        arrays = {k.replace("/", "__"): np.asarray(v) for k, v in observation.items()
                  if isinstance(v, np.ndarray) or k == "prompt"}
        tmp = d / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        tmp.rename(d / name)
        return f"samples/{name}"

    def flush(self) -> None:
        """Write buffered lines to the file now."""
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                self._last_flush = time.monotonic()

    def close(self) -> None:
        """Flush and close the current file."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
                self._day = None


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All lines of one inference log file, parsed."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
