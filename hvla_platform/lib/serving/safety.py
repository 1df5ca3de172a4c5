"""Robot-side safety: the emergency stop, action limits and the robot safety log.

Seed 000 separates three logs; this is the second, owned by the robotics/safety team and kept
longer than the server's inference log: "Robot safety log — mode, emergency stop, controller
state". It lives on the robot side (``hvla deploy``), never on the policy server.

- :class:`EmergencyStop`: a latch set by SIGINT/SIGTERM, by the presence of a stop file (an
  operator's button or another process: ``touch <file>``) or by code. Once set it stays set.
- :class:`ActionGuard`: before a target reaches the joint controller it is clipped to the joint
  limits (radians) and to a maximum change per control step (radians per step, i.e. a joint speed
  limit at the control rate). Non-finite targets are a fault: the robot stops.
- :class:`SafetyLog`: JSONL lines ``{"t", "event", ...}``: ``mode`` (connecting, ready, running,
  stopped, estop, fault), ``limit`` (a clipped command: trial, step, joints, largest excess),
  ``stop`` (trial, reason, steps, sim time) and ``estop``.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
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
    """A latching emergency stop.

    Args:
        stop_file: if given, the stop is triggered as soon as this file exists.
    """

    def __init__(self, stop_file: str | Path | None = None):
        self._event = threading.Event()
        self.stop_file = Path(stop_file) if stop_file else None
        self.reason = ""

    def trigger(self, reason: str) -> None:
        """Set the stop (idempotent; the first reason is kept)."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def is_set(self) -> bool:
        """True once triggered (checks the stop file too)."""
        if not self._event.is_set() and self.stop_file is not None and self.stop_file.exists():
            self.trigger(f"stop file {self.stop_file} present")
        return self._event.is_set()

    def install_signal_handlers(self) -> None:
        """Make SIGINT (Ctrl-C) and SIGTERM trigger the stop instead of killing the process
        mid-command. Main thread only."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda s, _f: self.trigger(f"signal {signal.Signals(s).name}"))


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
