"""Large incoming messages (issue 15 §3): the gate's bookkeeping, the hand-off reader against
websockets' own reader, and a real server — one large message in memory at a time, a slow sender
dropped, idle connections pinning nothing."""

import asyncio
import os
import random
import struct
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import websockets
from websockets.frames import Frame, Opcode
from websockets.asyncio.messages import Assembler
from websockets.streams import StreamReader
from websockets.sync.client import connect

from hvla_platform.lib.serving.client import PolicyClient
from hvla_platform.lib.serving.large_messages import (
    PREALLOCATE_MIN_BYTES,
    HandOffReader,
    LargeMessageGate,
    Payload,
    PayloadAssembler,
    hand_off_reader,
    payload_assembler,
    unmask_in_place,
)
from hvla_platform.lib.serving.server import PolicyServer
from hvla_platform.lib.serving.wire import pack

MiB = 1024 * 1024
OBS = {"observation/state": np.zeros(17, np.float32), "prompt": "reach"}


class Conn:
    """A connection as the gate sees it: counts its pauses and resumes."""

    def __init__(self, name):
        self.name, self.paused = name, False

    def gate_pause(self):
        self.paused = True

    def gate_resume(self):
        self.paused = False


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_the_gate_admits_one_large_message_and_passes_on_in_arrival_order():
    clock = Clock()
    gate = LargeMessageGate(threshold_bytes=100, timeout_s=5.0, clock=clock)
    a, b, c, robot = Conn("a"), Conn("b"), Conn("c"), Conn("robot")
    gate.update(a, 500)
    gate.update(b, 300)
    gate.update(c, 101)
    gate.update(robot, 100)  # at the threshold: never waits
    assert gate.holder is a and (b.paused, c.paused, robot.paused) == (True, True, False)
    assert gate.waiting == 2
    gate.update(a, 600, handling=True)  # a's handler holds its message: still a's gate
    assert gate.holder is a
    gate.update(a, 0)  # handled
    assert gate.holder is b and not b.paused and c.paused
    gate.forget(b)  # b's connection ended while holding
    assert gate.holder is c and not c.paused and gate.waiting == 0
    gate.forget(c)
    assert gate.holder is None


def test_only_receiving_counts_against_the_timeout():
    clock = Clock()
    gate = LargeMessageGate(threshold_bytes=10, timeout_s=2.0, clock=clock)
    a = Conn("a")
    gate.update(a, 50)
    clock.t = 1.5
    assert gate.overdue() is None
    gate.update(a, 50, handling=True)  # a slow inference is not a slow sender
    clock.t = 60.0
    assert gate.overdue() is None
    gate.update(a, 0)
    clock.t = 60.5  # after the cool-down (at most 0.5 s)
    gate.update(a, 20)  # its next large message starts arriving
    clock.t = 62.0
    assert gate.overdue() is None
    clock.t = 62.6
    assert gate.overdue() is a


def test_after_a_large_message_the_gate_cools_down_for_its_share_of_time():
    clock, timers = Clock(), []
    gate = LargeMessageGate(threshold_bytes=100, timeout_s=5.0, clock=clock, max_share=0.25, max_cooldown_s=0.5,
                            call_later=lambda delay, cb: timers.append((delay, cb)))
    a, b, robot = Conn("a"), Conn("b"), Conn("robot")
    gate.update(a, 500)
    clock.t = 0.1
    gate.update(a, 0)  # held 0.1 s: closed for 0.3 s more (0.1 of every 0.4 s)
    assert gate.holder is None and gate.cooling_down == pytest.approx(0.3)
    clock.t = 0.2
    gate.update(a, 400)  # the same sender again: waits like anyone
    gate.update(b, 400)
    gate.update(robot, 80)  # under the threshold: never waits
    assert (a.paused, b.paused, robot.paused) == (True, True, False) and gate.holder is None
    (delay, fire), = timers  # one timer for the end of the cool-down
    assert delay == pytest.approx(0.2)
    clock.t = 0.4
    fire()
    assert gate.holder is a and not a.paused and b.paused  # in arrival order
    clock.t = 10.4
    gate.update(a, 0)  # held 10 s (a slow link): the cool-down is capped
    assert gate.cooling_down == pytest.approx(0.5)
    clock.t = 10.9
    gate.tick()
    assert gate.holder is b and not b.paused


def test_a_share_of_one_turns_the_cool_down_off():
    clock = Clock()
    gate = LargeMessageGate(threshold_bytes=10, clock=clock, max_share=1.0)
    a, b = Conn("a"), Conn("b")
    gate.update(a, 50)
    gate.update(b, 50)
    clock.t = 3.0
    gate.update(a, 0)
    assert gate.holder is b and gate.cooling_down == 0.0


def test_bad_gate_settings_are_refused():
    with pytest.raises(ValueError, match="threshold_bytes"):
        LargeMessageGate(threshold_bytes=0)
    with pytest.raises(ValueError, match="timeout_s"):
        LargeMessageGate(timeout_s=0)
    with pytest.raises(ValueError, match="max_share"):
        LargeMessageGate(max_share=0)
    with pytest.raises(ValueError, match="max_cooldown_s"):
        LargeMessageGate(max_cooldown_s=-1)


def _frames(seed):
    """(wire bytes of masked client frames, their payloads): small, large, pipelined."""
    rng = random.Random(seed)
    out, payloads = bytearray(), []
    for _ in range(12):
        n = rng.choice([0, 5, 125, 126, 70_000, 300_000, 2 * MiB])
        payload = rng.randbytes(n)
        payloads.append(payload)
        frame = Frame(Opcode.BINARY, payload)
        out += frame.serialize(mask=True, extensions=[])
    return bytes(out), payloads


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_hand_off_reader_parses_the_same_frames_as_websockets(seed):
    wire_bytes, payloads = _frames(seed)
    rng = random.Random(seed + 100)
    results = {}
    for kind in ("websockets", "hand-off"):
        reader = StreamReader()
        if kind == "hand-off":
            hand_off_reader(reader)
            assert isinstance(reader, HandOffReader)
        got = []

        def parse():
            while True:
                frame = yield from Frame.parse(reader.read_exact, mask=True)
                got.append(bytes(frame.data))

        gen = parse()
        next(gen)
        i = 0
        while i < len(wire_bytes):  # socket-like chunks of varying size, several frames per chunk
            step = rng.choice([1, 7, 4096, 65536, 262144, 3 * MiB])
            reader.feed_data(wire_bytes[i:i + step])
            next(gen)
            i += step
        results[kind] = got
    assert results["hand-off"] == results["websockets"] == payloads


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 64, 1001, 70_001])
def test_unmasking_in_place_gives_websockets_bytes(n):
    from websockets.utils import apply_mask  # websockets' pure-Python reference

    data, mask = os.urandom(n), os.urandom(4)
    buf = Payload(data)
    unmask_in_place(buf, mask)
    assert bytes(buf) == apply_mask(data, mask)
    with pytest.raises(ValueError, match="4 bytes"):
        unmask_in_place(buf, b"abc")


def _hand_off_parser(payloads, may_fill=None):
    """Masked client frames of ``payloads`` and a hand-off reader with websockets' frame parser on
    it: ``(wire bytes, reader, the payloads parsed so far, feed(chunk))``."""
    wire_bytes = b"".join(Frame(Opcode.BINARY, p).serialize(mask=True, extensions=[]) for p in payloads)
    reader = StreamReader()
    hand_off_reader(reader)
    reader.may_fill = may_fill
    got = []

    def parse():
        while True:
            got.append((yield from Frame.parse(reader.read_exact, mask=True)).data)

    gen = parse()
    next(gen)

    def feed(chunk):
        reader.feed_data(chunk)
        next(gen)

    return wire_bytes, reader, got, feed


def test_large_payloads_reach_the_parser_as_one_buffer_unmasked_in_place():
    payloads = [os.urandom(n) for n in (300_000, 2 * MiB, 10)]
    wire_bytes, _reader, got, feed = _hand_off_parser(payloads)
    for i in range(0, len(wire_bytes), 256 * 1024):  # socket-sized reads
        feed(wire_bytes[i:i + 256 * 1024])
    assert [bytes(d) for d in got] == payloads
    # the two large payloads are the reader's own buffers (no copy), the small one websockets' bytes
    assert [type(d) for d in got] == [Payload, Payload, bytes]
    assert len(got[1]) == 2 * MiB


def test_a_large_payload_is_allocated_only_when_the_reader_may():
    payload = os.urandom(3 * MiB)
    allowed = [False]
    wire_bytes, reader, got, feed = _hand_off_parser([payload], may_fill=lambda: allowed[0])
    step = PREALLOCATE_MIN_BYTES // 2
    feed(wire_bytes[:step])
    feed(wire_bytes[step:2 * step])
    header = len(wire_bytes) - len(payload)
    assert reader._fill is None and reader.buffered == 2 * step - header  # waiting: only what it has read
    allowed[0] = True  # it holds the gate now
    for i in range(2 * step, len(wire_bytes), step):
        feed(wire_bytes[i:i + step])
    assert bytes(got[0]) == payload and type(got[0]) is Payload


def test_a_payload_that_arrives_whole_while_the_reader_may_not_allocate_is_read_all_the_same():
    # a waiting connection can hold a little over the gate's threshold; a payload that small may be
    # all there when the connection gets the gate, and no more bytes will come to trigger the buffer
    payload = os.urandom(PREALLOCATE_MIN_BYTES + 1000)
    follow = os.urandom(10)
    wire_bytes, _reader, got, feed = _hand_off_parser([payload, follow], may_fill=lambda: False)
    feed(wire_bytes[:100])  # the header: the reader now wants the payload
    feed(wire_bytes[100:])  # the rest at once, the next frame too
    assert [bytes(d) for d in got] == [payload, follow]


def test_the_assembler_hands_a_whole_payload_over_as_it_is():
    async def main():
        asm = Assembler()
        payload_assembler(asm)
        assert isinstance(asm, PayloadAssembler)
        big = Payload(b"x" * 100)
        waiting = asyncio.ensure_future(asm.get())  # the handler waits before the frame arrives
        await asyncio.sleep(0)
        asm.put(Frame(Opcode.BINARY, big))
        assert await waiting is big
        asm.put(Frame(Opcode.BINARY, Payload(b"ab"), fin=False))  # fragmented: joined by websockets
        asm.put(Frame(Opcode.CONT, b"cd"))
        assert await asm.get() == b"abcd"
        asm.put(Frame(Opcode.TEXT, b"hi"))
        assert await asm.get() == "hi"
        asm.put(Frame(Opcode.BINARY, b"plain"))
        assert await asm.get() == b"plain"

    asyncio.run(main())
    with pytest.raises(TypeError, match="Assembler"):
        payload_assembler(object())


def test_hand_off_refuses_a_reader_of_another_kind():
    class Other(StreamReader):
        pass

    with pytest.raises(TypeError, match="StreamReader"):
        hand_off_reader(Other())


class Small:
    metadata = {"checkpoint": "checkpoints/large/test/1", "action_horizon": 10, "action_dim": 14}

    def infer(self, obs):
        return {"actions": np.zeros((10, 14), np.float32)}


def test_a_slow_large_sender_is_dropped_and_the_next_large_message_goes_through():
    big = pack({**OBS, "pad": np.ones(3 * MiB, np.uint8)})
    gate = LargeMessageGate(threshold_bytes=1 * MiB, timeout_s=0.6)
    with PolicyServer(Small(), port=0, large_message_gate=gate) as server:
        slow = connect(f"ws://127.0.0.1:{server.port}", compression=None, max_size=None)
        slow.recv(timeout=10)  # metadata
        # a masked binary frame announcing 3 MiB, then 1.5 MiB of it, then nothing
        header = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 3 * MiB) + os.urandom(4)
        slow.socket.sendall(header + b"\0" * (3 * MiB // 2))
        assert _wait(lambda: gate.holder is not None, 5.0)
        answered = []

        def other():
            with connect(f"ws://127.0.0.1:{server.port}", compression=None, max_size=None) as ws:
                ws.recv(timeout=10)
                ws.send(big)
                answered.append(ws.recv(timeout=20))

        t = threading.Thread(target=other)
        t0 = time.monotonic()
        t.start()
        t.join(20)
        waited = time.monotonic() - t0
        assert answered and isinstance(answered[0], bytes), "the second large message was not answered"
        # it waited for the slow sender's timeout (0.6 s, checked by the reaper within 1 s), not longer
        assert 0.3 < waited < 5.0, waited
        with pytest.raises((websockets.ConnectionClosed, OSError, TimeoutError)):
            slow.recv(timeout=5)
        assert gate.holder is None and gate.waiting == 0
        with PolicyClient("127.0.0.1", server.port) as robot:  # the robot never waited for any of it
            assert robot.infer(OBS)["actions"].shape == (10, 14)
        slow.close_socket()


SERVER = textwrap.dedent("""
    import sys, numpy as np
    from hvla_platform.lib.serving.server import PolicyServer
    class Small:
        metadata = {"checkpoint": "checkpoints/large/test/1", "action_horizon": 10, "action_dim": 14}
        def infer(self, obs):
            return {"actions": np.zeros((10, 14), np.float32)}
    server = PolicyServer(Small(), port=0, max_message_bytes=int(sys.argv[1]))
    server.serve_forever(on_start=lambda s: print(s.port, flush=True))
""")


def _rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _wait(cond, timeout_s):
    deadline = time.monotonic() + timeout_s
    while not (ok := cond()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return ok


def test_idle_connections_do_not_pin_their_last_large_message():
    """websockets' parser keeps its last frame until the next one: 6 connections that each sent an
    8 MiB message and then idle pinned 6 × 8 MiB before; now the server holds none of them."""
    cap = 8 * MiB
    big = pack({**OBS, "pad": np.ones(cap - 4096, np.uint8)})
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(cap)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        with PolicyClient("127.0.0.1", port) as warm:
            warm.infer(OBS)
        conns = []
        with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as ws:  # warm large path
            ws.recv(timeout=10)
            ws.send(big)
            ws.recv(timeout=30)
        time.sleep(0.3)
        before = _rss(proc.pid)
        for _ in range(6):
            ws = connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None)
            ws.recv(timeout=10)
            ws.send(big)
            assert isinstance(ws.recv(timeout=30), bytes)
            conns.append(ws)  # stays open, idle
        time.sleep(0.3)
        grown = _rss(proc.pid) - before
        for ws in conns:
            ws.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert grown < 2 * cap, f"server RSS grew by {grown / MiB:.1f} MiB with 6 idle connections after 8 MiB messages"
