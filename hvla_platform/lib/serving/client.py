"""Robot-side client of an openpi-compatible policy server (the protocol of
:mod:`hvla_platform.lib.serving.server`; interchangeable with openpi-client's
``WebsocketClientPolicy``, which the CI runs against our server too).
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import websockets
from websockets.sync.client import ClientConnection, connect

from hvla_platform.lib.serving import wire


class ServerError(RuntimeError):
    """The server answered with an error frame (its text is the message) or closed the connection."""


class PolicyClient:
    """A connection to a policy server.

    Args:
        host: server address, or a full ``ws://`` / ``wss://`` URI.
        port: TCP port (ignored when ``host`` is a URI that has one).
        api_key: sent as ``Authorization: Api-Key <api_key>``.
        connect_timeout_s: keep retrying a refused connection (server still starting) this long.
        recv_timeout_s: longest wait for one reply, seconds.

    Attributes:
        metadata: the dict the server sent after the handshake (checkpoint, action horizon, cameras...).

    Raises:
        ServerError: the handshake was refused (e.g. HTTP 401 for a wrong API key).
        TimeoutError / OSError: no server reachable within ``connect_timeout_s``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int | None = 8000, *, api_key: str | None = None,
                 connect_timeout_s: float = 30.0, recv_timeout_s: float = 60.0):
        self.uri = host if host.startswith(("ws://", "wss://")) else f"ws://{host}:{port}"
        self._recv_timeout_s = recv_timeout_s
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                self._ws: ClientConnection = connect(self.uri, compression=None, max_size=None,
                                                     additional_headers=headers, open_timeout=10)
                break
            except websockets.InvalidStatus as exc:
                body = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
                raise ServerError(f"{self.uri} refused the connection: HTTP {exc.response.status_code} {body}") from exc
            except (ConnectionRefusedError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.metadata: dict[str, Any] = self._receive()

    def _receive(self) -> Any:
        try:
            msg = self._ws.recv(timeout=self._recv_timeout_s)
        except websockets.ConnectionClosed as exc:
            raise ServerError(f"{self.uri} closed the connection (code {exc.rcvd.code if exc.rcvd else None}: "
                              f"{exc.rcvd.reason if exc.rcvd else ''})") from exc
        if isinstance(msg, str):
            raise ServerError(msg)
        return wire.unpack(msg)

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """Send one observation, return the server's reply (``actions`` (H, A) float32, ``server_timing``).

        Raises:
            ServerError: the server rejected the observation (error frame) or the connection closed.
            TimeoutError: no reply within ``recv_timeout_s``.
        """
        try:
            self._ws.send(wire.pack(dict(obs)))
        except websockets.ConnectionClosed as exc:
            raise ServerError(f"{self.uri} closed the connection: {exc}") from exc
        reply = self._receive()
        if not isinstance(reply, dict) or "actions" not in reply:
            raise ServerError(f"server reply has no 'actions': {str(reply)[:200]}")
        return reply

    def close(self) -> None:
        """Close the connection (normal closure, 1000)."""
        self._ws.close()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
