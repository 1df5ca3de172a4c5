"""Keep a serving process's heap instead of returning it to the OS after every message.

A policy server receives a 0.15–0.45 MB message per request (1–3 cameras at 224×224×3), and
websockets/asyncio make a few transient copies of it. With glibc's default malloc settings the
freed top of the heap is trimmed back to the OS (``M_TRIM_THRESHOLD``, 128 KiB, adjusted
dynamically) and large blocks are ``mmap``-ed, so the next request faults the same pages in again:
measured with ``benchmarks/policy_server.py`` on 2 cores, ~100 minor page faults and ~110 µs of
kernel CPU per 3-camera request, for openpi's reference server and ours alike. Raising both
thresholds (glibc ``mallopt(3)``: ``M_MMAP_THRESHOLD`` 4 MiB; ``M_TRIM_THRESHOLD`` 64 MiB) keeps
those pages mapped: ~0.3 faults per request.

Blocks of 4 MiB and more (a large message near the cap, 16 MiB by default) are still ``mmap``-ed
and go back to the OS when freed: from the heap (the first version of this module set 32 MiB, the
maximum) a 16 MiB buffer freed between two other allocations could not be reused or trimmed, and
the server's RSS under issue 15's abuse benchmark grew by ~60 MiB instead of ~35 with the
large-message gate (:mod:`hvla_platform.lib.serving.large_messages`).

One malloc arena for the whole process (``M_ARENA_MAX`` 1): glibc otherwise gives each thread
that allocates its own arena (up to 8 per core), and the request workers' arenas kept what decoding
abusive messages had touched: +8.7 MiB of the +37 MiB RSS growth under issue 15's abuse
benchmark; with one arena the growth was +26.5 MiB and the robot's p99 unchanged (the workers'
allocations are small and brief, so they rarely wait for the arena's lock).

The cost: up to 64 MiB of freed heap stays mapped, and blocks under 4 MiB come from the heap. That
suits a process that only serves (``hvla serve``), so :meth:`PolicyServer.serve_forever` does this
by default; a server started inside another process (``start_in_thread``: evaluation, tests) leaves
that process's allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

#: glibc mallopt(3) parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024  # above any normal observation (3 × 480×640×3 = 2.8 MB)
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024
ARENA_MAX = 1


def keep_heap(mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES,
              arena_max: int = ARENA_MAX) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` (bytes) and ``M_ARENA_MAX``
    (arenas; 0 leaves glibc's default) for this process. Call it before the threads that should
    share the arena start.

    Returns:
        True if all were set; False when the C library is not glibc or refused a value (then the
        allocator may be partly tuned and a log line at INFO says why: nothing else depends on it).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only (musl's mallopt is a no-op)
    except (OSError, AttributeError) as exc:
        logger.info("allocator tuning not applied: not glibc (%s)", exc)
        return False
    gnu_get_libc_version.restype = ctypes.c_char_p
    settings = [(M_MMAP_THRESHOLD, int(mmap_threshold)), (M_TRIM_THRESHOLD, int(trim_threshold))]
    if arena_max:
        settings.append((M_ARENA_MAX, int(arena_max)))
    for param, value in settings:
        if mallopt(param, value) != 1:
            logger.info("allocator tuning not applied: glibc %s refused mallopt(%d, %d)",
                        gnu_get_libc_version().decode(), param, value)
            return False
    return True
