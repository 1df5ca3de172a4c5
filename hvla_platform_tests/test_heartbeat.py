"""The test run's heartbeat names the tests in flight and counts the finished ones."""

import io
import time

import pytest

from hvla_platform_tests.heartbeat import DEFAULT_INTERVAL_S, Heartbeat, interval_from_env


def test_line_names_tests_in_flight_longest_first_and_counts_finished():
    beat = Heartbeat(60.0, stream=io.StringIO())
    beat.test_started("a.py::test_old")
    time.sleep(0.01)
    beat.test_started("b.py::test_new")
    beat.test_started("c.py::test_done")
    beat.test_finished("c.py::test_done")
    beat.test_finished("never-started.py::test_x")  # not counted
    line = beat.line()
    assert "1 done" in line
    assert line.index("a.py::test_old") < line.index("b.py::test_new")
    assert "c.py::test_done" not in line


def test_thread_writes_a_line_each_interval_until_stopped():
    out = io.StringIO()
    beat = Heartbeat(0.05, stream=out)
    beat.test_started("slow.py::test_stuck")
    beat.start()
    deadline = time.monotonic() + 10
    while out.getvalue().count("[heartbeat") < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    beat.stop()
    assert out.getvalue().count("[heartbeat") >= 2
    assert "in flight: slow.py::test_stuck (" in out.getvalue()


def test_interval_from_env(monkeypatch):
    monkeypatch.delenv("HVLA_TEST_HEARTBEAT_S", raising=False)
    assert interval_from_env() == DEFAULT_INTERVAL_S
    monkeypatch.setenv("HVLA_TEST_HEARTBEAT_S", "0")
    assert interval_from_env() == 0
    monkeypatch.setenv("HVLA_TEST_HEARTBEAT_S", "-5")
    with pytest.raises(ValueError, match="HVLA_TEST_HEARTBEAT_S"):
        interval_from_env()
