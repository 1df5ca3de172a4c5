"""A heartbeat of the test run: every few minutes, the tests in flight and how long each has run.

CI shows only the pytest output, whose progress dots say nothing about *which* test is slow or
stuck: one CI run ended at its time limit with 9 of 2,927 tests unreported and no clue why. The
controlling pytest process (the one pytest-xdist reports to, or the only one) prints a line such as::

    [heartbeat 00:41:07, 28.0 min in, 2,104 done, load 2.31] in flight: hvla_platform_tests/ui/test_browser.py::test_asset_graph (3.2 min); ...

to stderr every :data:`DEFAULT_INTERVAL_S` seconds (``HVLA_TEST_HEARTBEAT_S``; ``0`` turns it off).
Tests are tracked through ``pytest_runtest_logstart`` / ``pytest_runtest_logfinish``, which
pytest-xdist forwards from its workers to the controller.
"""

from __future__ import annotations

import os
import sys
import threading
import time

#: Seconds between heartbeat lines unless ``HVLA_TEST_HEARTBEAT_S`` says otherwise.
DEFAULT_INTERVAL_S = 300.0


class Heartbeat:
    """Tests in flight (node id → monotonic start time) and a daemon thread that reports them."""

    def __init__(self, interval_s: float, stream=None) -> None:
        self.interval_s = interval_s
        self.stream = stream if stream is not None else sys.__stderr__
        self.started = time.monotonic()
        self.done = 0
        self.in_flight: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hvla-test-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def test_started(self, nodeid: str) -> None:
        with self._lock:
            self.in_flight[nodeid] = time.monotonic()

    def test_finished(self, nodeid: str) -> None:
        with self._lock:
            if self.in_flight.pop(nodeid, None) is not None:
                self.done += 1

    def line(self) -> str:
        """The heartbeat line for now (wall-clock time, minutes since start, tests done, 1-min load
        average, each test in flight with its minutes so far, longest first)."""
        now = time.monotonic()
        with self._lock:
            flight = sorted(self.in_flight.items(), key=lambda kv: kv[1])
            done = self.done
        running = "; ".join(f"{nodeid} ({(now - t0) / 60:.1f} min)" for nodeid, t0 in flight) or "none"
        load = os.getloadavg()[0]
        return (f"[heartbeat {time.strftime('%H:%M:%S')}, {(now - self.started) / 60:.1f} min in, "
                f"{done:,} done, load {load:.2f}] in flight: {running}")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.stream.write("\n" + self.line() + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # the stream is closed: the run is over
                return


def interval_from_env() -> float:
    """``HVLA_TEST_HEARTBEAT_S`` in seconds (default :data:`DEFAULT_INTERVAL_S`; ``0`` = off).

    Raises:
        ValueError: the variable is not a non-negative number.
    """
    raw = os.environ.get("HVLA_TEST_HEARTBEAT_S", "")
    if not raw.strip():
        return DEFAULT_INTERVAL_S
    value = float(raw)
    if value < 0:
        raise ValueError(f"HVLA_TEST_HEARTBEAT_S must be >= 0 seconds, got {raw!r}")
    return value
