"""Allocator tuning for a serving process (glibc mallopt), checked in child processes: it is
process-wide and must not leak into the test process."""

import platform
import subprocess
import sys

import pytest

# 20 MB of message-sized buffers allocated, touched and freed, twice; prints the minor page faults
# of the second round (the first one grows the heap either way).
ROUNDS = """
import resource, sys
from hvla_platform.lib.serving.allocator import keep_heap
applied = keep_heap() if sys.argv[1] == "tune" else None
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def one_round():
    bufs = [bytearray(100_000) for _ in range(200)]  # calloc'd, touched
    for b in bufs:
        b[::4096] = b"x" * len(b[::4096])
    del bufs
one_round()
f0 = faults()
one_round()
print(applied, faults() - f0)
"""


def second_round_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied, int(faults)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc's")
def test_keep_heap_keeps_freed_buffers_mapped():
    applied, tuned = second_round_faults("tune")
    _, default = second_round_faults("default")
    assert applied == "True"
    # default glibc returns the freed 20 MB to the OS and faults it in again (~5,000 pages); kept: ~0
    assert tuned < 200 and default > 2000, (tuned, default)
