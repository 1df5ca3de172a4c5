"""``hvla web``: the read-only lake web service (:mod:`hvla_platform.lib.web.app`) under uvicorn.

The links the platform puts in Dagster metadata (:mod:`hvla_platform.lib.web.links`) point here;
``hvla ui`` starts it next to ``dagster dev``. Bound to a non-loopback ``--host`` it refuses to
start without an API key (``--api-key-file`` or ``$HVLA_API_KEY``, as ``hvla serve``).

Pages served next to the lake's: the episode review pages
(:func:`hvla_platform.lib.web.review.service_routes`), passed to
:func:`~hvla_platform.lib.web.app.build_app` as ``extra_routes``.
"""

from __future__ import annotations

import argparse
import socket
import sys

from hvla_platform.cli.common import EXIT_REFUSED, echo, open_env_lake
from hvla_platform.cli.serving import API_KEY_ENV, read_api_key
from hvla_platform.lib.core.lake_config import lake_config_from_uri, open_lake
from hvla_platform.lib.web.links import DEFAULT_WEB_PORT


def _refused(reason: str) -> int:
    """``hvla web: refused: <reason>`` on stderr (one line); :data:`EXIT_REFUSED`."""
    print(f"hvla web: refused: {' '.join(reason.split())}", file=sys.stderr, flush=True)
    return EXIT_REFUSED


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the lake over HTTP until interrupted (Ctrl-C / SIGTERM: uvicorn's graceful shutdown)."""
    # deferred: uvicorn, starlette and the review pages (numpy, h5py) are needed by
    # this verb only; every other `hvla` command starts without them
    import uvicorn  # noqa: PLC0415

    from hvla_platform.lib.web.app import build_app  # noqa: PLC0415
    from hvla_platform.lib.web.review import service_routes  # noqa: PLC0415

    api_key = read_api_key(args.api_key_file)
    try:
        lake = open_lake(lake_config_from_uri(args.lake)) if args.lake else open_env_lake()
    except ValueError as exc:
        return _refused(str(exc))
    try:
        app = build_app(lake, api_key=api_key, host=args.host, extra_routes=service_routes(lake))
    except ValueError as exc:
        return _refused(str(exc))
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        return _refused(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    sock.listen(128)
    port = sock.getsockname()[1]
    echo(f"serving the lake {lake.root_uri()} read-only on http://{args.host}:{port} "
         f"(API key {'required' if api_key else 'off'}; health: /healthz)")
    server = uvicorn.Server(uvicorn.Config(app, log_level=args.log_level, lifespan="off",
                                           access_log=args.log_level in ("info", "debug")))
    try:
        server.run(sockets=[sock])  # on SIGINT/SIGTERM: graceful shutdown, then uvicorn re-raises the signal
    finally:
        sock.close()
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``web`` to the ``hvla`` command."""
    w = sub.add_parser("web", help="serve the lake read-only over HTTP (reports, videos) for the UI's links")
    w.add_argument("--host", default="127.0.0.1",
                   help="listen address (default loopback only; any other needs an API key)")
    w.add_argument("--port", type=int, default=DEFAULT_WEB_PORT,
                   help=f"TCP port (default {DEFAULT_WEB_PORT}; 0: a free one)")
    w.add_argument("--lake", default=None, metavar="PATH_OR_URI",
                   help="the lake to serve (a directory or s3://bucket/prefix; default: the configured HVLA lake)")
    w.add_argument("--api-key-file", default=None,
                   help=f"file holding the API key requests must carry (or set ${API_KEY_ENV})")
    w.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (info: one access line per request)")
    w.set_defaults(func=cmd_web)
