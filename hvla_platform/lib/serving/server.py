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
key check at the handshake (``401``), a message-size cap, a connection cap (``503``), refusal to
listen on a non-loopback address without an API key, and the inference log
(:mod:`hvla_platform.lib.serving.inference_log`). Inference runs on the event loop, one request at
a time, as in openpi: one model, one device.

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
import gc
import hmac
import http
import ipaddress
import itertools
import logging
import threading
import time
from typing import Any, Mapping, Protocol

import numpy as np
import websockets
from websockets.asyncio.server import Request, Response, ServerConnection, serve

from hvla_platform.lib.serving import allocator, wire
from hvla_platform.lib.serving.inference_log import InferenceLog

logger = logging.getLogger(__name__)

#: default cap on one incoming message: three 224×224×3 images are 0.45 MB; 16 MiB leaves room for
#: high-resolution cameras while bounding what a client can make the server buffer.
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 64
API_KEY_SCHEME = "Api-Key"


class ServablePolicy(Protocol):
    """What the server needs: ``metadata`` (msgpack-able dict) and ``infer(obs) -> {"actions": (H, A)}``
    raising ``ValueError`` for an observation it cannot use. The observation's arrays are read-only
    views of the received message (:func:`hvla_platform.lib.serving.wire.unpack`): copy one before
    changing it. The returned dict is not modified."""

    metadata: Mapping[str, Any]

    def infer(self, obs: Mapping[str, Any]) -> Mapping[str, Any]: ...


class RequestError(ValueError):
    """A request the server rejects (the text goes to the client in the error frame)."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
        inference_log: where requests are logged (None: not logged).
        allow_remote_without_key: permit a non-loopback ``host`` without ``api_key``.

    Raises:
        ValueError: a non-loopback host without an API key (unless allowed), or bad limits.
    """

    def __init__(self, policy: ServablePolicy, *, host: str = "127.0.0.1", port: int = 8000,
                 metadata: Mapping[str, Any] | None = None, api_key: str | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 inference_log: InferenceLog | None = None, allow_remote_without_key: bool = False):
        if not is_loopback(host) and not api_key and not allow_remote_without_key:
            raise ValueError(f"refusing to listen on {host!r} without an API key: anyone on the network could "
                             "drive the policy. Set an API key, bind to 127.0.0.1, or allow it explicitly.")
        if max_message_bytes < 1024 or max_connections < 1:
            raise ValueError("max_message_bytes must be >= 1024 and max_connections >= 1")
        self._policy = policy
        self.host = host
        self._port = int(port)
        self._metadata_bytes = wire.pack(dict(metadata if metadata is not None else policy.metadata))
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

    @property
    def port(self) -> int:
        """The bound port (valid once the server has started)."""
        return self._port

    # ---- handshake ------------------------------------------------------------------------
    def _refuse(self, connection: ServerConnection, status: http.HTTPStatus, text: str, why: str) -> Response:
        if self.log:
            self.log.write("refused", peer=_peer(connection), status=int(status), reason=why)
        return connection.respond(status, text + "\n")

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if self._api_key:
            got = request.headers.get("Authorization", "")
            scheme, _, key = got.partition(" ")
            if scheme != API_KEY_SCHEME or not hmac.compare_digest(key.strip().encode(), self._api_key.encode()):
                why = "missing API key" if not got else "wrong API key"
                return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED,
                                    f"{why}: send 'Authorization: {API_KEY_SCHEME} <key>'", why)
        if self._active >= self.max_connections:
            return self._refuse(connection, http.HTTPStatus.SERVICE_UNAVAILABLE,
                                f"server busy: {self._active} connections (limit {self.max_connections})",
                                "connection limit")
        return None

    # ---- one connection -------------------------------------------------------------------
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
        self._active += 1
        peer = _peer(ws)
        log = self.log
        if log:
            log.write("open", conn=conn, peer=peer)
        seq = 0
        prev_total_ms = None
        packer = wire.packer()
        perf_counter, now = time.perf_counter, time.time
        try:
            await ws.send(self._metadata_bytes)
            while True:
                message = await ws.recv()
                t0 = perf_counter()
                arrived = now()
                seq += 1
                obs, infer_ms = None, None
                try:
                    reply, obs, infer_ms, shape = self._answer(message, prev_total_ms, packer)
                except Exception as exc:  # noqa: BLE001 - every failure becomes an error frame, never a crash
                    text = _error_text(exc, seq)
                    if not isinstance(exc, (ValueError, KeyError)):
                        logger.exception("request %d on connection %d failed", seq, conn)
                    if log:
                        log.request(t=arrived, conn=conn, seq=seq, latency_ms=(perf_counter() - t0) * 1e3,
                                    infer_ms=infer_ms, request_bytes=len(message), action_shape=None,
                                    status="error", error=text, observation=obs)
                    await ws.send(text)
                    await ws.close(code=1011, reason="request rejected; the reason is in the previous frame")
                    return
                await ws.send(reply)
                prev_total_ms = (perf_counter() - t0) * 1000.0
                if log:  # a bounded append; the log's writer thread formats and writes it
                    log.record_ok(arrived, conn, seq, prev_total_ms, infer_ms, len(message), shape, obs)
                # Release this request's buffers before waiting for the next one (the observation's
                # arrays are views of the message): the allocator then reuses their memory instead
                # of faulting in fresh pages for the next message.
                message = obs = reply = None
        except websockets.ConnectionClosed:
            pass
        finally:
            self._active -= 1
            if log:
                log.write("close", conn=conn, peer=peer, requests=seq, close_code=ws.close_code,
                          close_reason=ws.close_reason)

    # ---- running --------------------------------------------------------------------------
    async def _serve(self, stop: asyncio.Future, on_start: Any = None) -> None:
        # Everything loaded so far (libraries, the model) lives as long as the server: move it out of
        # the cyclic GC's reach so collections triggered by request handling do not rescan it.
        gc.freeze()
        # Transport settings as openpi's server: no compression (permessage-deflate costs CPU on
        # camera frames that do not compress), websockets' default keepalive pings (20 s interval,
        # 20 s timeout). Unlike openpi (max_size=None) the message size is capped.
        async with serve(self._handler, self.host, self._port, compression=None, max_size=self.max_message_bytes,
                         process_request=self._process_request) as server:
            self._server = server
            self._port = server.sockets[0].getsockname()[1]
            if self.log:
                self.log.write("start", checkpoint=self.log.checkpoint, host=self.host, port=self._port,
                               api_key=bool(self._api_key), sample_every=self.log.sample_every,
                               max_message_bytes=self.max_message_bytes, heap_kept=self._heap_kept)
            self._started.set()
            if on_start is not None:
                on_start(self)
            await stop
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


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else str(addr)


def _error_text(exc: BaseException, seq: int) -> str:
    kind = "observation rejected" if isinstance(exc, (ValueError, KeyError)) else "inference failed"
    return f"hvla policy server: request {seq}: {kind}: {type(exc).__name__}: {exc}"
