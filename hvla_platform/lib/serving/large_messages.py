"""Large incoming messages: one in reception at a time, handed to the frame parser without a copy.

A policy server's normal request is 0.15–0.45 MB (1–3 cameras at 224×224×3). A client may send up
to the message cap (16 MiB by default), and websockets 17 buffers a whole frame before parsing it:
its stream buffer, a sliced copy of the payload (``StreamReader.read_exact``) and the unmasked copy
(``apply_mask``), ~3 × the message per connection, copied on the event loop while no other client's
bytes move. With two abusive clients sending cap-sized messages back to back (issue 15's benchmark)
the server's RSS grew by ~8 × the cap and the robot's p99 round trip rose to ~60 ms.

Two bounds, both per server:

* :class:`LargeMessageGate`: a connection whose pending bytes (received and not yet parsed, parsed
  and queued, or being decoded and inferred by its handler) exceed ``threshold_bytes``
  (:data:`DEFAULT_LARGE_MESSAGE_BYTES`, 1 MiB: above any normal observation) must hold the gate to
  go on reading; the others are paused (``transport.pause_reading()``: the kernel's socket buffer
  and TCP flow control hold their bytes, not our heap) and resumed in arrival order once the
  holder's message has been handled. Messages under the threshold — the robot's — never wait. The
  holder must finish *receiving* its message within ``timeout_s``
  (:data:`DEFAULT_LARGE_MESSAGE_TIMEOUT_S`) or is dropped (the server's reaper asks
  :meth:`LargeMessageGate.overdue`), so a slow sender cannot keep the gate; while its handler holds
  a large message the connection does not read, so one connection has one large message at a time.
* :class:`HandOffReader`: when the stream buffer holds a frame's payload (and less than as much
  again after it), ``read_exact`` hands the buffer itself to the parser, moving the few bytes after
  the payload to a new buffer, instead of copying the payload (websockets' ``StreamReader.read_exact``
  always slices a copy). The parser's output is unchanged (tested against websockets' own reader).

* In-place unmasking (:class:`Payload`, :func:`install_in_place_unmask`,
  :class:`PayloadAssembler`): a handed-off payload is unmasked where it lies (numpy XOR, ~0.6 ms for
  16 MiB, instead of websockets' ``apply_mask`` copy: ~6.5 ms of fresh pages on the event loop) and
  reaches the handler as that same buffer (websockets' ``Assembler.get`` joins a message's frames
  into a new ``bytes``, a third copy). The wire decoder reads it without a copy
  (:func:`hvla_platform.lib.serving.wire.unpack`: read-only array views).

So at most one large message (its one buffer) is in the server's memory at a time, plus each
waiting connection's bytes read before it was paused (the threshold plus at most one socket read,
256 KiB).

The gate also bounds the *share of time* large messages take (``max_share``, default
:data:`DEFAULT_LARGE_MESSAGE_SHARE`): receiving, unmasking and decoding a 16 MiB message keeps the
event loop and the GIL busy for tens of milliseconds, and clients sending such messages back to back
kept the loop ~90 % busy (py-spy of issue 15's benchmark: ``StreamReader.feed_data`` and
``apply_mask`` on the loop, the decode on the worker threads), so the robot's requests waited behind
them (p50 0.8 → 5 ms, p99 ~30 ms). After a holder gives the gate back, having held it for ``h``
seconds, the gate stays closed for ``h × (1 / max_share − 1)`` seconds (at most
``max_cooldown_s``): large messages then hold it at most ``max_share`` of the time, whoever sends
them. Messages under the threshold never wait, so the robot's requests pass between.
"""

from __future__ import annotations

import collections
import time
from typing import Callable, Generator, Protocol

import numpy as np
import websockets.frames
from websockets.asyncio.messages import Assembler
from websockets.frames import Opcode
from websockets.streams import StreamReader

#: buffered bytes of a connection's message in reception above which it needs the gate. Three
#: 480×640×3 cameras are 2.8 MB, so a high-resolution robot's messages do take the gate; they then
#: wait at most for one other large message in reception.
DEFAULT_LARGE_MESSAGE_BYTES = 1024 * 1024
#: seconds a connection may hold the gate before it is dropped: a 16 MiB message at 8 MB/s with
#: room to spare (a robot on a lossy link sends far less than that per message).
DEFAULT_LARGE_MESSAGE_TIMEOUT_S = 5.0
#: largest share of wall time large messages may hold the gate (module docstring). A 3 × 480×640×3
#: robot (2.8 MB messages, a few ms each to take in) still gets 50 Hz at 0.25.
DEFAULT_LARGE_MESSAGE_SHARE = 0.25
#: longest cool-down after a large message, seconds: a message that took long to arrive (a slow
#: link, not server time) does not lock large messages out for minutes.
DEFAULT_LARGE_MESSAGE_MAX_COOLDOWN_S = 0.5


class Gated(Protocol):
    """What the gate needs of a connection: pause or resume its reading for the gate's sake."""

    def gate_pause(self) -> None: ...

    def gate_resume(self) -> None: ...


class LargeMessageGate:
    """One large message in the server at a time (module docstring).

    A connection's *pending* bytes are its stream buffer, its frames queued for the handler and the
    message its handler is decoding and inferring; the connection tells the gate after each socket
    read and when its handler starts and ends a large message.

    Args:
        threshold_bytes: pending bytes above which a connection needs the gate (>= 1).
        timeout_s: seconds the holder may spend *receiving* its message (> 0); time spent handling
            it (decode, inference) does not count.
        max_share: largest share of wall time large messages may hold the gate, in (0, 1]; 1
            turns the cool-down off.
        max_cooldown_s: longest cool-down after a holder gives the gate back, seconds (>= 0).
        clock: monotonic clock, seconds (tests pass their own).
        call_later: ``(delay_s, callback)`` scheduler that ends a cool-down (the server sets its
            event loop's ``call_later`` when it starts); without one, a cool-down ends at the next
            :meth:`update` or :meth:`tick` after it.

    Raises:
        ValueError: a threshold below 1 byte, a timeout <= 0, a share outside (0, 1] or a negative
            cool-down.
    """

    def __init__(self, threshold_bytes: int = DEFAULT_LARGE_MESSAGE_BYTES,
                 timeout_s: float = DEFAULT_LARGE_MESSAGE_TIMEOUT_S, clock=time.monotonic, *,
                 max_share: float = DEFAULT_LARGE_MESSAGE_SHARE,
                 max_cooldown_s: float = DEFAULT_LARGE_MESSAGE_MAX_COOLDOWN_S,
                 call_later: Callable[[float, Callable[[], None]], object] | None = None):
        if threshold_bytes < 1 or not timeout_s > 0:
            raise ValueError(f"threshold_bytes must be >= 1 and timeout_s > 0, got {threshold_bytes} and {timeout_s}")
        if not 0 < max_share <= 1 or not max_cooldown_s >= 0:
            raise ValueError(f"max_share must be in (0, 1] and max_cooldown_s >= 0, got {max_share} and {max_cooldown_s}")
        self.threshold_bytes = int(threshold_bytes)
        self.timeout_s = float(timeout_s)
        self.max_share = float(max_share)
        self.max_cooldown_s = float(max_cooldown_s)
        self.call_later = call_later
        self._clock = clock
        self.holder: Gated | None = None
        self._held_since: float | None = None
        self._receiving_since: float | None = None
        self._free_at = float("-inf")  # end of the current cool-down, clock seconds
        self._timer_set = False
        self._waiting: collections.OrderedDict[Gated, None] = collections.OrderedDict()

    @property
    def waiting(self) -> int:
        """Connections paused until the gate is free."""
        return len(self._waiting)

    def update(self, conn: Gated, pending: int, *, handling: bool = False) -> None:
        """Tell the gate ``conn``'s pending bytes now, and whether its handler holds a large message.

        Over the threshold: ``conn`` takes the free gate, or is paused and queued. At or under it:
        ``conn`` gives the gate back if it held it, and the next queued connection takes it and is
        resumed.
        """
        if pending > self.threshold_bytes:
            if self.holder is None and not self._waiting and self._clock() >= self._free_at:
                self.holder, self._held_since = conn, self._clock()
            elif self.holder is not conn:
                if conn not in self._waiting:
                    self._waiting[conn] = None
                    conn.gate_pause()
                if self.holder is None:
                    self.tick()  # cooling down: hand over when it ends
                return
            if handling:
                self._receiving_since = None
            elif self._receiving_since is None:
                self._receiving_since = self._clock()
        elif self.holder is conn:
            self._pass_on()

    def forget(self, conn: Gated) -> None:
        """``conn`` has ended: leave the queue, or give the gate to the next connection."""
        self._waiting.pop(conn, None)
        if self.holder is conn:
            self._pass_on()

    def overdue(self) -> Gated | None:
        """The holder, if it has been receiving its message for longer than ``timeout_s``; else None."""
        since = self._receiving_since
        if self.holder is not None and since is not None and self._clock() - since > self.timeout_s:
            return self.holder
        return None

    @property
    def cooling_down(self) -> float:
        """Seconds until the gate may be taken again (0 when it may be taken now)."""
        return max(0.0, self._free_at - self._clock())

    def tick(self) -> None:
        """Hand the free gate to the first waiting connection once the cool-down is over, else
        schedule this call for when it ends (through ``call_later``, once)."""
        if self.holder is not None or not self._waiting:
            return
        wait = self._free_at - self._clock()
        if wait <= 0:
            nxt, _ = self._waiting.popitem(last=False)
            now = self._clock()
            self.holder, self._held_since, self._receiving_since = nxt, now, now
            nxt.gate_resume()
        elif self.call_later is not None and not self._timer_set:
            self._timer_set = True
            self.call_later(wait, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer_set = False
        self.tick()

    def _pass_on(self) -> None:
        now = self._clock()
        if self._held_since is not None and self.max_share < 1:
            held = now - self._held_since
            self._free_at = now + min(self.max_cooldown_s, held * (1.0 / self.max_share - 1.0))
        self.holder, self._held_since, self._receiving_since = None, None, None
        self.tick()


#: reads at least this long are handed over instead of copied (frame headers stay copied: 2–14 bytes).
HAND_OFF_MIN_BYTES = 64 * 1024


class Payload(bytearray):
    """A connection's stream buffer and the payloads handed off from it: the one buffer type that
    :func:`install_in_place_unmask` unmasks in place and :class:`PayloadAssembler` hands to the
    handler as it is. A handed-off payload belongs to its frame alone (the reader moved on to a new
    buffer), so changing it in place is safe."""

    __slots__ = ()


def unmask_in_place(data: bytearray, mask: bytes) -> None:
    """XOR ``data`` with the 4-byte WebSocket ``mask`` repeated (RFC 6455 §5.3), in place.

    Raises:
        ValueError: ``mask`` is not 4 bytes.
    """
    if len(mask) != 4:
        raise ValueError(f"a WebSocket mask is 4 bytes, got {len(mask)}")
    words = len(data) // 4
    if words:
        view = np.frombuffer(data, dtype=np.uint32, count=words)
        np.bitwise_xor(view, np.frombuffer(mask, dtype=np.uint32)[0], out=view)
        del view  # the buffer export ends here
    for i in range(words * 4, len(data)):
        data[i] ^= mask[i % 4]


_WEBSOCKETS_APPLY_MASK = websockets.frames.apply_mask


def _apply_mask(data, mask):
    """websockets' ``apply_mask``, but a :class:`Payload` is unmasked in place and returned."""
    if type(data) is Payload:
        unmask_in_place(data, mask)
        return data
    return _WEBSOCKETS_APPLY_MASK(data, mask)


def install_in_place_unmask() -> None:
    """Make websockets' frame parser (``websockets.frames.Frame.parse``, which calls the module's
    ``apply_mask``) unmask :class:`Payload` buffers in place; every other buffer is unmasked by
    websockets' own function, unchanged. Idempotent; for the whole process (only a
    :class:`HandOffReader` hands out :class:`Payload` buffers)."""
    websockets.frames.apply_mask = _apply_mask


#: payloads at least this long are received straight into one buffer of their final size (one
#: ``mmap`` above glibc's threshold), instead of growing the stream buffer read by read: growing a
#: ``bytearray`` through the heap's sizes up to the mmap threshold left ~12 MiB of heap behind
#: (``/proc/<pid>/smaps`` under issue 15's abuse benchmark).
PREALLOCATE_MIN_BYTES = 1024 * 1024


class HandOffReader(StreamReader):
    """websockets' ``StreamReader`` whose ``read_exact`` hands over the whole buffer when it holds
    exactly the bytes asked for, instead of copying them (module docstring). Installed on a
    connection's existing reader by :func:`hand_off_reader` (the parser is already suspended on it)."""

    _want = 0  # length of the large payload being read (0: none)
    _fill: Payload | None = None  # that payload, of its final size, once its next bytes arrive
    _filled = 0  # bytes of it received
    #: asked before a large payload's buffer is allocated (None: always): the server's connections
    #: allow it only while they hold the :class:`LargeMessageGate`, so a connection waiting for the
    #: gate holds only the bytes it read before it was paused.
    may_fill: Callable[[], bool] | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read: the stream buffer and the large payload being filled."""
        return len(self.buffer) + self._filled

    def feed_data(self, data: bytes | bytearray) -> None:
        """Write data to the stream: into the large payload being read (allocated at its final
        size when its first bytes after the header arrive, so a connection paused by the gate
        holds no more than it had read), then the buffer.

        Raises:
            EOFError: the stream has ended.
        """
        if self.eof:
            raise EOFError("stream ended")
        if (self._want and self._fill is None and len(self.buffer) < self._want
                and (self.may_fill is None or self.may_fill())):
            fill = Payload(self._want)
            have = len(self.buffer)
            fill[:have] = self.buffer
            self.buffer = Payload()
            self._fill, self._filled = fill, have
        fill = self._fill
        if fill is None:
            self.buffer += data
            return
        pos = self._filled
        k = min(len(fill) - pos, len(data))
        with memoryview(data) as view:
            fill[pos:pos + k] = view[:k]  # same length: a copy into place, no resize
            self._filled = pos + k
            if k < len(data):
                self.buffer += view[k:]

    def read_exact(self, n: int) -> Generator[None, None, bytearray]:
        """Read ``n`` bytes: the buffer itself when it holds at least ``n`` and what follows is
        shorter than ``n`` (the bytes after the first ``n`` move to a new buffer), else a copy as
        websockets does (small reads, or a short read followed by more data). A read of at least
        :data:`PREALLOCATE_MIN_BYTES` that the buffer does not hold yet is received into a
        :class:`Payload` of exactly ``n`` bytes, which is returned.

        Raises:
            EOFError: the stream ends in less than ``n`` bytes.
        """
        if n >= PREALLOCATE_MIN_BYTES and len(self.buffer) < n and not self._want:
            self._want = n
            try:
                while self._fill is None or self._filled < n:
                    if self._fill is None and len(self.buffer) >= n:
                        break  # it all arrived before a buffer could be allocated: read it as below
                    if self.eof:
                        raise EOFError(f"stream ends after {self.buffered} bytes, expected {n} bytes")
                    yield
                else:
                    return self._fill
            finally:
                self._want, self._fill, self._filled = 0, None, 0
        while len(self.buffer) < n:
            if self.eof:
                raise EOFError(f"stream ends after {len(self.buffer)} bytes, expected {n} bytes")
            yield
        tail = len(self.buffer) - n
        if n < HAND_OFF_MIN_BYTES or tail >= n:
            return (yield from super().read_exact(n))
        data = self.buffer
        self.buffer = Payload(data[n:])  # the next frame's first bytes (at most one socket read, usually)
        del data[n:]  # shrinks in place: no copy of the payload
        return data


def hand_off_reader(reader: StreamReader) -> None:
    """Make an existing websockets ``StreamReader`` a :class:`HandOffReader` in place (same object,
    same buffer: a protocol's parser generator keeps working on it).

    Raises:
        TypeError: ``reader`` is not exactly websockets' ``StreamReader`` (a subclass may rely on
            ``read_exact`` copying).
    """
    if type(reader) is not StreamReader and type(reader) is not HandOffReader:
        raise TypeError(f"expected websockets.streams.StreamReader, got {type(reader).__name__}")
    reader.__class__ = HandOffReader
    if type(reader.buffer) is not Payload:
        reader.buffer = Payload(reader.buffer)
    install_in_place_unmask()


class PayloadAssembler(Assembler):
    """websockets' asyncio ``Assembler`` whose :meth:`get` returns a whole single-frame binary
    message whose payload is a :class:`Payload` as that buffer (a ``bytearray``), instead of joining
    it into a new ``bytes``; every other message (text, fragmented, copied payloads) goes through
    websockets' own ``get``. Installed on a connection's existing assembler by
    :func:`payload_assembler`."""

    async def get(self, decode: bool | None = None):  # type: ignore[override]
        """The next message: a :class:`Payload` as described, else what ``Assembler.get`` returns.

        Raises:
            EOFError: the stream of frames has ended. ConcurrencyError: two coroutines read at once
                (both from websockets, as ``Assembler.get``).
        """
        if decode is not True and not self.get_in_progress:
            frames = self.frames
            if not frames.queue:  # wait for the first frame without taking it
                self.get_in_progress = True
                try:
                    frame = await frames.get(not self.closed)
                finally:
                    self.get_in_progress = False
                frames.put_back([frame])
            head = frames.queue[0]
            if head.fin and head.opcode is Opcode.BINARY and type(head.data) is Payload:
                frames.queue.popleft()
                self.maybe_resume()
                return head.data
        return await super().get(decode)


def payload_assembler(assembler: Assembler) -> None:
    """Make an existing websockets asyncio ``Assembler`` a :class:`PayloadAssembler` in place.

    Raises:
        TypeError: ``assembler`` is not exactly websockets' ``Assembler``.
    """
    if type(assembler) is not Assembler and type(assembler) is not PayloadAssembler:
        raise TypeError(f"expected websockets.asyncio.messages.Assembler, got {type(assembler).__name__}")
    assembler.__class__ = PayloadAssembler
