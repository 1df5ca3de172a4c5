"""What the user sees of a run the CLI launched: the run's summary, and for a failed run **one line
naming the root cause** (the platform's own error message, from the run's failure event) instead of
Dagster's wrapper (``Error occurred while executing op "checkpoint"``) and its stack traces.

The stack traces stay in the run's event log (the UI shows them); on the terminal
:func:`without_stack_traces` cuts them out of the console logger's output while the run executes.
A run whose root cause is one of the platform's refusals (an exception class of
``hvla_platform.lib``: rights, an unknown id, a bad spec) exits 2 like a refusal caught before the
run; any other failure exits 1 (README, "Exit codes").
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TextIO

import dagster as dg

from hvla_platform.cli.common import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, echo
from hvla_platform.cli.orchestration import JobOutcome, print_outcome, run_job

_TRACE_MARKERS = ("\nStack Trace:", "\nTraceback (most recent call last):", "\nThe above exception was")


class _NoStackTraces:
    """A text stream proxy that writes through everything but stack traces: a write holding
    ``Stack Trace:`` / ``Traceback`` keeps only the text before it (Dagster's console logger writes
    one log record per call)."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` without the stack trace it holds, if any."""
        cut = min((i for i in (text.find(m) for m in _TRACE_MARKERS) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut].rstrip() + "\n    (stack trace in the run's event log: `hvla ui`)\n"
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def without_stack_traces() -> Iterator[None]:
    """Cut stack traces out of what is written to ``sys.stderr`` / ``sys.stdout`` meanwhile (the
    console logger of an in-process run writes to ``sys.stderr``)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _NoStackTraces(saved[0]), _NoStackTraces(saved[1])  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


@dataclass
class RunCause:
    """The root cause of a failed run: the step, the error's class (qualified) and its message."""

    step: str
    error_class: str
    message: str

    @property
    def is_refusal(self) -> bool:
        """True when the root cause is one of the platform's own errors (``hvla_platform.lib.*``)."""
        return self.error_class.startswith("hvla_platform.lib.")

    def line(self) -> str:
        """One line: the message of a platform error, else ``step <step>: <Class>: <message>``."""
        if self.is_refusal:
            return self.message
        return f"step {self.step} failed: {self.error_class.rpartition('.')[2]}: {self.message}"


def _split(message: str) -> tuple[str, str]:
    """(qualified class, message) from a serialized error message ``pkg.mod.Class: text``."""
    head, sep, rest = message.strip().partition(": ")
    if sep and " " not in head:
        return head, " ".join(rest.split())
    return "", " ".join(message.split())


def run_cause(inst: dg.DagsterInstance, run_id: str) -> RunCause | None:
    """The root cause of run ``run_id`` from its first step failure event: the first error in the
    failure's cause chain that is not Dagster's own wrapper (``DagsterExecutionStepExecutionError``),
    or ``None`` when the run has no step failure."""
    for rec in inst.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        ev = rec.dagster_event
        err = ev.event_specific_data.error if ev is not None else None
        while err is not None and err.cause is not None and err.cls_name == "DagsterExecutionStepExecutionError":
            err = err.cause
        if err is None:
            return RunCause(step=ev.step_key or "?", error_class="", message="failed (no error recorded)")
        cls, msg = _split(err.message)
        if err.cls_name == "Failure":  # dg.Failure: its description is the message
            cls = "dagster.Failure"
            # a refusal raised in a Pipes process (the training worker) names its class in the
            # failure's metadata (defs/training/launcher.py)
            ufd = getattr(ev.event_specific_data, "user_failure_data", None)
            named = (ufd.metadata or {}).get("hvla/error_class") if ufd is not None else None
            if named is not None:
                cls = str(getattr(named, "value", named))
        return RunCause(step=ev.step_key or "?", error_class=cls or err.cls_name or "", message=msg)
    return None


def report(command: str, o: JobOutcome, inst: dg.DagsterInstance,
           say: Callable[[str], None] = echo) -> int:
    """Print the run's summary (``print_outcome``) with its root cause instead of Dagster's wrapper
    error and, for a failed run, ``hvla <command>: <cause>`` on stderr; return the exit code
    (0 succeeded, 2 the run refused the request, 1 it failed otherwise)."""
    if o.success:
        print_outcome(o, say)
        return EXIT_OK
    cause = run_cause(inst, o.run_id)
    line = cause.line() if cause else "the run failed (see its events: `hvla ui`)"
    print_outcome(dataclasses.replace(o, error=f"{cause.step}: {line}" if cause else line), say)
    print(f"hvla {command}: run {o.run_id[:8]} ({o.job}, {o.partition}) failed: {line}", file=sys.stderr, flush=True)
    return EXIT_REFUSED if cause is not None and cause.is_refusal else EXIT_FAILED


def run_and_report(command: str, defs: dg.Definitions, inst: dg.DagsterInstance, job_name: str,
                   partition_key: str, say: Callable[[str], None] = echo,
                   **kwargs: Any) -> tuple[JobOutcome, int]:
    """``run_job`` without stack traces on the terminal, then :func:`report`; returns the outcome
    and the exit code."""
    with without_stack_traces():
        o = run_job(defs, inst, job_name, partition_key, **kwargs)
    return o, report(command, o, inst, say)
