"""Keep a serving process's heap instead of returning it to the OS after every message.

A policy server receives a 0.15–0.45 MB message per request (1–3 cameras at 224×224×3), and
websockets/asyncio make a few transient copies of it. With glibc's default malloc settings the
freed top of the heap is trimmed back to the OS (``M_TRIM_THRESHOLD``, 128 KiB, adjusted
dynamically) and large blocks are ``mmap``-ed, so the next request faults the same pages in again:
measured with ``benchmarks/policy_server.py`` on 2 cores, ~100 minor page faults and ~110 µs of
kernel CPU per 3-camera request, for openpi's reference server and ours alike. Raising both
thresholds (glibc ``mallopt(3)``: ``M_MMAP_THRESHOLD`` 32 MiB, its maximum; ``M_TRIM_THRESHOLD``
64 MiB) keeps those pages mapped: ~0.3 faults per request.

The cost: up to 64 MiB of freed heap stays mapped, and blocks under 32 MiB come from the heap. That
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
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024


def keep_heap(mmap_threshold: int = MMAP_THRESHOLD_BYTES, trim_threshold: int = TRIM_THRESHOLD_BYTES) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` (bytes) for this process.

    Returns:
        True if both were set; False when the C library is not glibc or refused a value (then the
        allocator is unchanged and a log line at INFO says why: nothing else depends on it).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        gnu_get_libc_version = libc.gnu_get_libc_version  # glibc only (musl's mallopt is a no-op)
    except (OSError, AttributeError) as exc:
        logger.info("allocator tuning not applied: not glibc (%s)", exc)
        return False
    gnu_get_libc_version.restype = ctypes.c_char_p
    ok = mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) == 1 and mallopt(M_TRIM_THRESHOLD, int(trim_threshold)) == 1
    if not ok:
        logger.info("allocator tuning not applied: glibc %s refused mallopt(%d, %d)",
                    gnu_get_libc_version().decode(), mmap_threshold, trim_threshold)
    return ok
