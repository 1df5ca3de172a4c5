"""Run one function over many items on a pool of worker processes, results in input order.

Episode conversion is CPU-bound Python (MCAP reading, CDR decoding, JPEG decoding for QA, PNG
encoding), so threads would share one core through the GIL; :func:`ordered_map` uses processes.

* **Workers**: ``workers`` argument, else ``$HVLA_CONVERT_WORKERS``, else
  ``min(2, CPUs this process may run on)`` (:func:`default_workers`). One item, or one worker, runs
  in this process (no pool started: landing one episode costs no process start).
* **Start method**: ``fork`` where the platform has it (Linux) and this process has not loaded JAX
  or torch (then ``forkserver``: :func:`start_method`), else ``spawn``;
  ``$HVLA_CONVERT_START_METHOD`` (``fork``, ``forkserver``, ``spawn``) overrides. ``fork`` starts a
  worker in milliseconds with everything the parent has loaded and cached (modules, robot profiles,
  the joint limits QA compiles from the robot's MuJoCo model), which is what makes the pool pay off
  for a handful of small episodes; measured on the demo's G1 episodes (benchmarks/conversion.py), a
  ``forkserver`` worker spends ~1 s importing and compiling before its first episode, longer than
  converting a 4.5 s G1 episode. Its known hazard — a lock held by another thread of the parent at
  fork time stays held in the child — is limited here: CPython re-initialises the import and
  logging locks in the child, and workers only run the converter (numpy, Pillow, h5py, the MCAP
  reader). Choose ``forkserver`` for a parent whose threads use those libraries concurrently.
* **Order and errors**: results come back in the order of ``items`` whatever order the workers
  finish in. An exception raised by ``fn`` cancels the items not started and is re-raised here
  (callers that want per-item failures return them as values, as the episode converter does). A
  worker process that dies (killed, out of memory) raises :class:`WorkerDied` naming the items in
  flight.
* **Bounded staging**: at most ``2 × workers`` items are in flight; ``before(item)`` runs in this
  process just before an item is submitted (e.g. copy its input from S3 to a scratch folder) and
  returns the argument handed to ``fn``; ``after(item)`` runs once its result is in (or it failed),
  e.g. to delete that copy, so scratch space does not grow with the number of items.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

START_METHODS = ("forkserver", "fork", "spawn")


class WorkerDied(RuntimeError):
    """A worker process ended without returning (killed, out of memory); names the items in flight."""


def default_workers() -> int:
    """``$HVLA_CONVERT_WORKERS`` if set (≥ 1), else ``min(2, CPUs this process may use)``.

    Raises:
        ValueError: ``$HVLA_CONVERT_WORKERS`` is not a positive integer.
    """
    env = os.environ.get("HVLA_CONVERT_WORKERS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"HVLA_CONVERT_WORKERS={env!r}: expected a positive integer")
        return int(env)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))


#: Libraries that run native thread pools once imported (XLA, ATen/OpenMP): a process that has
#: loaded one is not forked (``forkserver`` instead), because a lock one of those threads holds at
#: fork time would stay held in the child (CPython warns "os.fork() ... JAX is multithreaded").
NATIVE_THREADED = ("jax", "torch")


def start_method() -> str:
    """``$HVLA_CONVERT_START_METHOD`` if set; else ``fork`` where available, unless this process
    has loaded a library in :data:`NATIVE_THREADED` (e.g. ``hvla demo`` converting again after
    training), then ``forkserver``; else ``spawn``.

    Raises:
        ValueError: an unknown start method, or one this platform lacks.
    """
    method = os.environ.get("HVLA_CONVERT_START_METHOD", "").strip()
    available = multiprocessing.get_all_start_methods()
    if not method:
        if "fork" in available and not any(m in sys.modules for m in NATIVE_THREADED):
            return "fork"
        return "forkserver" if "forkserver" in available else "spawn"
    if method not in START_METHODS or method not in available:
        raise ValueError(f"HVLA_CONVERT_START_METHOD={method!r}: expected one of "
                         f"{', '.join(m for m in START_METHODS if m in available)}")
    return method


def ordered_map(fn: Callable[[Any], R], items: Sequence[T], *, workers: int | None = None,
                before: Callable[[T], Any] | None = None, after: Callable[[T], None] | None = None,
                describe: Callable[[T], str] = str) -> list[R]:
    """``[fn(before(item)) for item in items]`` computed by up to ``workers`` processes (module
    docstring); ``fn`` must be a module-level function and its argument and result picklable.

    Raises:
        WorkerDied: a worker process died; ``describe(item)`` names the items in flight.
        Whatever ``fn``, ``before`` or ``after`` raises (the remaining items are not started).
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    prep = before or (lambda item: item)
    if workers == 1 or len(items) <= 1:
        out = []
        for item in items:
            try:
                out.append(fn(prep(item)))
            finally:
                if after is not None:
                    after(item)
        return out
    ctx = multiprocessing.get_context(start_method())
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload([fn.__module__])
    results: dict[int, R] = {}
    pending: dict[Future, int] = {}
    nxt = 0
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx) as pool:
            try:
                while nxt < len(items) or pending:
                    while nxt < len(items) and len(pending) < 2 * workers:
                        try:
                            fut = pool.submit(fn, prep(items[nxt]))
                        except BaseException:
                            if after is not None:
                                after(items[nxt])
                            raise
                        pending[fut] = nxt
                        nxt += 1
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        i = pending.pop(fut)
                        try:
                            results[i] = fut.result()
                        except BrokenProcessPool as exc:
                            flight = [describe(items[j]) for j in sorted([i, *pending.values()])]
                            raise WorkerDied(f"a conversion worker process died (killed or out of memory) while "
                                             f"working on: {', '.join(flight)}") from exc
                        finally:
                            if after is not None:
                                after(items[i])
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
    finally:  # the pool has shut down: no worker still reads what ``after`` releases
        if after is not None:
            for i in pending.values():
                after(items[i])
    return [results[i] for i in range(len(items))]
