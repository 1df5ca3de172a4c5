"""Encoder worker processes for the release build: ``python -m hvla_platform.lib.dataset.encode_worker``.

Why processes, and why not ``multiprocessing``: with the demo's 96 × 128 frames most of the work
per frame is Python (h5py reads, PIL decoding, PyAV frame conversion) holding the GIL, so threads
do not use the second core (measured: 2 threads no faster than 1). ``multiprocessing``'s spawn and
forkserver children re-import the parent's ``__main__`` (a Dagster run worker, the ``hvla`` CLI,
pytest: seconds of imports per worker), and fork is unsafe in a threaded host. A worker started
as ``-m`` of this module imports only numpy, h5py, PIL and PyAV (~0.2 s).

Protocol (one JSON object per line): the parent writes a job ``{"h5", "camera", "out", "fps",
"vcodec", "options", "sample", "sample_out"}`` on the worker's stdin; the worker runs
:func:`~hvla_platform.lib.dataset.episode_video.encode_frames`, writes the sampled frames' raw
bytes (C order) to ``sample_out`` and answers ``{"ok": true, "frames": T, "duration_s": d,
"sample_shape": [S, C, H, W], "sample_dtype": "|u1"}`` (``d``: the MP4's duration,
:func:`~hvla_platform.lib.dataset.episode_video.video_duration_s`) or ``{"ok": false,
"error": "<type>: <message>"}`` on stdout. EOF on stdin ends the worker. The codec's own messages
go to the worker's stderr, inherited from the parent (the release build's codec log).

Raw bytes and not ``numpy.save``: the parent reads the samples on several feeding threads at once,
and ``numpy.load`` parses the ``.npy`` header with ``ast.literal_eval``, which on CPython 3.11.7 is
not thread-safe ("SystemError: AST constructor recursion depth mismatch", CPython gh-106905; seen
in CI). ``numpy.fromfile`` with the shape and dtype from the answer parses nothing.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import queue
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np


class EncoderError(RuntimeError):
    """A worker failed to encode a camera (the message names the file, camera and the error)."""


def _serve() -> None:
    from hvla_platform.lib.dataset.episode_video import encode_frames, video_duration_s  # deferred: keeps `-m` start-up minimal

    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers on the protocol stream
    for line in sys.stdin:
        job = json.loads(line)
        try:
            n, sampled = encode_frames(job["h5"], job["camera"], job["out"], fps=int(job["fps"]), vcodec=job["vcodec"],
                                       options=job["options"], sample=[int(i) for i in job["sample"]])
            sampled = np.ascontiguousarray(sampled)
            sampled.tofile(job["sample_out"])
            answer: dict[str, Any] = {"ok": True, "frames": int(n), "duration_s": video_duration_s(job["out"]),
                                      "sample_shape": list(sampled.shape), "sample_dtype": sampled.dtype.str}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


class EncoderPool:
    """``workers`` encoder processes and a thread per process feeding it; use as a context manager.

    :meth:`submit` returns a future of ``(T, MP4 duration in s, sampled frames)``
    (:func:`~hvla_platform.lib.dataset.episode_video.encode_frames`).

    Raises:
        EncoderError: (from the future) the worker reported an error or died.
    """

    def __init__(self, workers: int):
        root = str(Path(__file__).resolve().parents[3])  # the directory holding hvla_platform/
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        self._idle: queue.Queue[subprocess.Popen] = queue.Queue()
        self._procs = [subprocess.Popen([sys.executable, "-m", "hvla_platform.lib.dataset.encode_worker"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                       for _ in range(workers)]
        for p in self._procs:
            self._idle.put(p)
        self._threads = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hvla-encoder")

    def _run(self, job: dict[str, Any], post: Callable[[np.ndarray], Any] | None) -> tuple[int, float, Any]:
        proc = self._idle.get()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(job) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        finally:
            self._idle.put(proc)
        if not line:
            raise EncoderError(f"encoder worker {proc.pid} died (exit code {proc.poll()}) encoding {job['h5']} "
                               f"camera {job['camera']}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise EncoderError(f"{job['h5']} camera {job['camera']}: {answer['error']}")
        sampled = np.fromfile(job["sample_out"], dtype=np.dtype(answer["sample_dtype"])).reshape(answer["sample_shape"])
        os.unlink(job["sample_out"])
        return int(answer["frames"]), float(answer["duration_s"]), post(sampled) if post else sampled

    def submit(self, h5: str | os.PathLike[str], camera: str, out: str | os.PathLike[str], *, fps: int, vcodec: str,
               options: dict[str, str], sample: list[int], post: Callable[[np.ndarray], Any] | None = None) -> cf.Future:
        """Encode ``camera`` of ``h5`` into ``out`` in a worker (arguments: ``encode_frames``); the
        future's result is ``(T, duration_s, post(sampled frames))`` (``post`` runs on this pool's feeding
        thread: e.g. image statistics, numpy work that releases the GIL)."""
        job = {"h5": str(h5), "camera": camera, "out": str(out), "fps": int(fps), "vcodec": vcodec,
               "options": dict(options), "sample": [int(i) for i in sample],
               "sample_out": str(Path(out).with_suffix(".sample.raw"))}
        return self._threads.submit(self._run, job, post)

    #: The largest peak resident set (``VmHWM``, MB) of any worker of the last pool closed in this
    #: process (Linux; 0 where ``/proc`` is missing). Read by the benchmark.
    last_peak_rss_mb: float = 0.0

    def close(self) -> None:
        """Cancel what has not started, wait for the rest, end the workers."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        peaks = [0.0]
        for p in self._procs:
            try:
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
            except OSError:
                pass
        EncoderPool.last_peak_rss_mb = max(peaks)
        for p in self._procs:
            if p.stdin:
                p.stdin.close()
        for p in self._procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()

    def __enter__(self) -> "EncoderPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    _serve()
