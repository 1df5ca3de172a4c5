"""Robot-side safety: the emergency stop, action limits and the robot safety log.

Seed 000 separates three logs; this is the second, owned by the robotics/safety team and kept
longer than the server's inference log: "Robot safety log — mode, emergency stop, controller
state". It lives on the robot side (``hvla deploy``), never on the policy server.

- :class:`EmergencyStop`: a latch set by SIGINT/SIGTERM, by the presence of a stop file (an
  operator's button or another process: ``touch <file>``) or by code. Once set it stays set.
- :class:`ActionGuard`: before a target reaches the joint controller it is clipped to the joint
  limits (radians) and to a maximum change per control step (radians per step, i.e. a joint speed
  limit at the control rate). Non-finite targets are a fault: the robot stops.
- :class:`ClippedStreak`: the guard escalates — after N consecutive clipped commands the robot
  stops as a fault (:class:`GuardFault`) naming the joints.
- :class:`SafetyLog`: JSONL lines ``{"t", "event", ...}``: ``mode`` (connecting, ready, running,
  stopped, estop, fault), ``limit`` (a clipped command: trial, step, joints, largest excess),
  ``stop`` (trial, reason, steps, sim time) and ``estop`` (reason, source, ``latency_s`` from the
  source to the safe stop, where the robot was: ``before_start``, ``waiting_for_policy``,
  ``between_commands``).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np


class SafetyLog:
    """Append-only JSONL robot safety log, flushed line by line. ``path=None`` keeps lines in memory only.

    Attributes:
        lines: every line written (dicts), for summaries and tests.
    """

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.lines: list[dict[str, Any]] = []
        self._fh = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        """Append ``{"t": now UTC, "event": event, **fields}``."""
        line = {"t": dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds"), "event": event, **fields}
        with self._lock:
            self.lines.append(line)
            if self._fh:
                self._fh.write(json.dumps(line, default=str) + "\n")
                self._fh.flush()

    def mode(self, mode: str, **fields: Any) -> None:
        """Record a mode change (connecting, ready, running, stopped, estop, fault)."""
        self.write("mode", mode=mode, **fields)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fh:
                self._fh.close()
                self._fh = None


class EmergencyStop:
    """A latching emergency stop, watched independently of whatever the robot is waiting for.

    Sources: :meth:`trigger` (code), SIGINT/SIGTERM (:meth:`install_signal_handlers`) and the
    presence of ``stop_file`` (checked by :meth:`is_set` and, once :meth:`start_watching` was
    called, by a watcher thread every ``poll_s`` seconds).

    The latency of a stop (:meth:`latency_s`) is measured from the moment its source appeared —
    the wall-clock time of the signal, of the :meth:`trigger` call, or the stop file's
    modification time (``st_mtime``; a file already present when the stop was armed counts from
    the arming time) — to the moment the caller commands the safe stop.

    Args:
        stop_file: if given, the stop is triggered as soon as this file exists.
        poll_s: watcher thread period, seconds (default 0.01 s = 10 ms).

    Attributes:
        reason: why the stop was set (``"stop file … present"``, ``"signal SIGINT"``, …); "" until set.
        source: ``"file"``, ``"signal"`` or ``"code"``; "" until set.
        source_time: wall-clock time (``time.time()``, seconds) the source appeared; None until set.
        armed_at: wall-clock time this stop was created (``time.time()``).
    """

    def __init__(self, stop_file: str | Path | None = None, *, poll_s: float = 0.01):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self.stop_file = Path(stop_file) if stop_file else None
        self.poll_s = float(poll_s)
        self.reason = ""
        self.source = ""
        self.source_time: float | None = None
        self.armed_at = time.time()
        self._watcher: threading.Thread | None = None
        self._stop_watching = threading.Event()

    def trigger(self, reason: str, *, source: str = "code", source_time: float | None = None) -> None:
        """Set the stop (idempotent; the first reason, source and time are kept).

        Args:
            reason: shown in the safety log and on the console.
            source: ``file``, ``signal`` or ``code``.
            source_time: wall-clock time the source appeared (default: now).
        """
        with self._lock:
            if not self._event.is_set():
                self.reason, self.source = reason, source
                self.source_time = time.time() if source_time is None else float(source_time)
                self._event.set()

    def _check_file(self) -> None:
        if self.stop_file is None:
            return
        try:
            mtime = self.stop_file.stat().st_mtime
        except OSError:  # absent (or unreadable directory entry): no stop from the file
            return
        self.trigger(f"stop file {self.stop_file} present", source="file",
                     source_time=min(time.time(), max(mtime, self.armed_at)))

    def is_set(self) -> bool:
        """True once triggered (checks the stop file too)."""
        if not self._event.is_set():
            self._check_file()
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` seconds until the stop is set; True if it is."""
        return self._event.wait(timeout_s) or self.is_set()

    def latency_s(self, now: float | None = None) -> float | None:
        """Seconds from the source appearing to ``now`` (default: ``time.time()``); None while not set."""
        if self.source_time is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.source_time)

    def start_watching(self) -> None:
        """Watch the stop file from a daemon thread every ``poll_s`` s, so the stop is latched (and
        its time recorded) even while the caller is busy. Idempotent; no-op without a stop file."""
        if self.stop_file is None or self._watcher is not None:
            return

        def watch() -> None:
            while not self._event.is_set() and not self._stop_watching.wait(self.poll_s):
                self._check_file()

        self._watcher = threading.Thread(target=watch, name="estop-watch", daemon=True)
        self._watcher.start()

    def stop_watching(self) -> None:
        """End the watcher thread (the latch keeps its state)."""
        self._stop_watching.set()
        if self._watcher is not None:
            self._watcher.join(timeout=1.0)

    def install_signal_handlers(self) -> None:
        """Make SIGINT (Ctrl-C) and SIGTERM trigger the stop instead of killing the process
        mid-command. Main thread only.

        Python runs signal handlers in the main thread between bytecodes, i.e. only after a C call
        in progress (a simulator step, a render) returns. So the arrival is also taken from
        :func:`signal.set_wakeup_fd`: the interpreter's C-level handler writes the signal number to
        a socket at once, and a watcher thread blocked on it latches the stop with that time (the
        main thread's handler then finds it set; whichever runs first wins).
        """
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda s, _f: self.trigger(f"signal {signal.Signals(s).name}",
                                                          source="signal"))
        rx, tx = socket.socketpair()
        tx.setblocking(False)
        signal.set_wakeup_fd(tx.fileno(), warn_on_full_buffer=False)
        self._wakeup = (rx, tx)  # kept referenced: the interpreter holds only the fd number

        def watch_signals() -> None:
            while True:
                data = rx.recv(64)
                if not data:
                    return
                for signum in data:
                    if signum in (signal.SIGINT, signal.SIGTERM):
                        self.trigger(f"signal {signal.Signals(signum).name}", source="signal")

        threading.Thread(target=watch_signals, name="estop-signals", daemon=True).start()


class ActionGuard:
    """Clip joint targets to joint limits and to a maximum change per control step.

    Args:
        lower, upper: (J,) joint limits, radians, in the order targets are given.
        max_step_rad: largest change of any joint target per control step, radians (``inf``: off).
            At 20 Hz, 0.25 rad/step is 5 rad/s.

    Raises:
        ValueError: limits of different shapes, lower > upper, or max_step_rad <= 0.
    """

    def __init__(self, lower: Sequence[float], upper: Sequence[float], max_step_rad: float = 0.25):
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        if self.lower.shape != self.upper.shape or self.lower.ndim != 1 or np.any(self.lower > self.upper):
            raise ValueError("lower and upper must be (J,) with lower <= upper")
        if not max_step_rad > 0:
            raise ValueError(f"max_step_rad must be > 0, got {max_step_rad}")
        self.max_step_rad = float(max_step_rad)

    def filter(self, target: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, dict[str, Any] | None]:
        """(safe target (J,) float32, None or ``{"joints": [indices], "max_excess_rad": float}``).

        ``previous`` is the last commanded (or, at the start, the measured) position.

        Raises:
            ValueError: ``target`` is not finite or has the wrong shape (a fault: stop the robot).
        """
        t = np.asarray(target, dtype=np.float64)
        if t.shape != self.lower.shape:
            raise ValueError(f"action has shape {t.shape}, the robot expects {self.lower.shape}")
        if not np.all(np.isfinite(t)):
            raise ValueError("action contains non-finite values")
        prev = np.asarray(previous, dtype=np.float64)
        safe = np.clip(t, prev - self.max_step_rad, prev + self.max_step_rad)
        safe = np.clip(safe, self.lower, self.upper)
        excess = np.abs(t - safe)
        hit = np.flatnonzero(excess > 1e-9)
        info = {"joints": hit.tolist(), "max_excess_rad": float(excess.max())} if hit.size else None
        return safe.astype(np.float32), info


class GuardFault(RuntimeError):
    """The action guard escalated: too many consecutive commands were clipped (a fault: the robot stops)."""


class ClippedStreak:
    """Escalate the action guard: a fault after ``max_steps`` consecutive clipped commands.

    One clipped command is the guard doing its job (e.g. the first step of a chunk that jumps);
    a policy that keeps pushing against a joint or speed limit for ``max_steps`` control steps in a
    row is not converging and should not keep driving the robot.

    Args:
        max_steps: consecutive clipped commands that end the trial as a fault (≥ 1); None: never.

    Raises:
        ValueError: ``max_steps`` < 1.
    """

    def __init__(self, max_steps: int | None):
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_clipped_steps must be >= 1, got {max_steps}")
        self.max_steps = max_steps
        self.count = 0
        self._joints: dict[str, None] = {}

    def update(self, clipped_joints: Sequence[str] | None) -> None:
        """Record one command: the names of its clipped joints, or None/empty when it was not clipped.

        Raises:
            GuardFault: this is the ``max_steps``-th clipped command in a row; the message names the
                joints clipped during the streak.
        """
        if not clipped_joints:
            self.count, self._joints = 0, {}
            return
        self.count += 1
        self._joints.update(dict.fromkeys(clipped_joints))
        if self.max_steps is not None and self.count >= self.max_steps:
            raise GuardFault(f"the action guard clipped {self.count} consecutive commands "
                             f"(joints: {', '.join(self._joints)})")


HOLD = "no further command; joint controller holds the last target"
"""The robot's safe stop, as recorded in ``estop`` lines: the loop sends nothing more and the joint
controller keeps its last target (the simulated G1's controller ramps to it and holds)."""


def record_estop(safety_log: SafetyLog | None, estop: EmergencyStop, during: str, *, trial: int | None = None,
                 step: int | None = None, safe_stop: str = HOLD) -> float | None:
    """The safe stop is commanded now: write the ``estop`` line and return its latency.

    Args:
        safety_log: where to write (None: only measure).
        estop: a set :class:`EmergencyStop`.
        during: where the robot was: ``before_start``, ``connecting``, ``waiting_for_policy``,
            ``between_commands``, ``between_trials``.
        trial, step: position in the run, if any.
        safe_stop: what the safe stop was (default :data:`HOLD`; ``"no command sent"`` before any).

    Returns:
        Seconds from the stop's source to now (:meth:`EmergencyStop.latency_s`), None if not set.
    """
    latency = estop.latency_s()
    if safety_log is not None:
        safety_log.write("estop", reason=estop.reason, source=estop.source,
                         latency_s=None if latency is None else round(latency, 6), during=during, trial=trial,
                         step=step, safe_stop=safe_stop)
    return latency
