"""The lake web service: lake objects over HTTP, read-only, for the links in Dagster's metadata.

A browser refuses ``file://`` links from a web page, so QA reports, evaluation reports and their
videos are served here (URL scheme: :mod:`hvla_platform.lib.web.links`). Routes:

- ``GET /``: a small index page (recent QA and evaluation reports, a link to browse the lake);
- ``GET /lake/{key}``: one lake object with its content type (``text/html``, ``application/json``,
  ``video/mp4``…) and ``Accept-Ranges: bytes``: a ``Range: bytes=a-b`` request is answered ``206``
  with those bytes (RFC 9110 §14), so a ``<video>`` element can seek. Local lake: Starlette's
  :class:`~starlette.responses.FileResponse`; S3 lake: a ranged ``GetObject`` streamed in 64 KiB
  chunks (nothing is held in memory whole). A folder key (``/lake/``, ``/lake/episodes-hdf5/``)
  lists its children as a small HTML index;
- ``GET /healthz``: ``OK`` without authentication (load balancers, Kubernetes probes, ``hvla ui``);
- ``GET /favicon.ico``: ``204`` (no icon; browsers ask on every page);
- ``extra_routes``: other pages served next to these (the episode review pages).

Read-only: the lake routes answer only ``GET``/``HEAD`` (anything else: ``405``, one line). Never
served (``403``): keys with ``.``/``..`` segments or a leading ``/`` (refused by
:func:`hvla_platform.lib.core.lake.validate_key`), the lake's private directories (any segment
starting with ``.``, e.g. the local lake's ``.hvla-tmp`` staging, scratch and lock directory) and
``restricted/`` (raw data set aside after a consent withdrawal, :mod:`hvla_platform.lib.ops.revocation`).
On the local lake a symlink leading outside the lake root is not followed (``403``).

API key (the policy server's rule, :func:`hvla_platform.lib.core.net.is_loopback`): bound to a
non-loopback address the service refuses to start without a key; with a key every request but
``/healthz`` must carry it, as ``Authorization: Bearer <key>`` (or the policy server's
``Authorization: Api-Key <key>``), or the cookie a browser gets by opening any page once with
``?key=<key>`` (answered with a ``303`` to the same URL without the key, setting an ``HttpOnly``,
``SameSite=Lax`` cookie that holds a digest of the key, not the key). Links from the Dagster UI
are top-level navigations, so the cookie goes with them. Anything else: ``401``, one line.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import http.client
import mimetypes
import re
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response,
                                 StreamingResponse)
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hvla_platform.lib.core.keys import EPISODES, EVAL_REPORTS, RESTRICTED
from hvla_platform.lib.core.lake import Lake, LocalLake, S3Lake, validate_key
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.core.net import API_KEY_SCHEME, is_loopback


#: Cookie set by ``?key=``: an HMAC-SHA256 digest of the key (:func:`_cookie_value`), never the key.
KEY_COOKIE = "hvla_web_key"
#: Children listed on one folder page (the rest are counted).
MAX_LISTED = 1000
#: Reports listed on the index page, of each kind.
MAX_RECENT = 10
_CHUNK = 64 * 1024
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
#: Content types by file suffix, before :mod:`mimetypes` (which lacks or differs on these).
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8", ".json": "application/json",
    ".jsonl": "text/plain; charset=utf-8", ".mp4": "video/mp4", ".yaml": "text/plain; charset=utf-8",
    ".yml": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8", ".log": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8", ".csv": "text/csv; charset=utf-8", ".png": "image/png",
    ".jpg": "image/jpeg", ".webp": "image/webp", ".svg": "image/svg+xml", ".h5": "application/x-hdf5",
    ".hdf5": "application/x-hdf5", ".parquet": "application/vnd.apache.parquet",
    ".mcap": "application/octet-stream", ".eval": "application/zip",
}
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff"}


class LakeKeyRefused(ValueError):
    """A key the service never serves (traversal, absolute, a private directory, ``restricted/``)."""


def content_type(key: str) -> str:
    """The ``Content-Type`` a lake object is served with: :data:`CONTENT_TYPES` by suffix, else
    :func:`mimetypes.guess_type`, else ``application/octet-stream``."""
    suffix = Path(key).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


def check_served_key(key: str) -> str:
    """``key`` without a trailing ``/`` if the service may serve it (``""`` is the lake's root).

    Raises:
        LakeKeyRefused: a leading ``/``, ``.``/``..`` segments, a segment starting with ``.``
            (the lake's private staging/scratch/lock directories), or a key under ``restricted/``.
    """
    if key.startswith("/"):
        raise LakeKeyRefused(f"refused: {key!r} is absolute; lake keys are relative (e.g. {EPISODES}/…)")
    stripped = key.rstrip("/")
    if not stripped:
        return ""
    try:
        validate_key(stripped)
    except ValueError as exc:
        raise LakeKeyRefused(f"refused: {exc}") from None
    parts = stripped.split("/")
    if any(p.startswith(".") for p in parts):
        raise LakeKeyRefused(f"refused: {key!r} is in a private directory of the lake (a segment starting with '.')")
    if parts[0] == RESTRICTED:
        raise LakeKeyRefused(f"refused: {RESTRICTED}/ holds data set aside after a consent withdrawal; "
                             "it is not served")
    return stripped


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range ``(start, end)`` (``end`` inclusive) a ``Range`` header asks of an
    object of ``size`` bytes (RFC 9110 §14.1.2: ``bytes=a-b``, ``bytes=a-``, ``bytes=-n``), or None to
    answer the whole object (no header, another unit, or several ranges, which a server may ignore).

    Raises:
        ValueError: the range cannot be satisfied (answered ``416``).
    """
    if not header:
        return None
    m = _RANGE_RE.fullmatch(header.strip().replace(" ", ""))
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last n bytes
        n = int(m.group(2))
        if n == 0 or size == 0:
            raise ValueError(f"range {header!r} not satisfiable for {size} bytes")
        return max(0, size - n), size - 1
    start = int(m.group(1))
    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if start >= size or end < start:
        raise ValueError(f"range {header!r} not satisfiable for {size} bytes")
    return start, end


def _cookie_value(api_key: str) -> str:
    return hmac.new(api_key.encode(), b"hvla-web-cookie", hashlib.sha256).hexdigest()


class _ApiKeyGate:
    """ASGI middleware: every HTTP request but ``/healthz`` carries the API key (module docstring)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app, self.api_key, self.cookie = app, api_key, _cookie_value(api_key)

    def _header_ok(self, header: str) -> bool:
        scheme, _, key = header.partition(" ")
        return scheme in ("Bearer", API_KEY_SCHEME) and hmac.compare_digest(key.strip().encode(), self.api_key.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        query_key = request.query_params.get("key")
        if query_key is not None and hmac.compare_digest(query_key.encode(), self.api_key.encode()):
            if request.method in ("GET", "HEAD"):
                rest = request.url.remove_query_params("key")
                target = rest.path + (f"?{rest.query}" if rest.query else "")
                response: Response = RedirectResponse(target, status_code=303)
                response.set_cookie(KEY_COOKIE, self.cookie, httponly=True, samesite="lax", path="/",
                                    secure=request.url.scheme == "https")
                await response(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        header = request.headers.get("authorization", "")
        cookie = request.cookies.get(KEY_COOKIE, "")
        cookie_ok = bool(cookie) and hmac.compare_digest(cookie.encode(), self.cookie.encode())
        if (header and self._header_ok(header)) or cookie_ok:
            await self.app(scope, receive, send)
            return
        why = "wrong API key" if (header or cookie or query_key is not None) else "missing API key"
        await PlainTextResponse(f"{why}: send 'Authorization: Bearer <key>', or open any page once with ?key=<key>\n",
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)


# ---- the lake, per backend -----------------------------------------------------------------------
def _local_file(lake: LocalLake, key: str) -> Path | None:
    """The file behind ``key`` if it is one, inside the lake root (symlinks resolved) and outside
    the private directory. Raises :class:`LakeKeyRefused` for a symlink leading elsewhere."""
    p = lake.path(key)
    if not p.exists():
        return None
    real = p.resolve()
    if not real.is_relative_to(lake.root) or real.is_relative_to(lake.scratch_root()):
        raise LakeKeyRefused(f"refused: {key!r} leads outside the lake")
    return real if real.is_file() else None


def _children(lake: Lake, prefix: str) -> list[tuple[str, bool, int]]:
    """``(name, is_folder, size in bytes)`` of the entries directly under ``prefix`` (``""``: the
    root), sorted by name, private ones left out; empty when ``prefix`` is no folder."""
    out: list[tuple[str, bool, int]] = []
    if isinstance(lake, LocalLake):
        base = lake.path(prefix) if prefix else lake.root
        if not base.is_dir() or not base.resolve().is_relative_to(lake.root):
            return []
        for p in base.iterdir():
            if p.is_dir() or p.is_file():
                out.append((p.name, p.is_dir(), 0 if p.is_dir() else p.stat().st_size))
    elif isinstance(lake, S3Lake):
        full = lake._k(prefix) + "/" if prefix else (lake.prefix + "/" if lake.prefix else "")
        pages = lake.client.get_paginator("list_objects_v2").paginate(Bucket=lake.bucket, Prefix=full, Delimiter="/")
        for page in pages:
            out += [(cp["Prefix"][len(full):].rstrip("/"), True, 0) for cp in page.get("CommonPrefixes", [])]
            out += [(o["Key"][len(full):], False, int(o["Size"])) for o in page.get("Contents", [])]
    else:  # build_app refuses other backends
        raise TypeError(f"{type(lake).__name__} is not served")
    top = not prefix
    return sorted((n, d, s) for n, d, s in out
                  if n and not n.startswith(".") and not (top and n == RESTRICTED))


def _is_object(lake: Lake, key: str) -> bool:
    if isinstance(lake, LocalLake):
        return _local_file(lake, key) is not None
    return lake.exists(key)


def _s3_object(lake: S3Lake, key: str, request: Request) -> Response | None:
    """The object at ``key`` streamed from S3 (a ranged ``GetObject`` when asked), None if absent."""
    try:
        head = lake.client.head_object(Bucket=lake.bucket, Key=lake._k(key))
    except lake.client.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    size = int(head["ContentLength"])
    headers = {"Accept-Ranges": "bytes", "ETag": head.get("ETag", ""), **_SECURITY_HEADERS}
    if head.get("LastModified") is not None:
        headers["Last-Modified"] = head["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT")
    try:
        rng = parse_range(request.headers.get("range"), size)
    except ValueError:
        return PlainTextResponse(f"range not satisfiable: the object has {size} bytes\n", status_code=416,
                                 headers={"Content-Range": f"bytes */{size}"})
    start, end = rng if rng is not None else (0, size - 1)
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    status = 200
    if rng is not None:
        status, headers["Content-Range"] = 206, f"bytes {start}-{end}/{size}"
    if request.method == "HEAD" or size == 0:
        return Response(b"", status_code=status, headers=headers, media_type=content_type(key))
    kwargs: dict[str, Any] = {"Bucket": lake.bucket, "Key": lake._k(key)}
    if rng is not None:
        kwargs["Range"] = f"bytes={start}-{end}"
    body = lake.client.get_object(**kwargs)["Body"]

    def chunks() -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(_CHUNK)
        finally:
            body.close()

    return StreamingResponse(chunks(), status_code=status, headers=headers, media_type=content_type(key))


# ---- pages -----------------------------------------------------------------------------------------
def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}td{padding:0 1em 0 0}"
            "a{text-decoration:none}a:hover{text-decoration:underline}</style></head>"
            f"<body>{body}</body></html>")


def _lake_href(key: str) -> str:
    return "/lake/" + quote(key)


def _folder_page(prefix: str, children: list[tuple[str, bool, int]]) -> str:
    crumbs = ["<a href='/lake/'>lake</a>"]
    for i, part in enumerate(prefix.split("/") if prefix else []):
        sub = "/".join(prefix.split("/")[: i + 1])
        crumbs.append(f"<a href='{_lake_href(sub)}/'>{html.escape(part)}</a>")
    rows = []
    for name, is_dir, size in children[:MAX_LISTED]:
        key = f"{prefix}/{name}" if prefix else name
        label = html.escape(name) + ("/" if is_dir else "")
        rows.append(f"<tr><td><a href='{_lake_href(key)}{'/' if is_dir else ''}'>{label}</a></td>"
                    f"<td>{'' if is_dir else f'{size:,} B'}</td></tr>")
    more = f"<p>… and {len(children) - MAX_LISTED} more</p>" if len(children) > MAX_LISTED else ""
    return _page(f"lake/{prefix}", f"<h1>{' / '.join(crumbs)}</h1><table>{''.join(rows)}</table>{more}"
                 + ("" if children else "<p>(empty)</p>"))


def recent_reports(lake: Lake, limit: int = MAX_RECENT) -> dict[str, list[str]]:
    """Keys of the latest reports, newest first: ``{"qa": [episodes-hdf5/<day>/<robot>/qa_report.html…],
    "eval": [eval-reports/<exp>/<step>/report.html…]}`` (at most ``limit`` each; QA by capture day,
    evaluations by experiment name then step, both descending)."""
    qa: list[str] = []
    for day, is_dir, _ in reversed(_children(lake, EPISODES)):
        if len(qa) >= limit:
            break
        for robot, r_dir, _ in (_children(lake, f"{EPISODES}/{day}") if is_dir else []):
            key = f"{EPISODES}/{day}/{robot}/qa_report.html"
            if r_dir and len(qa) < limit and _is_object(lake, key):
                qa.append(key)
    ev: list[str] = []
    for exp, is_dir, _ in reversed(_children(lake, EVAL_REPORTS)):
        steps = [s for s, d, _ in _children(lake, f"{EVAL_REPORTS}/{exp}") if d] if is_dir else []
        for step in sorted(steps, key=lambda s: (len(s), s), reverse=True):
            key = f"{EVAL_REPORTS}/{exp}/{step}/report.html"
            if len(ev) < limit and _is_object(lake, key):
                ev.append(key)
        if len(ev) >= limit:
            break
    return {"qa": qa, "eval": ev}


def _index_page(lake: Lake, extra: str) -> str:
    rep = recent_reports(lake)

    def items(keys: list[str], what: str) -> str:
        if not keys:
            return f"<p>(no {what} yet)</p>"
        return "<ul>" + "".join(f"<li><a href='{_lake_href(k)}'>{html.escape(k.rsplit('/', 1)[0])}</a></li>"
                                for k in keys) + "</ul>"

    return _page("hvla lake", f"<h1>hvla lake</h1><p>{html.escape(lake.root_uri())} — "
                 f"<a href='/lake/'>browse the lake</a>{extra}</p>"
                 f"<h2>QA reports</h2>{items(rep['qa'], 'QA reports')}"
                 f"<h2>Evaluation reports</h2>{items(rep['eval'], 'evaluation reports')}")


def _not_found(lake: Lake, key: str) -> PlainTextResponse:
    """``404``, one line: no such object or folder, with the closest sibling (deepest existing folder)."""
    parts = key.split("/")
    known: list[str] = []
    for depth in range(len(parts) - 1, -1, -1):
        parent = "/".join(parts[:depth])
        children = _children(lake, parent)
        if children or not parent:
            known = [f"{parent}/{n}" if parent else n for n, _, _ in children]
            break
    return PlainTextResponse(f"no lake object or folder {key!r}{did_you_mean(key, known)}\n", status_code=404)


def build_app(lake: Lake, *, api_key: str | None = None, host: str = "127.0.0.1",
              extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The lake web service as an ASGI app (module docstring: routes, refusals, the API key).

    Args:
        lake: the lake served (:class:`~hvla_platform.lib.core.lake.LocalLake` or
            :class:`~hvla_platform.lib.core.lake.S3Lake`).
        api_key: the key every request but ``/healthz`` must carry; None: no key asked.
        host: the address the app will be bound to (only decides whether a key is required).
        extra_routes: Starlette routes served next to the lake's (e.g. the review pages), after
            them; they get the API-key check too and choose their own methods.

    Raises:
        ValueError: ``host`` is not a loopback address and there is no ``api_key`` (one line).
        TypeError: another lake backend.
    """
    if not is_loopback(host) and not api_key:
        raise ValueError(f"refusing to serve the lake on {host!r} without an API key: anyone on the network could "
                         "read it. Set HVLA_API_KEY (or --api-key-file), or bind to 127.0.0.1.")
    if not isinstance(lake, (LocalLake, S3Lake)):
        raise TypeError(f"the lake web service serves a LocalLake or an S3Lake, not {type(lake).__name__}")
    review = any(getattr(r, "path", "").startswith("/review") for r in extra_routes)
    extra_link = " — <a href='/review/'>review queue</a>" if review else ""

    async def index(request: Request) -> Response:
        return HTMLResponse(_index_page(lake, extra_link))

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("OK\n")

    def lake_key(request: Request) -> Response:  # sync: runs in Starlette's thread pool (blocking I/O)
        raw = request.path_params.get("key", "")
        try:
            key = check_served_key(raw)
            if key and isinstance(lake, LocalLake) and (path := _local_file(lake, key)) is not None:
                return FileResponse(path, media_type=content_type(key), headers=_SECURITY_HEADERS)
            if key and isinstance(lake, S3Lake) and (resp := _s3_object(lake, key, request)) is not None:
                return resp
        except LakeKeyRefused as exc:
            return PlainTextResponse(f"{exc}\n", status_code=403)
        children = _children(lake, key)
        if children or not key:
            if raw and not raw.endswith("/"):  # relative links in the listing resolve below the folder
                return RedirectResponse(_lake_href(key) + "/" + (f"?{request.url.query}" if request.url.query else ""),
                                        status_code=307)
            return HTMLResponse(_folder_page(key, children), headers=_SECURITY_HEADERS)
        return _not_found(lake, key)

    async def read_only(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        default = exc.detail == http.client.responses.get(exc.status_code)  # raised by the router, not a page
        if exc.status_code == 405 and default:
            allow = ", ".join(sorted(m.strip() for m in (exc.headers or {}).get("Allow", "GET, HEAD").split(",")))
            return PlainTextResponse(f"{request.method} not allowed on {request.url.path}: the lake web service is "
                                     f"read-only here ({allow})\n", status_code=405, headers={"Allow": allow})
        if exc.status_code == 404 and default:
            return PlainTextResponse(f"no page {request.url.path!r}: lake objects are under /lake/\n", status_code=404)
        return PlainTextResponse(f"{exc.detail}\n", status_code=exc.status_code, headers=exc.headers)

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        # browsers ask for it on every page; "no content" instead of a 404 in their console
        Route("/favicon.ico", lambda request: Response(status_code=204), methods=["GET", "HEAD"]),
        Route("/lake", lambda request: RedirectResponse("/lake/", status_code=307), methods=["GET", "HEAD"]),
        Route("/lake/{key:path}", lake_key, methods=["GET", "HEAD"]),
        *extra_routes,
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: read_only})
    if api_key:
        app.add_middleware(_ApiKeyGate, api_key=api_key)
    return app
