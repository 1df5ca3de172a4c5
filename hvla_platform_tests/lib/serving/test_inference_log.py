"""The inference log's background writer: every request recorded, flushed on shutdown, drops
counted and reported, crash-safe line format."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from hvla_platform.lib.serving.inference_log import InferenceLog, read_log


def requests(lines):
    return [ln for ln in lines if ln["event"] == "request"]


def test_every_request_is_recorded_in_order_and_written_by_the_writer_thread(tmp_path):
    log = InferenceLog(tmp_path, checkpoint="ck/1")
    log.write("open", conn=1, peer="127.0.0.1:1")
    t0 = time.time()
    for seq in range(1, 2001):  # more than one writer chunk
        log.record_ok(t0 + seq * 1e-4, 1, seq, 0.25, 0.125, 150820, (10, 14))
    deadline = time.monotonic() + 10 * log.flush_interval_s
    while len(requests(read_log(log.path))) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)  # no flush() here: the writer thread must get them to the file on its own
    lines = read_log(log.path)
    reqs = requests(lines)
    assert [r["seq"] for r in reqs] == list(range(1, 2001))
    assert reqs[0] == {"event": "request", "t": reqs[0]["t"], "instance": log.instance, "checkpoint": "ck/1",
                       "conn": 1, "seq": 1, "latency_ms": 0.25, "infer_ms": 0.125, "request_bytes": 150820,
                       "action_shape": [10, 14], "status": "ok"}
    assert [r["t"] for r in reqs] == sorted(r["t"] for r in reqs)
    log.write("close", conn=1)
    log.close()
    assert [ln["event"] for ln in read_log(log.path)] == ["open"] + ["request"] * 2000 + ["close"]


def test_pending_lines_are_written_before_an_event_line_and_on_close(tmp_path):
    log = InferenceLog(tmp_path, checkpoint="c")
    log.flush_interval_s = 3600.0  # the writer will not come by during this test
    log.record_ok(time.time(), 3, 1, 1.0, 0.5, 10, (2, 2))
    log.request(t=time.time(), conn=3, seq=2, latency_ms=0.1, infer_ms=None, request_bytes=5, action_shape=None,
                status="error", error="observation rejected: bad")
    log.record_ok(time.time(), 3, 3, 1.0, 0.5, 10, (2, 2))
    # the error line is written at once, after the pending request before it
    assert [(r["seq"], r["status"]) for r in requests(read_log(log.path))] == [(1, "ok"), (2, "error")]
    log.close()
    assert [r["seq"] for r in requests(read_log(log.path))] == [1, 2, 3]


def test_a_log_never_closed_is_flushed_when_the_process_exits(tmp_path):
    code = textwrap.dedent(f"""
        import time
        from hvla_platform.lib.serving.inference_log import InferenceLog
        log = InferenceLog({str(tmp_path)!r}, checkpoint="c")
        log.flush_interval_s = 3600.0
        for seq in range(1, 101):
            log.record_ok(time.time(), 1, seq, 1.0, 0.5, 10, (2, 2))
        # no close(): the atexit hook must write them
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    (path,) = tmp_path.glob("inference-*.jsonl")
    assert [r["seq"] for r in requests(read_log(path))] == list(range(1, 101))


def test_overload_drops_are_counted_and_reported_never_silent(tmp_path, caplog):
    log = InferenceLog(tmp_path, checkpoint="c", max_pending=5)
    with log._lock:  # the writer is stuck (e.g. a stalled disk) for as long as this is held
        for seq in range(1, 21):
            log.record_ok(time.time(), 1, seq, 1.0, 0.5, 10, (2, 2))
        assert log.dropped == 15
    assert "dropping (and counting)" in caplog.text
    log.close()
    lines = read_log(log.path)
    assert [r["seq"] for r in requests(lines)] == [1, 2, 3, 4, 5]
    (dropped,) = [ln for ln in lines if ln["event"] == "dropped"]
    assert dropped["requests"] == 15 and dropped["total"] == 15 and dropped["max_pending"] == 5


def test_a_torn_last_line_is_ignored_by_readers_and_cut_off_on_reopen(tmp_path):
    log = InferenceLog(tmp_path, checkpoint="c")
    for seq in (1, 2):
        log.record_ok(time.time(), 1, seq, 1.0, 0.5, 10, (2, 2))
    log.close()
    path = log.path
    fragment = b'{"event": "request", "t": "2026-11-21T10:00:00.000001+00:00", "checkp'
    with open(path, "ab") as fh:  # what a crash in the middle of a write leaves
        fh.write(fragment)
    assert [r["seq"] for r in requests(read_log(path))] == [1, 2]  # readers skip the unterminated tail
    log2 = InferenceLog(tmp_path, checkpoint="c")
    log2.record_ok(time.time(), 2, 1, 1.0, 0.5, 10, (2, 2))
    log2.close()
    text = path.read_text()
    assert text.endswith("\n") and "checkp\n" not in text and '"checkp{' not in text
    lines = [json.loads(ln) for ln in text.splitlines()]  # every line is valid JSON again
    (recovered,) = [ln for ln in lines if ln["event"] == "recovered"]
    assert recovered["truncated_bytes"] == len(fragment)
    assert [(r["conn"], r["seq"]) for r in requests(lines)] == [(1, 1), (1, 2), (2, 1)]


def test_reopening_cuts_a_torn_last_line_before_anything_is_logged(tmp_path):
    # a server that restarts after a crash and is stopped before its first request
    log = InferenceLog(tmp_path, checkpoint="c")
    log.record_ok(time.time(), 1, 1, 1.0, 0.5, 10, (2, 2))
    log.close()
    with open(log.path, "ab") as fh:
        fh.write(b'{"event": "request", "t": "2026-')
    InferenceLog(tmp_path, checkpoint="c").close()
    lines = [json.loads(ln) for ln in log.path.read_text().splitlines()]
    assert log.path.read_bytes().endswith(b"\n")
    assert [ln["event"] for ln in lines] == ["request", "recovered"]


WRITER = textwrap.dedent("""
    import sys, time
    from hvla_platform.lib.serving.inference_log import InferenceLog
    log = InferenceLog(sys.argv[1], checkpoint="c" * 200)
    log.flush_interval_s = 0.001
    print("ready", flush=True)
    seq = 0
    while True:
        seq += 1
        log.record_ok(time.time(), 1, seq, 1.0, 0.5, 150820, (10, 14))
        if seq % 50 == 0:
            log.write("open", conn=seq, peer="x" * 300)
            time.sleep(0.001)  # ~50,000 lines a second: the writer is busy, the file stays small
""")


def test_a_process_killed_while_writing_leaves_a_readable_log(tmp_path):
    for attempt in range(2):
        d = tmp_path / f"run{attempt}"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(d)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5 + 0.1 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        (path,) = d.glob("inference-*.jsonl")
        lines = read_log(path)  # every complete line parses
        seqs = [r["seq"] for r in requests(lines)]
        assert len(seqs) > 100 and seqs == list(range(1, len(seqs) + 1))  # in order, none missing
        InferenceLog(d, checkpoint="c").close()  # reopening leaves only whole lines
        assert path.read_bytes().endswith(b"\n")
        assert all(json.loads(ln) for ln in path.read_text().splitlines())


def test_sampled_observations_are_stored_by_the_writer(tmp_path):
    log = InferenceLog(tmp_path, checkpoint="c", sample_every=2)
    frame = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    for seq in range(1, 5):
        writable = frame + seq  # a writable array: the log copies it, so a later change is not stored
        log.record_ok(time.time(), 1, seq, 1.0, 0.5, 10, (2, 2),
                      {"observation/images/head": writable, "prompt": "reach"})
        writable[...] = 0
    log.close()
    reqs = requests(read_log(log.path))
    assert [r["seq"] for r in reqs] == [1, 2, 3, 4] and ["sample" in r for r in reqs] == [False, True, False, True]
    stored = np.load(tmp_path / reqs[3]["sample"])
    np.testing.assert_array_equal(stored["observation__images__head"], frame + 4)
    assert str(stored["prompt"]) == "reach"
