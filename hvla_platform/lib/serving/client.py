"""Robot-side client of an openpi-compatible policy server (the protocol of
:mod:`hvla_platform.lib.serving.server`; interchangeable with openpi-client's
``WebsocketClientPolicy``, which the CI runs against our server too).
"""

from __future__ import annotations

import ssl as ssl_module
import time
from typing import Any, Mapping

import websockets
from websockets.sync.client import ClientConnection, connect

from hvla_platform.lib.serving import wire


class ServerError(RuntimeError):
    """The server answered with an error frame (its text is the message) or closed the connection."""


class QueryTimeout(TimeoutError):
    """The policy server did not answer within the query deadline (a fault: the robot stops)."""


class PolicyClient:
    """A connection to a policy server.

    Args:
        host: server address, or a full ``ws://`` / ``wss://`` URI.
        port: TCP port (ignored when ``host`` is a URI that has one).
        api_key: sent as ``Authorization: Api-Key <api_key>``.
        connect_timeout_s: keep retrying a refused connection (server still starting) this long.
        recv_timeout_s: longest wait for one reply, seconds (``hvla deploy`` sets it to its query
            deadline, so an abandoned query's wait ends with it).
        close_timeout_s: longest wait for the server's side of the closing handshake in :meth:`close`.
        tls_ca: PEM file of the certificate authority (or the self-signed certificate) that signed the
            server's certificate: connect over ``wss://`` and verify the server against it.
        ssl: a ready :class:`ssl.SSLContext` for ``wss://`` instead of ``tls_ca`` (None and no
            ``tls_ca``: ``ws://``, or the system's CAs for a ``wss://`` URI).

    Attributes:
        metadata: the dict the server sent after the handshake (checkpoint, action horizon, cameras...).
        recv_timeout_s: longest wait for one reply, seconds; may be changed between queries.

    Raises:
        ServerError: the handshake was refused (e.g. HTTP 401 for a wrong API key).
        TimeoutError / OSError: no server reachable within ``connect_timeout_s``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = 8000, *, api_key: str | None = None,
                 connect_timeout_s: float = 30.0, recv_timeout_s: float = 60.0,
                 close_timeout_s: float = 10.0, tls_ca: str | None = None,
                 ssl: ssl_module.SSLContext | None = None):
        if tls_ca is not None and ssl is None:
            ssl = ssl_module.create_default_context(cafile=tls_ca)
        scheme = "wss" if ssl is not None else "ws"
        self.uri = host if host.startswith(("ws://", "wss://")) else f"{scheme}://{host}:{port}"
        tls = {"ssl": ssl} if ssl is not None else {}
        self.recv_timeout_s = recv_timeout_s
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                self._ws: ClientConnection = connect(self.uri, compression=None, max_size=None,
                                                     additional_headers=headers, open_timeout=10,
                                                     close_timeout=close_timeout_s, **tls)
                break
            except websockets.InvalidStatus as exc:
                body = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
                raise ServerError(f"{self.uri} refused the connection: HTTP {exc.response.status_code} {body}") from exc
            except (ConnectionRefusedError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.metadata: dict[str, Any] = self._receive()

    @staticmethod
    def _closed(exc: websockets.ConnectionClosed) -> ServerError:
        """``connection closed by the server (code 1011: reason)`` or ``connection lost (no close frame)``."""
        if exc.rcvd is None:
            return ServerError("connection to the policy server lost (no close frame)")
        reason = exc.rcvd.reason or "no reason"
        return ServerError(f"connection closed by the server (code {exc.rcvd.code}: {reason})")

    def _receive(self) -> Any:
        try:
            msg = self._ws.recv(timeout=self.recv_timeout_s)
        except websockets.ConnectionClosed as exc:
            raise self._closed(exc) from exc
        except TimeoutError as exc:
            raise QueryTimeout(f"policy server did not answer within {self.recv_timeout_s:g} s") from exc
        if isinstance(msg, str):
            raise ServerError(msg)
        return wire.unpack(msg)

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """Send one observation, return the server's reply (``actions`` (H, A) float32, ``server_timing``).

        Raises:
            ServerError: the server rejected the observation (error frame) or the connection closed.
            QueryTimeout: no reply within ``recv_timeout_s`` (a :class:`TimeoutError`).
        """
        try:
            self._ws.send(wire.pack(dict(obs)))
        except websockets.ConnectionClosed as exc:
            raise self._closed(exc) from exc
        reply = self._receive()
        if not isinstance(reply, dict) or "actions" not in reply:
            raise ServerError(f"server reply has no 'actions': {str(reply)[:200]}")
        return reply

    def close(self, timeout_s: float | None = None) -> None:
        """Close the connection (normal closure, 1000), waiting at most ``timeout_s`` seconds (default:
        ``close_timeout_s``) for the server's side of the handshake — a hung server cannot hold the
        robot's exit. A query still waiting in another thread then raises :class:`ServerError`."""
        if timeout_s is not None:
            self._ws.close_timeout = timeout_s
        self._ws.close()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
