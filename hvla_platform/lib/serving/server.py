"""An openpi-compatible websocket policy server.

Protocol (openpi ``websocket_policy_server.py`` / openpi-client 0.1.2, see docs/serving.md):

1. The client opens a websocket (optionally sending ``Authorization: Api-Key <key>``).
2. The server sends one binary frame: the msgpack metadata dict.
3. Loop: the client sends a binary msgpack observation dict; the server answers a binary msgpack
   dict ``{"actions": (H, A) float32, "server_timing": {"infer_ms", "prev_total_ms"}, ...}``.
4. Any error in a request: the server sends a text frame saying what was wrong, then closes with
   code 1011 (openpi-client raises ``RuntimeError`` with that text). A message larger than
   ``max_message_bytes`` closes the connection with 1009 (message too big).

``GET /healthz`` answers ``200 OK`` without authentication (for load balancers / Kubernetes probes).

What this server adds over openpi's: strict decoding (:mod:`hvla_platform.lib.serving.wire`), an API
key check at the handshake (``401``), refusal to listen on a non-loopback address without an API
key, optional TLS (``wss://``), the inference log (:mod:`hvla_platform.lib.serving.inference_log`)
and bounded memory and time per client (docs/serving.md, "Limits per client"): a message-size cap,
a connection cap (``503``) and a per-peer cap (``429``), browser ``Origin`` headers refused unless
allowed (``403``), at most one frame waiting per connection beyond the one being handled
(websockets' ``max_queue``, :data:`RECEIVE_QUEUE_FRAMES`) and :data:`WRITE_LIMIT_BYTES` of unsent data before a send
waits (``write_limit``), a client that does not take a reply within ``send_timeout_s`` dropped, an
idle connection closed after ``idle_timeout_s``, and one message over 1 MiB in the server at a time
(:mod:`hvla_platform.lib.serving.large_messages`: others wait with their sockets paused, a sender
that takes over 5 s to deliver one is dropped, payloads are handed to the parser without a copy and
leave memory once handled). Each request is decoded, inferred and encoded on a
worker thread (a pool of :data:`REQUEST_WORKERS`; the decoder's element and depth limits bound what
one message can cost), inference one request at a time under a lock as in openpi (one model, one
device), so the event loop keeps moving every other client's bytes.

Per-request cost (docs/serving.md, "Where the CPU goes, and what was changed"): observations are
decoded zero-copy (arrays are read-only views of the message, validated from their headers first);
the inference log's request line is a bounded append, formatted and written by the log's writer
thread; the request's buffers are released before waiting for the next message;
:meth:`PolicyServer.serve_forever` keeps freed message buffers mapped
(:mod:`hvla_platform.lib.serving.allocator`) and ``gc.freeze()`` moves everything loaded before
serving out of the cyclic GC's reach.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import hmac
import http
import itertools
import logging
import ssl
import sys
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Protocol

import numpy as np
import websockets
from websockets.asyncio.server import Request, Response, ServerConnection, serve

from hvla_platform.lib.core.net import API_KEY_SCHEME, is_loopback
from hvla_platform.lib.serving import allocator, wire
from hvla_platform.lib.serving.inference_log import InferenceLog, detached
from hvla_platform.lib.serving.large_messages import LargeMessageGate, hand_off_reader, payload_assembler

logger = logging.getLogger(__name__)

#: default cap on one incoming message: three 224×224×3 images are 0.45 MB; 16 MiB leaves room for
#: high-resolution cameras while bounding what a client can make the server buffer.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 64
#: connections from one IP address: a robot host runs a handful of clients (robot, monitor, eval);
#: 16 is a quarter of the global cap, so one host (or one runaway script) cannot take every slot.
DEFAULT_MAX_CONNECTIONS_PER_PEER = 16
#: seconds without a request before a connection is closed (1000): long enough for an operator to
#: reset a scene between episodes (openpi's client does not reconnect), short enough that a held
#: slot is given back within minutes.
DEFAULT_IDLE_TIMEOUT_S = 300.0
#: seconds a reply may wait for the client to read before the connection is dropped: a send only
#: waits once the kernel's socket buffers and :data:`WRITE_LIMIT_BYTES` are full, i.e. the client
#: has left hundreds of kB of replies unread; a robot reading at its control rate never waits.
DEFAULT_SEND_TIMEOUT_S = 10.0
#: websockets' ``max_queue`` (high-water mark of received frames): 0 = it stops reading a
#: connection's socket as soon as one frame waits, until the handler takes it. Request/reply clients
#: never have more than one message in flight, so this costs them nothing but a pause/resume of the
#: socket per request; a client that pipelines is held at one frame waiting + one being handled
#: (websockets' and openpi's default, 16, let one client pin 17 × the message cap).
RECEIVE_QUEUE_FRAMES = 0
#: unsent bytes per connection above which a send waits for the client (websockets' ``write_limit``).
WRITE_LIMIT_BYTES = 64 * 1024
#: worker threads that decode, infer and encode requests (inference itself is serialized).
REQUEST_WORKERS = 4
#: seconds a thread may hold the GIL while another waits for it (``sys.setswitchinterval``; Python's
#: default is 0.005), set by :meth:`PolicyServer.serve_forever` for its process. A robot's request
#: passes the GIL between the event loop and a worker thread three times; while another client's
#: message is being decoded on a worker (msgpack hooks in Python), each pass could wait the whole
#: interval: 1 ms keeps those waits short (issue 15's abuse benchmark).
SWITCH_INTERVAL_S: float | None = 0.001
#: metadata keys never sent to clients: the server's own filesystem layout (``checkpoint`` and
#: ``checkpoint_key`` identify the model).
PRIVATE_METADATA_KEYS = frozenset({"checkpoint_dir"})


class ServablePolicy(Protocol):
    """What the server needs: ``metadata`` (msgpack-able dict) and ``infer(obs) -> {"actions": (H, A)}``
    raising ``ValueError`` for an observation it cannot use. The observation's arrays are read-only
    views of the received message (:func:`hvla_platform.lib.serving.wire.unpack`): copy one before
    changing it. The returned dict is not modified."""

    metadata: Mapping[str, Any]

    def infer(self, obs: Mapping[str, Any]) -> Mapping[str, Any]: ...


class RequestError(ValueError):
    """A request the server rejects (the text goes to the client in the error frame)."""


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2 or later) for ``wss://``, from PEM files.

    Raises:
        FileNotFoundError: a file is missing. ssl.SSLError: not a certificate/key pair.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


class _Watch:
    """One connection's clocks for the reaper (``time.monotonic()`` seconds, None when not running)
    and why the server dropped it (None: it did not)."""

    __slots__ = ("waiting_since", "sending_since", "dropped")

    def __init__(self) -> None:
        self.waiting_since: float | None = None
        self.sending_since: float | None = None
        self.dropped: str | None = None


class _Connection(ServerConnection):
    """websockets' server connection (``create_connection`` hook) that gives back its connection slot
    (global and per peer) when its TCP connection ends, whether or not the handshake completed, and
    takes part in the server's :class:`~hvla_platform.lib.serving.large_messages.LargeMessageGate`
    once its handshake is accepted (``gate``). Its reader hands whole payloads to the frame parser
    without a copy (:func:`~hvla_platform.lib.serving.large_messages.hand_off_reader`). Reading is
    paused while websockets' receive queue is full or the gate is taken, resumed when neither holds."""

    release: Callable[[], None] | None = None
    gate: LargeMessageGate | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        hand_off_reader(self.protocol.reader)
        # a large payload's buffer is allocated only while this connection holds the gate
        self.protocol.reader.may_fill = lambda: self.gate is None or self.gate.holder is self
        self._paused_for: set[str] = set()  # "queue" (websockets), "gate", "handling"
        self.handling_bytes = 0  # size of the large message its handler holds, else 0
        self._large_frames: list[Any] = []  # parsed frames over the gate's threshold (see handling_large)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        payload_assembler(self.recv_messages)  # created by connection_made
        self.recv_messages.pause = lambda: self._pause("queue")
        self.recv_messages.resume = lambda: self._resume("queue")

    def _pause(self, reason: str) -> None:
        self._paused_for.add(reason)
        self.transport.pause_reading()

    def _resume(self, reason: str) -> None:
        self._paused_for.discard(reason)
        if not self._paused_for:
            self.transport.resume_reading()

    def gate_pause(self) -> None:
        """Stop reading until the large-message gate is this connection's."""
        self._pause("gate")

    def gate_resume(self) -> None:
        """The gate is this connection's: read again unless something else holds reading."""
        self._resume("gate")

    def pending_bytes(self) -> int:
        """Bytes of this connection's messages in the server: its stream buffer, its frames queued
        for the handler and the large message its handler holds."""
        return (self.protocol.reader.buffered + sum(len(f.data) for f in self.recv_messages.frames.queue)
                + self.handling_bytes)

    def handling_large(self, size: int) -> None:
        """The handler took a message of ``size`` bytes: over the gate's threshold, stop reading
        until :meth:`handled` (one large message per connection at a time) and hold the gate.

        websockets' frame parser keeps its last frame in a local variable until the next frame is
        parsed, so a connection's last large message would stay in memory while it idles (64 idle
        connections × 16 MiB): the frames handed to the handler drop their payload here, leaving
        the handler's ``message`` its only holder."""
        if self._large_frames:
            queued = {id(f) for f in self.recv_messages.frames.queue}
            for frame in self._large_frames:
                if id(frame) not in queued:
                    frame.data = b""
            self._large_frames = [f for f in self._large_frames if id(f) in queued]
        if self.gate is not None and size > self.gate.threshold_bytes:
            self.handling_bytes = size
            self._pause("handling")
            self.gate.update(self, self.pending_bytes(), handling=True)

    def handled(self) -> None:
        """The handler is done with its large message (decoded and inferred): give the gate back."""
        if self.handling_bytes:
            self.handling_bytes = 0
            self._resume("handling")
            self.gate.update(self, self.pending_bytes())

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.gate is not None:
            threshold = self.gate.threshold_bytes
            for frame in self.recv_messages.frames.queue:
                if len(frame.data) > threshold and all(f is not frame for f in self._large_frames):
                    self._large_frames.append(frame)
            self.gate.update(self, self.pending_bytes(), handling=bool(self.handling_bytes))

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            super().connection_lost(exc)
        finally:
            if self.gate is not None:
                self.gate.forget(self)
            release, self.release = self.release, None
            if release is not None:
                release()


class PolicyServer:
    """Serve one policy over openpi's websocket protocol.

    Args:
        policy: the loaded policy (e.g. :class:`hvla_platform.lib.training.policy.Policy`).
        host: address to listen on; 127.0.0.1 by default.
        port: TCP port (0 picks a free one; see :attr:`port` after start).
        metadata: sent to each client after the handshake (default: ``policy.metadata``).
        api_key: when set, the handshake must carry ``Authorization: Api-Key <api_key>``.
        max_message_bytes: largest accepted incoming message; larger closes with 1009.
        max_connections: concurrent connections; more are refused with HTTP 503.
        max_connections_per_peer: concurrent connections from one IP address; more: HTTP 429.
        idle_timeout_s: close a connection after this many seconds without a request (None: never).
        send_timeout_s: drop a connection whose reply the client has not taken within this many seconds.
        allowed_origins: ``Origin`` header values accepted (browsers send one; other clients do
            not): a handshake carrying any other origin is refused with HTTP 403.
        ssl_context: serve ``wss://`` with this context (:func:`tls_context`); None: plain ``ws://``.
        large_message_gate: the one-large-message-at-a-time gate
            (:class:`~hvla_platform.lib.serving.large_messages.LargeMessageGate`; default: 1 MiB
            threshold, 5 s to finish a large message).
        inference_log: where requests are logged (None: not logged).
        standing: the checkpoint's revocation standing (:class:`hvla_platform.lib.serving.standing.Standing`):
            a cheap call returning None or the refusal reason, asked on each new connection (HTTP 403)
            and before each inference (error frame, then close 1011). None: not checked.
        allow_remote_without_key: permit a non-loopback ``host`` without ``api_key``.

    Raises:
        ValueError: a non-loopback host without an API key (unless allowed), or bad limits.
    """

    def __init__(self, policy: ServablePolicy, *, host: str = "127.0.0.1", port: int = 8000,
                 metadata: Mapping[str, Any] | None = None, api_key: str | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 inference_log: InferenceLog | None = None, allow_remote_without_key: bool = False,
                 standing: Callable[[], str | None] | None = None,
                 max_connections_per_peer: int = DEFAULT_MAX_CONNECTIONS_PER_PEER,
                 idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
                 send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S, allowed_origins: Iterable[str] = (),
                 ssl_context: ssl.SSLContext | None = None, large_message_gate: LargeMessageGate | None = None):
        if not is_loopback(host) and not api_key and not allow_remote_without_key:
            raise ValueError(f"refusing to listen on {host!r} without an API key: anyone on the network could "
                             "drive the policy. Set an API key, bind to 127.0.0.1, or allow it explicitly.")
        if max_message_bytes < 1024 or max_connections < 1 or max_connections_per_peer < 1:
            raise ValueError("max_message_bytes must be >= 1024, max_connections and max_connections_per_peer >= 1")
        if (idle_timeout_s is not None and not idle_timeout_s > 0) or not send_timeout_s > 0:
            raise ValueError(f"idle_timeout_s (None or > 0) and send_timeout_s (> 0) must be positive, got "
                             f"{idle_timeout_s} and {send_timeout_s}")
        self._policy = policy
        self.host = host
        self._port = int(port)
        meta = dict(metadata if metadata is not None else policy.metadata)
        self._metadata_bytes = wire.pack({k: v for k, v in meta.items() if k not in PRIVATE_METADATA_KEYS})
        self.max_connections_per_peer = int(max_connections_per_peer)
        self.idle_timeout_s = None if idle_timeout_s is None else float(idle_timeout_s)
        self.send_timeout_s = float(send_timeout_s)
        self.allowed_origins = frozenset(allowed_origins)
        self.ssl_context = ssl_context
        self._per_peer: dict[str, int] = {}
        self._watches: dict[ServerConnection, _Watch] = {}
        self._closing: set[asyncio.Task] = set()
        self._infer_lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._api_key = api_key or None
        self.max_message_bytes = int(max_message_bytes)
        self.max_connections = int(max_connections)
        self.log = inference_log
        self._conn_ids = itertools.count(1)
        self._active = 0
        self._server = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._heap_kept: bool | None = None  # None: not attempted (start_in_thread)
        self._standing = standing
        self._gate = large_message_gate if large_message_gate is not None else LargeMessageGate()

    @property
    def port(self) -> int:
        """The bound port (valid once the server has started)."""
        return self._port

    @property
    def scheme(self) -> str:
        """``wss`` with TLS, else ``ws``."""
        return "wss" if self.ssl_context is not None else "ws"

    @property
    def connections(self) -> int:
        """Connections holding a slot now (from their accepted handshake until their TCP connection ends)."""
        return self._active

    def connections_from(self, ip: str) -> int:
        """Connections holding a slot now from the IP address ``ip``."""
        return self._per_peer.get(ip, 0)

    # ---- handshake ------------------------------------------------------------------------
    def _refuse(self, connection: ServerConnection, status: http.HTTPStatus, text: str, why: str) -> Response:
        if self.log:
            self.log.write("refused", peer=_peer(connection), status=int(status), reason=why)
        return connection.respond(status, text + "\n")

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.allowed_origins:
            # A browser page: cross-site WebSocket hijacking would let any page the operator opens
            # take connection slots or drive the policy (no key is needed on loopback).
            return self._refuse(connection, http.HTTPStatus.FORBIDDEN,
                                f"browser origin {origin!r} refused: start the server with --allow-origin "
                                f"{origin} to allow it", "origin not allowed")
        if self._api_key:
            got = request.headers.get("Authorization", "")
            scheme, _, key = got.partition(" ")
            if scheme != API_KEY_SCHEME or not hmac.compare_digest(key.strip().encode(), self._api_key.encode()):
                why = "missing API key" if not got else "wrong API key"
                return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED,
                                    f"{why}: send 'Authorization: {API_KEY_SCHEME} <key>'", why)
        revoked = self._standing() if self._standing is not None else None
        if revoked:
            return self._refuse(connection, http.HTTPStatus.FORBIDDEN, f"hvla policy server: {revoked}", revoked)
        if self._active >= self.max_connections:
            return self._refuse(connection, http.HTTPStatus.SERVICE_UNAVAILABLE,
                                f"server busy: {self._active} connections (limit {self.max_connections})",
                                "connection limit")
        ip = _peer_ip(connection)
        if self._per_peer.get(ip, 0) >= self.max_connections_per_peer:
            return self._refuse(connection, http.HTTPStatus.TOO_MANY_REQUESTS,
                                f"too many connections from {ip}: {self._per_peer[ip]} (limit "
                                f"{self.max_connections_per_peer} per client address)", "per-peer connection limit")
        # Take the slot now, not in the handler: handshakes in flight are counted too. It is given
        # back when the TCP connection ends (_Connection.connection_lost).
        self._active += 1
        self._per_peer[ip] = self._per_peer.get(ip, 0) + 1
        connection.release = lambda: self._release(ip)
        if isinstance(connection, _Connection):
            connection.gate = self._gate
        return None

    def _release(self, ip: str) -> None:
        self._active -= 1
        left = self._per_peer.pop(ip, 1) - 1
        if left > 0:
            self._per_peer[ip] = left

    async def _send(self, ws: ServerConnection, data: bytes | str) -> str | None:
        """Send one frame. Returns None once it is handed to the OS, else why it was not: the
        connection closed, or the client did not take it within ``send_timeout_s`` (the reaper
        then aborted the connection, which frees its buffers at once)."""
        watch = self._watches.get(ws)
        if watch is not None:
            watch.sending_since = time.monotonic()
        try:
            await ws.send(data)
            return None
        except websockets.ConnectionClosed as exc:
            return (watch and watch.dropped) or f"connection closed before the reply was sent ({exc})"
        finally:
            if watch is not None:
                watch.sending_since = None

    async def _reap(self) -> None:
        """Every quarter of the shorter timeout (at most 1 s): abort each connection whose send has
        waited more than ``send_timeout_s`` (the client stopped reading) and close (1000) each one
        that has waited more than ``idle_timeout_s`` for a request. One task for all connections,
        so a request pays two clock reads instead of two timers."""
        idle, send_timeout = self.idle_timeout_s, self.send_timeout_s
        period = min(1.0, send_timeout / 4, (idle or 4.0) / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            slow = self._gate.overdue()
            if slow is not None:
                watch = self._watches.get(slow)
                if watch is not None and watch.dropped is None:
                    watch.dropped = (f"a message over {self._gate.threshold_bytes} bytes took more than "
                                     f"{self._gate.timeout_s:g} s to arrive (large-message timeout): connection dropped")
                slow.transport.abort()
            for ws, watch in list(self._watches.items()):
                if watch.dropped is not None:
                    continue
                if watch.sending_since is not None and now - watch.sending_since > send_timeout:
                    watch.dropped = f"the client did not read for {send_timeout:g} s (send timeout): connection dropped"
                    ws.transport.abort()
                elif idle is not None and watch.waiting_since is not None and now - watch.waiting_since > idle:
                    watch.dropped = f"no request for {idle:g} s (idle timeout)"
                    task = loop.create_task(ws.close(code=1000, reason=watch.dropped))
                    self._closing.add(task)
                    task.add_done_callback(self._closing.discard)

    # ---- one connection -------------------------------------------------------------------
    async def _fail_request(self, ws: ServerConnection, text: str, why: str, *, status: str, conn: int, seq: int,
                            arrived: float, size: int, latency_ms: float, infer_ms: float | None = None,
                            observation: Any = None) -> None:
        """End a connection on a request that gets no actions: a request log line with ``status``
        (``error``: the request was refused or inference failed; ``revoked``: the checkpoint was
        flagged while serving), the error frame ``text``, then close 1011 with ``why``."""
        if self.log:
            self.log.request(t=arrived, conn=conn, seq=seq, latency_ms=latency_ms, infer_ms=infer_ms,
                             request_bytes=size, action_shape=None, status=status, error=text,
                             observation=observation)
        await self._send(ws, text)
        await ws.close(code=1011, reason=f"{why}; the reason is in the previous frame")

    def _answer(self, message: Any, prev_total_ms: float | None, packer: Any) -> tuple[bytes, dict, float, tuple]:
        """Decode, infer, check, encode. Returns (reply bytes, observation, infer_ms, action shape).

        Raises:
            RequestError, WireError: the observation is refused. ValueError/KeyError: the policy
                refused it. RuntimeError: the policy failed or returned no/invalid actions.
        """
        if type(message) is str:
            raise RequestError("observations must be sent as binary msgpack frames, got a text frame")
        obs = wire.unpack(message)  # strict, zero-copy: read-only views of the message bytes
        if type(obs) is not dict:
            raise RequestError(f"an observation must be a msgpack map, got {type(obs).__name__}")
        with self._infer_lock:  # one model, one device: one inference at a time
            t0 = time.perf_counter()
            out = self._policy.infer(obs)
            infer_ms = (time.perf_counter() - t0) * 1000.0
        if not (type(out) is dict or isinstance(out, Mapping)) or "actions" not in out:
            raise RuntimeError(f"the policy returned no 'actions' (got {type(out).__name__})")
        actions = out["actions"]
        if type(actions) is not np.ndarray or actions.dtype != np.float32:
            actions = np.asarray(actions, dtype=np.float32)
        if actions.ndim != 2 or not np.isfinite(actions).all():
            raise RuntimeError(f"the policy produced invalid actions (shape {actions.shape}, finite="
                               f"{bool(np.isfinite(actions).all())})")
        timing = {"infer_ms": infer_ms} if prev_total_ms is None else {"infer_ms": infer_ms,
                                                                        "prev_total_ms": prev_total_ms}
        if len(out) == 1:  # the policy's dict is never modified (it may reuse it)
            reply = {"actions": actions, "server_timing": timing}
        else:
            reply = dict(out)
            reply["actions"] = actions
            reply["server_timing"] = timing
        return packer.pack(reply), obs, infer_ms, actions.shape

    async def _handler(self, ws: ServerConnection) -> None:
        conn = next(self._conn_ids)
        peer = _peer(ws)
        log = self.log
        if log:
            log.write("open", conn=conn, peer=peer)
        seq = 0
        prev_total_ms = None
        packer = wire.packer()
        perf_counter, now = time.perf_counter, time.time
        answer, executor, loop = self._answer, self._executor, asyncio.get_running_loop()
        monotonic = time.monotonic
        watch = self._watches[ws] = _Watch()
        dropped = None  # why a reply was not delivered
        try:
            dropped = await self._send(ws, self._metadata_bytes)
            while dropped is None:
                watch.waiting_since = monotonic()  # the idle clock runs only while waiting for a request
                message = await ws.recv()
                watch.waiting_since = None
                size = len(message)
                ws.handling_large(size)
                t0 = perf_counter()
                arrived = now()
                seq += 1
                obs, infer_ms = None, None
                revoked = self._standing() if self._standing is not None else None
                if revoked:  # the checkpoint was flagged while serving: answer no more requests
                    message = None
                    ws.handled()
                    await self._fail_request(ws, f"hvla policy server: request {seq}: refused: {revoked}",
                                             "checkpoint revoked", status="revoked", conn=conn, seq=seq,
                                             arrived=arrived, size=size, latency_ms=0.0)
                    return
                try:  # decoding, inference and encoding on a worker thread: the event loop keeps serving
                    reply, obs, infer_ms, shape = await loop.run_in_executor(executor, answer, message,
                                                                             prev_total_ms, packer)
                except Exception as exc:  # noqa: BLE001 - every failure becomes an error frame, never a crash
                    message = None
                    ws.handled()
                    if not isinstance(exc, (ValueError, KeyError)):
                        logger.exception("request %d on connection %d failed", seq, conn)
                    await self._fail_request(ws, _error_text(exc, seq), "request rejected", status="error",
                                             conn=conn, seq=seq, arrived=arrived, size=size,
                                             latency_ms=(perf_counter() - t0) * 1e3, infer_ms=infer_ms,
                                             observation=obs)
                    return
                if ws.handling_bytes:
                    # A large message leaves memory (and gives back the gate) before its reply is sent:
                    # a send that waits for a slow reader must not keep it. A sampled observation is copied.
                    obs = detached(obs) if log and log.next_is_sampled() else None
                    message = None
                    ws.handled()
                dropped = await self._send(ws, reply)
                prev_total_ms = (perf_counter() - t0) * 1000.0
                if dropped is not None:  # computed but not delivered: still logged, saying so
                    if log:
                        log.request(t=arrived, conn=conn, seq=seq, latency_ms=prev_total_ms, infer_ms=infer_ms,
                                    request_bytes=size, action_shape=shape, status="ok",
                                    error=f"reply not delivered: {dropped}", delivered=False)
                    return
                if log:  # a bounded append; the log's writer thread formats and writes it
                    log.record_ok(arrived, conn, seq, prev_total_ms, infer_ms, size, shape, obs)
                # Release this request's buffers before waiting for the next one (the observation's
                # arrays are views of the message): the allocator then reuses their memory instead
                # of faulting in fresh pages for the next message.
                message = obs = reply = None
        except websockets.ConnectionClosed:
            pass
        finally:
            ws.handled()  # a revoked or closed connection gives the gate back before its close handshake
            self._watches.pop(ws, None)
            if log:
                why = watch.dropped  # the server ended the connection itself (idle, slow reader)
                extra = {} if why is None else {"dropped": why}
                log.write("close", conn=conn, peer=peer, requests=seq, close_code=ws.close_code,
                          close_reason=ws.close_reason, **extra)

    # ---- running --------------------------------------------------------------------------
    async def _serve(self, stop: asyncio.Future, on_start: Any = None) -> None:
        # Everything loaded so far (libraries, the model) lives as long as the server: move it out of
        # the cyclic GC's reach so collections triggered by request handling do not rescan it.
        gc.freeze()
        if self._gate.call_later is None:  # a large-message cool-down ends on this loop
            self._gate.call_later = asyncio.get_running_loop().call_later
        # Transport settings as openpi's server: no compression (permessage-deflate costs CPU on
        # camera frames that do not compress), websockets' default keepalive pings (20 s interval,
        # 20 s timeout: a vanished peer is closed within 40 s) and handshake timeout (10 s, which also
        # bounds the TLS handshake). Unlike openpi the message size is capped (openpi: max_size=None),
        # and so are the frames queued per connection (max_queue; openpi: 16) and the unsent bytes
        # before a send waits (write_limit).
        self._executor = concurrent.futures.ThreadPoolExecutor(REQUEST_WORKERS, thread_name_prefix="policy-request")
        try:
            async with serve(self._handler, self.host, self._port, compression=None,
                             max_size=self.max_message_bytes, max_queue=RECEIVE_QUEUE_FRAMES,
                             write_limit=WRITE_LIMIT_BYTES, process_request=self._process_request,
                             create_connection=_Connection, ssl=self.ssl_context) as server:
                self._server = server
                self._port = server.sockets[0].getsockname()[1]
                if self.log:
                    self.log.write("start", checkpoint=self.log.checkpoint, host=self.host, port=self._port,
                                   api_key=bool(self._api_key), tls=self.ssl_context is not None,
                                   sample_every=self.log.sample_every, max_message_bytes=self.max_message_bytes,
                                   max_connections=self.max_connections,
                                   max_connections_per_peer=self.max_connections_per_peer,
                                   idle_timeout_s=self.idle_timeout_s, send_timeout_s=self.send_timeout_s,
                                   allowed_origins=sorted(self.allowed_origins), heap_kept=self._heap_kept)
                reaper = asyncio.get_running_loop().create_task(self._reap())
                self._started.set()
                if on_start is not None:
                    on_start(self)
                try:
                    await stop
                finally:
                    reaper.cancel()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)
        if self.log:
            self.log.write("stop", port=self._port, dropped_request_lines=self.log.dropped)  # flushes all

    def serve_forever(self, on_start: Any = None, *, keep_heap: bool = True) -> None:
        """Serve until SIGINT/SIGTERM (or :meth:`stop` from another thread), in this process.

        Args:
            on_start: called with the server once it is listening (``self.port`` bound).
            keep_heap: tune this process's allocator to keep freed message buffers mapped
                (:func:`hvla_platform.lib.serving.allocator.keep_heap`: ~100 fewer page faults per
                3-camera request); the ``start`` log line records whether it applied.

        Raises:
            OSError: the address could not be bound (e.g. the port is in use).
        """
        import signal

        if keep_heap:
            self._heap_kept = allocator.keep_heap()
        if SWITCH_INTERVAL_S is not None:
            sys.setswitchinterval(SWITCH_INTERVAL_S)

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = self._loop.create_future()
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, lambda: self._stop.done() or self._stop.set_result(None))
            await self._serve(self._stop, on_start)

        asyncio.run(main())

    def start_in_thread(self, timeout_s: float = 30.0) -> "PolicyServer":
        """Start serving on a background thread; return once listening (``self.port`` is bound).

        Raises:
            OSError: the address could not be bound. TimeoutError: not listening within ``timeout_s``.
        """
        def run() -> None:
            async def main() -> None:
                self._loop = asyncio.get_running_loop()
                self._stop = self._loop.create_future()
                await self._serve(self._stop)

            try:
                asyncio.run(main())
            except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
                self._start_error = exc
                self._started.set()

        self._thread = threading.Thread(target=run, name=f"policy-server-{self.host}", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout_s):
            raise TimeoutError(f"policy server did not start within {timeout_s} s")
        if self._start_error is not None:
            raise self._start_error
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop a server started with :meth:`start_in_thread` (or :meth:`serve_forever` elsewhere)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(lambda: self._stop.done() or self._stop.set_result(None))
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> "PolicyServer":
        return self.start_in_thread()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _peer_ip(ws: ServerConnection) -> str:
    """The client's IP address (the per-peer limit's key)."""
    addr = ws.remote_address
    return str(addr[0]) if isinstance(addr, tuple) and addr else str(addr)


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)


def _error_text(exc: BaseException, seq: int) -> str:
    kind = "observation rejected" if isinstance(exc, (ValueError, KeyError)) else "inference failed"
    return f"hvla policy server: request {seq}: {kind}: {type(exc).__name__}: {exc}"
