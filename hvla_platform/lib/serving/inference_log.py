"""The policy server's inference log (seed 000: "server inference log — checkpoint id, request
time, latency, action shape; ML/infra team; short, sampled").

One JSON object per line in ``<log_dir>/inference-<UTC date>.jsonl`` (a new file each UTC day, so
retention is deleting old files). Request lines hold no camera frames, states or prompts. Storing
observations is a separate, explicit switch: with ``sample_every=N`` every N-th request's
observation is written to ``<log_dir>/samples/<time>-<instance>-<conn>-<seq>.npz`` and the request
line names the file.

Every line carries ``instance``: the id of the :class:`InferenceLog` that wrote it (8 random hex
digits and the process id, e.g. ``3f9c2a1b-41327``), new for each server. Several servers may share
a directory and so a daily file, and each numbers its connections from 1: a connection is
``(instance, conn)``, a request ``(instance, conn, seq)`` (:func:`connection_of`).

Line kinds (``event``): ``start`` (checkpoint, host, port, auth on/off, sampling), ``open`` /
``close`` (connection id, peer, close code), ``request`` (``t`` request time ISO-8601 UTC,
``checkpoint``, ``conn``, ``seq``, ``latency_ms`` receive→reply, ``infer_ms``, ``request_bytes``,
``action_shape``, ``status`` ok/error, ``error``; ``delivered: false`` when the reply could not be
sent), ``refused`` (handshake refused: bad API key,
unknown path), ``dropped`` (request lines lost to overload: ``requests`` since the last such line,
``total``), ``recovered`` (a partial last line left by a crash was cut off when the file was
reopened: ``truncated_bytes``), ``stop``.

Crash safety: lines are appended with ``os.write`` on an ``O_APPEND`` descriptor, whole lines per
call, so a crash (even SIGKILL) can leave at most one partial, newline-less line at the end of the
file. :func:`read_log` ignores such an unterminated tail (it is an interrupted write, not a
record), and the next :class:`InferenceLog` on the directory cuts it off and says so in a
``recovered`` line. Every complete line is valid JSON.
"""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import json
import logging
import os
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Any, Mapping

import numpy as np

logger = logging.getLogger(__name__)

#: request records formatted and written per chunk by the writer (bounds how long it holds the GIL
#: between two ``os.write`` calls, which release it: ~0.5 ms).
_CHUNK = 256


class InferenceLog:
    """Append-only JSONL inference log with a background writer; thread-safe.

    The request path (:meth:`record_ok`) costs one bounded ``deque.append`` of the request's
    numbers. A writer thread formats and appends them every :attr:`flush_interval_s`, in chunks of
    256 lines (each ``os.write`` releases the GIL, so the server's event loop waits at most one
    chunk). Event lines (:meth:`write`: open, close, refused, errors, prompt warnings) are written
    at once by the caller, after any pending request lines, so the file stays in order.
    :meth:`flush` (the server calls it when it stops) and :meth:`close` write everything pending;
    an ``atexit`` hook flushes a log that was never closed.

    Overload: at most :attr:`max_pending` request records wait for the writer (e.g. the disk
    stalls). Beyond that a request line is **dropped and counted** (:attr:`dropped`, a warning in
    the Python log on the first one, and a ``dropped`` line in the file once the writer catches
    up); requests are never slowed down or refused because of the log.

    Args:
        log_dir: directory for the daily files (created).
        checkpoint: checkpoint id written on every request line.
        sample_every: store every N-th request's observation (0 = never, the default).
        max_pending: request records buffered before lines are dropped (default 100,000: 20 s of
            requests at 5,000 per second, ~15 MB).

    Raises:
        ValueError: ``sample_every < 0`` or ``max_pending < 1``.
    """

    #: seconds a request line may wait in the buffer before the writer appends it to the file.
    flush_interval_s = 0.5

    def __init__(self, log_dir: str | Path, checkpoint: str, *, sample_every: int = 0, max_pending: int = 100_000):
        if sample_every < 0:
            raise ValueError(f"sample_every must be >= 0, got {sample_every}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint = checkpoint
        #: this log's (its server's) instance id on every line: 8 random hex digits and the pid.
        self.instance = f"{uuid.uuid4().hex[:8]}-{os.getpid()}"
        self._checkpoint_json = json.dumps(checkpoint)
        self.sample_every = int(sample_every)
        self.max_pending = int(max_pending)
        #: request lines dropped because :attr:`max_pending` records were already waiting.
        self.dropped = 0
        self._dropped_reported = 0
        self._lock = threading.Lock()  # held while popping + writing: keeps lines in order
        self._next_day = 0.0  # epoch seconds at which the current file's UTC day ends
        self._iso_cache = (-1, "")  # (epoch second, its ISO prefix): one attribute, swapped whole
        self._shape_json: dict[tuple, str] = {}
        self._fd: int | None = None
        self._count = 0
        self._pending: collections.deque = collections.deque()
        self._wake = threading.Event()
        self._closed = False
        with self._lock:  # today's file now: a partial last line a crash left is cut off at once
            self._open_for(time.time())
        self._writer = threading.Thread(target=_writer_loop, args=(weakref.ref(self), self._wake),
                                        name="inference-log-writer", daemon=True)
        self._writer.start()
        _OPEN_LOGS.add(self)

    @property
    def path(self) -> Path:
        """Today's log file."""
        return self.log_dir / f"inference-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}.jsonl"

    # ---- the request path ---------------------------------------------------------------------
    def record_ok(self, t: float, conn: int, seq: int, latency_ms: float, infer_ms: float, request_bytes: int,
                  action_shape: tuple[int, ...], observation: Mapping[str, Any] | None = None) -> None:
        """Log one successful request: a bounded append; the writer thread formats it later.

        Args:
            t: when the request arrived, epoch seconds (``time.time()``).
            conn, seq: connection id and request number on it (ints).
            latency_ms: server-side time from receiving the request to sending the reply, ms.
            infer_ms: time spent in the policy, ms.
            request_bytes: size of the request message, bytes.
            action_shape: shape of the returned chunk, e.g. ``(10, 14)``.
            observation: the decoded observation; only used when sampling is on and this request
                is due (its arrays are then kept until the writer stores them: writable ones are
                copied, read-only views of the message are not).
        """
        if self.sample_every > 0:
            self._count += 1  # under the GIL; requests are handled on one event loop
            if self._count % self.sample_every == 0 and observation is not None:
                self._enqueue((t, "sample", conn, seq, latency_ms, infer_ms, request_bytes, action_shape,
                               _frozen(observation)))
                return
        if len(self._pending) >= self.max_pending:
            self._drop()
            return
        self._pending.append((t, conn, seq, latency_ms, infer_ms, request_bytes, action_shape))

    def next_is_sampled(self) -> bool:
        """Whether the next :meth:`record_ok` stores its observation (sampling on and that request due)."""
        return self.sample_every > 0 and (self._count + 1) % self.sample_every == 0

    def request(self, *, t: float, conn: int, seq: int, latency_ms: float, infer_ms: float | None,
                request_bytes: int, action_shape: list[int] | tuple[int, ...] | None, status: str, error: str = "",
                observation: Mapping[str, Any] | None = None, delivered: bool = True) -> None:
        """Log one request, successful or not (see :meth:`record_ok` for the fields).

        Error lines (``status != "ok"``, with ``error`` cut to 500 characters) are written at once,
        as event lines, so they are in the file when the connection's error frame leaves. So is a
        request whose reply could not be delivered (``delivered=False``: the client left or stopped
        reading): its line has ``"delivered": false`` and ``error`` says why.
        """
        if status == "ok" and delivered and infer_ms is not None and action_shape is not None:
            self.record_ok(t, int(conn), int(seq), float(latency_ms), float(infer_ms), int(request_bytes),
                           tuple(int(d) for d in action_shape), observation)
            return
        fields: dict[str, Any] = {"checkpoint": self.checkpoint, "conn": conn, "seq": seq,
                                  "latency_ms": round(latency_ms, 3),
                                  "infer_ms": None if infer_ms is None else round(infer_ms, 3),
                                  "request_bytes": request_bytes,
                                  "action_shape": None if action_shape is None else list(action_shape),
                                  "status": status}
        if error:
            fields["error"] = error[:500]
        if not delivered:
            fields["delivered"] = False
        if self.sample_every > 0:
            self._count += 1
            if self._count % self.sample_every == 0 and observation is not None:
                fields["sample"] = self._store_sample(t, conn, seq, observation)
        self.write("request", t=self._iso(t), **fields)

    def _enqueue(self, item: tuple) -> None:
        if len(self._pending) >= self.max_pending:
            self._drop()
        else:
            self._pending.append(item)

    def _drop(self) -> None:
        self.dropped += 1
        if self.dropped == 1:
            logger.warning("inference log %s: %d request lines waiting for the writer; dropping (and counting) "
                           "further request lines until it catches up", self.log_dir, self.max_pending)

    # ---- event lines and writing ---------------------------------------------------------------
    def write(self, event: str, **fields: Any) -> None:
        """Append ``{"event": event, "t": <now>, "instance": …, **fields}`` after any pending request lines, now."""
        ts = time.time()
        line = json.dumps({"event": event, "t": fields.pop("t", None) or self._iso(ts), "instance": self.instance,
                           **fields}, default=str)
        self.flush(then=(line, ts))

    def flush(self, then: tuple[str, float] | None = None) -> None:
        """Write every pending request line (and ``then``, a ``(line, epoch seconds)`` after them).

        Returns once they are in the file (the OS's page cache: a process crash loses nothing
        flushed; an OS crash may)."""
        self._drain()
        with self._lock:
            self._report_drops()
            if then is not None:
                self._append([then[0]], then[1])

    def _drain(self) -> None:
        """Pop, format and append the pending records, a chunk at a time, in order."""
        pending = self._pending
        while pending:
            with self._lock:
                chunk = [pending.popleft() for _ in range(min(_CHUNK, len(pending)))]
                try:
                    self._write_chunk(chunk)
                except Exception:
                    self.dropped += len(chunk)  # e.g. disk full: counted (at most), reported by a ``dropped`` line
                    raise

    def _write_chunk(self, records: list[tuple]) -> None:
        """Format request records as JSON lines and append them (lock held). The formatting is
        inlined (one f-string per line, the ISO second and the shape's JSON cached): it is the
        writer's whole cost, ~2 µs a line."""
        lines: list[str] = []
        append = lines.append
        head = '{"event": "request", "t": "'
        mid = ('+00:00", "instance": "' + self.instance + '", "checkpoint": ' + self._checkpoint_json
               + ', "conn": ')
        shapes = self._shape_json
        (sec_now, prefix), day_end = self._iso_cache, self._next_day
        for rec in records:
            if len(rec) != 7:  # a sampled request: store the observation, then its line
                rec = self._sample_record(rec)
            t = rec[0]
            if t >= day_end or self._fd is None:  # a new UTC day: what is formatted goes to the old file
                if lines:
                    self._append(lines, None)
                    lines = []
                    append = lines.append
                self._open_for(t)
                day_end = self._next_day
            if len(rec) == 2:
                append(rec[1])
                continue
            t, conn, seq, latency_ms, infer_ms, nbytes, shape = rec
            sec = int(t)
            if sec != sec_now:
                prefix = dt.datetime.fromtimestamp(sec, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
                sec_now = sec
            shape_json = shapes.get(shape)
            if shape_json is None:
                shape_json = shapes[shape] = json.dumps([int(d) for d in shape])
            append(f'{head}{prefix}.{int((t - sec) * 1e6):06d}{mid}{conn}, "seq": {seq}, "latency_ms": '
                   f'{latency_ms:.3f}, "infer_ms": {infer_ms:.3f}, "request_bytes": {nbytes}, "action_shape": '
                   f'{shape_json}, "status": "ok"}}')
        self._iso_cache = (sec_now, prefix)
        if lines:
            self._append(lines, None)

    def _report_drops(self) -> None:
        """A ``dropped`` line for the request lines lost since the last one (lock held)."""
        n = self.dropped - self._dropped_reported
        if n > 0:
            self._dropped_reported += n
            ts = time.time()
            self._append([json.dumps({"event": "dropped", "t": self._iso(ts), "instance": self.instance,
                                      "requests": n, "total": self.dropped,
                                      "max_pending": self.max_pending})], ts)

    def _append(self, lines: list[str], ts: float | None) -> None:
        """Append whole lines with ``os.write`` calls (lock held); ``ts`` picks the day's file."""
        if ts is not None:
            self._open_for(ts)
        data = ("\n".join(lines) + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def _iso(self, ts: float) -> str:
        """ISO-8601 UTC with microseconds of epoch seconds ``ts`` (the second's prefix is cached)."""
        sec = int(ts)
        cached, prefix = self._iso_cache
        if sec != cached:
            prefix = dt.datetime.fromtimestamp(sec, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
            self._iso_cache = (sec, prefix)
        return f"{prefix}.{int((ts - sec) * 1e6):06d}+00:00"

    def _open_for(self, ts: float) -> None:
        """Make the file of ``ts``'s UTC day the current one (lock held), cutting off a partial
        last line a crash left there."""
        if ts >= self._next_day or self._fd is None:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            day = dt.datetime.fromtimestamp(ts, dt.timezone.utc).date()
            path = self.log_dir / f"inference-{day:%Y-%m-%d}.jsonl"
            cut = _cut_partial_tail(path)
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._next_day = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp()
            if cut:
                now = time.time()
                line = json.dumps({"event": "recovered", "t": self._iso(now), "instance": self.instance,
                                   "truncated_bytes": cut,
                                   "reason": "partial last line of an interrupted write (crash) removed"})
                os.write(self._fd, (line + "\n").encode())

    def _sample_record(self, rec: tuple) -> tuple:
        """Store a sampled observation (writer side, lock held); the request line naming it."""
        t, _, conn, seq, latency_ms, infer_ms, nbytes, shape, observation = rec
        sample = self._store_sample(t, conn, seq, observation)
        line = json.dumps({"event": "request", "t": self._iso(t), "instance": self.instance,
                           "checkpoint": self.checkpoint, "conn": conn,
                           "seq": seq, "latency_ms": round(latency_ms, 3), "infer_ms": round(infer_ms, 3),
                           "request_bytes": nbytes, "action_shape": list(shape), "status": "ok", "sample": sample})
        return (t, line)

    def _store_sample(self, t: float, conn: int, seq: int, observation: Mapping[str, Any]) -> str:
        d = self.log_dir / "samples"
        d.mkdir(exist_ok=True)
        name = f"{dt.datetime.fromtimestamp(t, dt.timezone.utc):%Y%m%dT%H%M%S%f}-{self.instance}-{conn}-{seq}.npz"
        arrays = {k.replace("/", "__"): np.asarray(v) for k, v in observation.items()
                  if isinstance(v, np.ndarray) or k == "prompt"}
        tmp = d / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        tmp.rename(d / name)
        return f"samples/{name}"

    def close(self) -> None:
        """Write everything pending (and a ``dropped`` line if any were dropped), stop the writer
        thread and close the file. Idempotent."""
        self._closed = True
        self._wake.set()
        if self._writer.is_alive() and threading.current_thread() is not self._writer:
            self._writer.join()
        self.flush()
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


    def __del__(self) -> None:
        # a log dropped without close(): write what is pending (nothing else can hold the lock now)
        if getattr(self, "_pending", None) and not self._closed:
            try:
                self.flush()
            except OSError:
                logger.exception("inference log %s: final flush failed", self.log_dir)
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)


def _frozen(observation: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``observation`` whose arrays cannot change before they are stored:
    read-only arrays (the server's zero-copy views of immutable message bytes) are kept as they are,
    writable ones are copied."""
    return {k: (v.copy() if isinstance(v, np.ndarray) and v.flags.writeable else v) for k, v in observation.items()}


def detached(observation: Mapping[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``observation`` holding no view of another buffer: arrays that do not own
    their data (the server's zero-copy views of a message) are copied, so the message can be freed
    while the copy waits to be stored."""
    return {k: (v.copy() if isinstance(v, np.ndarray) and not v.flags.owndata else v) for k, v in observation.items()}


def _cut_partial_tail(path: Path) -> int:
    """Truncate ``path`` after its last newline; return the number of bytes removed (0: none)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        pos = size
        while pos > 0:  # scan back for the last newline, 64 KiB at a time
            step = min(65536, pos)
            fh.seek(pos - step)
            block = fh.read(step)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = pos - step + i + 1
                break
            pos -= step
        else:
            keep = 0
        fh.truncate(keep)
        return size - keep


def _writer_loop(ref: "weakref.ref[InferenceLog]", wake: threading.Event) -> None:
    """The writer thread: every ``flush_interval_s`` (or when woken to close), drain the log."""
    while True:
        log = ref()
        if log is None:
            return
        interval, closed = log.flush_interval_s, log._closed
        del log  # do not keep the log alive while sleeping
        if not closed:
            wake.wait(interval)
        log = ref()
        if log is None:
            return
        try:
            log._drain()
            with log._lock:
                log._report_drops()
        except Exception:  # noqa: BLE001 - a full disk must not kill the writer silently; retried next interval
            logger.exception("inference log %s: writing failed (retrying in %.1f s)", log.log_dir, log.flush_interval_s)
        if log._closed:
            return
        del log


#: logs not yet garbage-collected; the ``atexit`` hook flushes those never closed.
_OPEN_LOGS: "weakref.WeakSet[InferenceLog]" = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    for log in list(_OPEN_LOGS):
        if not log._closed:
            log.flush()


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All complete lines of one inference log file, parsed.

    An unterminated last line (a write in progress, or one a crash interrupted; see the module
    docstring) is not a record and is left out.

    Raises:
        json.JSONDecodeError: a complete line is not valid JSON (the file was not written by
            :class:`InferenceLog`).
    """
    text = Path(path).read_text(encoding="utf-8")
    complete = text[:text.rfind("\n") + 1]
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def connection_of(line: Mapping[str, Any]) -> tuple[str, int]:
    """The connection a log line belongs to, ``(instance, conn)``: connection ids restart at 1 in
    each server, so several servers writing one file are told apart by ``instance``.

    Raises:
        KeyError: the line has no ``instance`` or ``conn`` (a ``start``/``stop`` line, or a file
            written before instance ids).
    """
    return str(line["instance"]), int(line["conn"])
