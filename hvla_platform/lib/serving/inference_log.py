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

import collections
import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np


class InferenceLog:
    """Append-only JSONL inference log; thread-safe.

    A successful request costs one ``deque.append`` of its numbers; they are formatted and written
    in batches by :meth:`flush`, which the server calls every :attr:`flush_interval_s` (and which
    every other event line, and :meth:`close`, does first, so lines stay in order). A crash loses at
    most that interval of request lines.

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
        self._checkpoint_json = json.dumps(checkpoint)
        self.sample_every = int(sample_every)
        self._lock = threading.Lock()
        self._next_day = 0.0  # epoch seconds at which the current file's UTC day ends
        self._iso_sec = -1
        self._iso_prefix = ""
        self._fh = None
        self._count = 0
        self._pending: collections.deque = collections.deque()

    #: seconds a written line may stay in the buffer before it is flushed to the file.
    flush_interval_s = 0.5

    @property
    def path(self) -> Path:
        """Today's log file."""
        return self.log_dir / f"inference-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.jsonl"

    def write(self, event: str, **fields: Any) -> None:
        """Append ``{"event": event, "t": <now>, **fields}`` (after any pending request lines) and flush."""
        ts = time.time()
        line = json.dumps({"event": event, "t": fields.pop("t", None) or self._iso(ts), **fields}, default=str)
        self.flush(then=(line, ts))

    def _iso(self, ts: float) -> str:
        """ISO-8601 UTC with microseconds of epoch seconds ``ts`` (the second's prefix is cached)."""
        sec = int(ts)
        if sec != self._iso_sec:
            self._iso_prefix = dt.datetime.fromtimestamp(sec, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            self._iso_sec = sec
        return f"{self._iso_prefix}.{int((ts - sec) * 1e6):06d}+00:00"

    def _open_for(self, ts: float) -> None:
        """Make the file of ``ts``'s UTC day the current one (lock held)."""
        if ts >= self._next_day or self._fh is None:
            if self._fh is not None:
                self._fh.close()
            day = dt.datetime.fromtimestamp(ts, dt.timezone.utc).date()
            self._fh = open(self.log_dir / f"inference-{day:%Y-%m-%d}.jsonl", "a", encoding="utf-8")
            self._next_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp()

    def _format(self, rec: tuple) -> str:
        t, conn, seq, latency_ms, infer_ms, nbytes, shape = rec
        return (f'{{"event": "request", "t": "{self._iso(t)}", "checkpoint": {self._checkpoint_json}, '
                f'"conn": {int(conn)}, "seq": {int(seq)}, "latency_ms": {latency_ms:.3f}, "infer_ms": '
                f'{infer_ms:.3f}, "request_bytes": {int(nbytes)}, "action_shape": '
                f'[{", ".join(str(int(d)) for d in shape)}], "status": "ok"}}')

    def flush(self, then: tuple[str, float] | None = None) -> None:
        """Format and write the pending request lines (and ``then``, a ``(line, time)`` to write after
        them), and flush the file."""
        with self._lock:
            pending = self._pending
            while pending:
                rec = pending.popleft()
                self._open_for(rec[0])
                self._fh.write(self._format(rec) + "\n")
            if then is not None:
                self._open_for(then[1])
                self._fh.write(then[0] + "\n")
            if self._fh is not None:
                self._fh.flush()

    def request(self, *, t: float, conn: int, seq: int, latency_ms: float, infer_ms: float | None,
                request_bytes: int, action_shape: list[int] | None, status: str, error: str = "",
                observation: Mapping[str, Any] | None = None) -> None:
        """Log one request; store its observation if sampling is on and this request is due.

        Args:
            t: when the request arrived, epoch seconds (``time.time()``).
            latency_ms: server-side time from receiving the request to sending the reply, ms.
            infer_ms: time spent in the policy, ms (None when it was not reached).
            observation: the decoded observation; only used when sampling is on.
        """
        self._count += 1  # under the GIL; exact counting only matters for sampling
        sample = None
        if self.sample_every > 0 and self._count % self.sample_every == 0 and observation is not None:
            sample = self._store_sample(t, conn, seq, observation)
        if status == "ok" and not sample and infer_ms is not None and action_shape is not None:
            # the hot path: keep the numbers; flush() formats them in a batch
            self._pending.append((t, conn, seq, latency_ms, infer_ms, request_bytes, tuple(action_shape)))
            return
        fields: dict[str, Any] = {"checkpoint": self.checkpoint, "conn": conn, "seq": seq,
                                  "latency_ms": round(latency_ms, 3),
                                  "infer_ms": None if infer_ms is None else round(infer_ms, 3),
                                  "request_bytes": request_bytes, "action_shape": action_shape, "status": status}
        if error:
            fields["error"] = error[:500]
        if sample:
            fields["sample"] = sample
        self.write("request", t=self._iso(t), **fields)

    def _store_sample(self, t: float, conn: int, seq: int, observation: Mapping[str, Any]) -> str:
        d = self.log_dir / "samples"
        d.mkdir(exist_ok=True)
        name = f"{dt.datetime.fromtimestamp(t, dt.timezone.utc):%Y%m%dT%H%M%S%f}-{conn}-{seq}.npz"
        arrays = {k.replace("/", "__"): np.asarray(v) for k, v in observation.items()
                  if isinstance(v, np.ndarray) or k == "prompt"}
        tmp = d / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        tmp.rename(d / name)
        return f"samples/{name}"

    def close(self) -> None:
        """Flush and close the current file."""
        self.flush()
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All lines of one inference log file, parsed."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
