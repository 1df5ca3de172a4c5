"""The episode review page and the release review queue (issue 13 §4): data assembly and routes.

Routes (URL scheme of :mod:`hvla_platform.lib.web.links`), returned by :func:`review_routes` for the
lake web service to mount:

===========================================================================  ==========================
``GET  /review/``                                                            releases and episodes to review
``GET  /review/partitions/{day}/{robot}/episodes/{episode_id}?t=<s>``        the review page (HTML)
``GET  /review/partitions/{day}/{robot}/episodes/{episode_id}/video/{cam}.mp4``  one camera as H.264 MP4
``POST /review/partitions/{day}/{robot}/episodes/{episode_id}/decision``     record approve / reject
``GET  /review/releases/{release}``                                          a release's review queue
``GET  /review/static/plotly.min.js``                                        Plotly's JS, from the package
===========================================================================  ==========================

**What a page shows** (:func:`episode_review`): the episode of the partition's current
``episodes-hdf5/<day>/<robot>/`` artifact (:func:`~hvla_platform.lib.core.keys.episodes_prefix`; a
rebuilt partition replaces it, so this is always its latest version): joint state (T, D) and
commanded action (T, A) float32 with their joint names and the (T,) float64 timestamps in seconds
from the first frame (:mod:`hvla_platform.lib.formats.episode_h5`); its QA checks with
their severity and finding spans (seconds from the first frame;
:func:`~hvla_platform.lib.processing.qa.findings.episode_findings`) and its processing checks; its rights (the
raw partition index's per-episode record, :class:`~hvla_platform.lib.core.rights.Rights`) and
provenance (HDF5 key and sha256, raw MCAP key and sha256, robot profile, the artifact's code
version and creation time); and its decision history
(:func:`~hvla_platform.lib.processing.qa.decisions.decision_history`).

**Video.** Each colour camera is encoded once into an MP4 (:func:`episode_video`) by
:func:`~hvla_platform.lib.dataset.episode_video.encode_frames` — libx264, ``yuv420p``, one frame per
episode frame (``pts = k`` in a ``1/fps`` time base, so video time = episode time) — and cached
under ``<cache_dir>/video/<hdf5 sha256>/<camera>.mp4`` (``cache_dir``: ``$HVLA_WEB_CACHE``, default
``$HVLA_HOME/cache/web``; not the lake's scratch root, which is swept). H.264 because Debian's
Chromium (and every mainstream browser) plays H.264 in MP4; the release's LeRobot default (AV1)
is not playable everywhere. A new partition version has new HDF5 bytes, hence a new cache key; the
URL carries ``?v=<sha256 prefix>`` so a browser never shows a stale video. Served with HTTP Range
(Starlette's ``FileResponse``), which ``<video>`` seeking needs. Depth cameras are listed, not
played.

**Reviewer identity** (who a decision is recorded as; never a form field) is what the
``identity(request)`` callable returns; :func:`default_identity` is the policy the service uses:

- when ``HVLA_WEB_USER_HEADER`` names a header (e.g. ``X-Forwarded-User``, set by an authenticating
  reverse proxy that strips any copy a client sends), the identity is that header's value, and a
  request without it has none;
- otherwise only a request from a loopback address has an identity: the OS user running the
  service (``getpass.getuser()``), i.e. the person who started ``hvla ui`` on their machine — the
  same default ``hvla qa approve|reject`` records;
- anything else has no identity, and its decision POST is refused ``403`` with one line.

A decision POST must be ``Content-Type: application/json`` (``{"decision": "approve"|"reject",
"reason": "..."}``) and, when the browser sends ``Origin``, come from the service's own origin:
a cross-site form cannot send JSON without a CORS preflight this service never answers, so another
web page cannot record decisions through a reviewer's browser. The decision is recorded by
:func:`~hvla_platform.lib.processing.qa.decisions.record_decision`, exactly as the CLI does.

**Mounting.** ``build_app(lake, extra_routes=service_routes(lake))``
(:func:`hvla_platform.lib.web.app.build_app`; ``hvla web`` takes :func:`service_routes` as a route
provider), or ``Starlette(routes=review_routes(lake, identity=...))`` on its own.

**Refusals** are one line of plain text: unknown partition, episode or release ``404`` with the
closest known id (:func:`~hvla_platform.lib.core.suggest.did_you_mean`); an unsafe id ``404``; a
malformed decision ``400``; no identity or a foreign origin ``403``.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse,
                                 Response)
from starlette.routing import Route

from hvla_platform.lib.core import settings
from hvla_platform.lib.core.keys import RELEASE_SPECS, RELEASE_VERSIONS, UnsafeIdError, check_day, check_id, episodes_prefix
from hvla_platform.lib.core.lake import Lake, LocalLake
from hvla_platform.lib.core.net import is_loopback
from hvla_platform.lib.core.locking import file_lock
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.core.suggest import UnknownIdError, did_you_mean
from hvla_platform.lib.core.tables import check_qa_results
from hvla_platform.lib.core.withdrawals import revoked_episodes
from hvla_platform.lib.dataset.releases import available_episode_partitions
from hvla_platform.lib.formats.episode_h5 import EpisodeReader
from hvla_platform.lib.ingest.raw import read_partition_index
from hvla_platform.lib.processing.qa.decisions import DecisionError, decision_history, record_decision
from hvla_platform.lib.processing.qa.findings import episode_findings
from hvla_platform.lib.processing.qa.states import episode_states
from hvla_platform.lib.dataset.versions import (known_versions, latest_version, list_versions, parse_version_id,
                                                version_manifest)
from hvla_platform.lib.web import review_page
from hvla_platform.lib.web.review_page import episode_path

#: Environment variable naming the request header that carries the reviewer (behind a proxy).
WEB_USER_HEADER_ENV = "HVLA_WEB_USER_HEADER"
#: Environment variable of the review cache directory (encoded videos; default ``$HVLA_HOME/cache/web``).
WEB_CACHE_ENV = "HVLA_WEB_CACHE"
#: Encoder of the review videos (PyAV name) and its options (CRF 23; a keyframe every second: GOP = fps).
VIDEO_CODEC = "libx264"
_VIDEO_OPTIONS = {"crf": "23", "preset": "veryfast"}

_MP4 = re.compile(r"(?P<camera>[A-Za-z0-9][A-Za-z0-9._-]{0,127})\.mp4")


def default_cache_dir() -> Path:
    """Where the review page caches encoded videos: ``$HVLA_WEB_CACHE`` or ``$HVLA_HOME/cache/web``."""
    explicit = os.environ.get(WEB_CACHE_ENV)
    return Path(explicit).resolve() if explicit else settings.hvla_home() / "cache" / "web"


# ---- data assembly ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Span:
    """Where a finding is on the episode's timeline: ``[start_s, end_s]`` seconds from the first
    frame, and its ``subject``: the camera, joint or topic it is on
    (:mod:`hvla_platform.lib.processing.qa.findings`)."""

    start_s: float
    end_s: float
    subject: str


@dataclass(frozen=True)
class Finding:
    """One check of an episode: ``severity`` ``gate`` / ``score`` / ``report`` for a QA check
    (docs/qa.md "Gate policy") or ``processing`` for a processing check (``conversions[i].checks``);
    ``spans`` empty when the check marks no time."""

    check: str
    severity: str
    passed: bool
    detail: str
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True)
class CameraTrack:
    """One camera of the episode: ``kind`` ``rgb`` (played as video) or ``depth`` (listed only);
    ``width`` × ``height`` pixels."""

    name: str
    kind: str
    width: int
    height: int


@dataclass
class EpisodeReview:
    """Everything the review page shows for one episode (module docstring).

    Attributes:
        day, robot, episode_id: the episode and its partition.
        task: the instruction; fps: frame rate, Hz; duration_s: ``T / fps``, seconds.
        timestamps: (T,) float64 seconds from the first frame.
        state: (T, D) float32 joint positions, radians; ``state_names`` D names.
        action: (T, A) float32 commanded joint targets; ``action_names`` A names.
        cameras: the episode's cameras; ``video_version``: first 12 hex digits of the HDF5's sha256.
        findings: every check, failed ones first.
        quality_score: the conversion's score in [0, 1] (``None`` when it has none).
        rights: :meth:`Rights.to_dict` of the episode's own rights; ``withdrawn``: the withdrawal
            reason or ``""``.
        provenance: keys, hashes, profile, code version (label → value).
        decisions: every decision on the episode, oldest first.
    """

    day: str
    robot: str
    episode_id: str
    task: str
    fps: float
    duration_s: float
    timestamps: np.ndarray
    state: np.ndarray
    state_names: list[str]
    action: np.ndarray
    action_names: list[str]
    cameras: list[CameraTrack]
    video_version: str
    findings: list[Finding]
    quality_score: float | None
    rights: dict[str, Any]
    withdrawn: str
    provenance: dict[str, str]
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> list[Finding]:
        """The checks the episode failed."""
        return [f for f in self.findings if not f.passed]


def _conversion(lake: Lake, day: str, robot: str, episode_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the partition's manifest, the episode's ``conversions`` row) of a converted episode.

    Raises:
        UnknownIdError: no such partition, or no such converted episode in it (closest id named).
    """
    check_day(day), check_id(robot, "robot id"), check_id(episode_id, "episode id")
    prefix = episodes_prefix(day, robot)
    manifest = lake.read_manifest(prefix)
    if manifest is None:
        known = [f"{d}/{r}" for d, r in available_episode_partitions(lake)]
        raise UnknownIdError(f"unknown partition '{day}/{robot}'{did_you_mean(f'{day}/{robot}', known)}: "
                             f"no converted episodes at {lake.uri(prefix)}")
    rows = check_qa_results(manifest.get("conversions", []),
                            where=f"{lake.uri(lake.manifest_key(prefix))} (conversions)")
    by_id = {r["episode_id"]: r for r in rows}
    row = by_id.get(episode_id)
    if row is None:
        revoked = revoked_episodes(lake)
        why = f" ({revoked[episode_id]})" if episode_id in revoked else ""
        raise UnknownIdError(f"unknown episode {episode_id!r} in partition {day}/{robot}{why}"
                             f"{did_you_mean(episode_id, by_id)}")
    if row["status"] != "converted":
        raise UnknownIdError(f"episode {episode_id!r} of partition {day}/{robot} was not converted "
                             f"({row['status']}: {row.get('reason', '')}): there is nothing to review")
    return manifest, row


def _hdf5_sha256(manifest: dict[str, Any], row: dict[str, Any]) -> str:
    files = {f["path"]: f["sha256"] for f in manifest.get("files", [])}
    return files.get(row["file"], row["sha256"])


def episode_file(lake: Lake, day: str, robot: str, episode_id: str, *, cache_dir: Path) -> tuple[Path, str]:
    """(local path, sha256) of a converted episode's HDF5: the file itself on a local lake, else a
    copy downloaded once into ``<cache_dir>/hdf5/<sha256>.h5``.

    Raises:
        UnknownIdError: see :func:`episode_review`.
    """
    manifest, row = _conversion(lake, day, robot, episode_id)
    sha = _hdf5_sha256(manifest, row)
    key = f"{episodes_prefix(day, robot)}/{row['file']}"
    if isinstance(lake, LocalLake):
        return lake.path(key), sha
    dest = cache_dir / "hdf5" / f"{sha}.h5"
    if not dest.exists():
        with file_lock(cache_dir / "locks" / f"{sha}.lock", what=f"downloading {lake.uri(key)}"):
            if not dest.exists():
                tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
                lake.get_file(key, tmp)
                os.replace(tmp, dest)
    return dest, sha


def review_findings(lake: Lake, day: str, robot: str, episode_id: str, row: dict[str, Any]) -> list[Finding]:
    """Every check of a converted episode as :class:`Finding` s, failed first (then by name): its QA
    checks as :func:`~hvla_platform.lib.processing.qa.findings.episode_findings` reads them (with
    their severity and spans) and the processing checks of its ``conversions`` row ``row``
    (severity ``processing``, never timed).

    Raises:
        TableError: the partition's QA results break their schema. ValueError: a malformed span.
    """
    out = [Finding(f.check, f.severity, f.passed, f.detail, tuple(Span(*s) for s in f.spans or ()))
           for f in episode_findings(lake, day, robot, episode_id)]
    out += [Finding(name, "processing", bool(rec["passed"]), str(rec.get("detail", "")))
            for name, rec in (row.get("checks") or {}).items()]
    return sorted(out, key=lambda f: (f.passed, f.check))


def _raw_record(lake: Lake, day: str, robot: str, episode_id: str) -> dict[str, Any]:
    try:
        raw = read_partition_index(lake, day, robot)
    except FileNotFoundError:
        return {}
    return next((e for e in raw["episodes"] if e["episode_id"] == episode_id), {})


def episode_review(lake: Lake, day: str, robot: str, episode_id: str, *,
                   cache_dir: Path | None = None) -> EpisodeReview:
    """Assemble what the review page of one converted episode shows (:class:`EpisodeReview`).

    Raises:
        UnknownIdError: unknown partition or episode, or an episode that was not converted (one line
            with the closest known id).
        UnsafeIdError: an id that cannot name anything in the lake.
        TableError: the partition's QA results break their schema.
        DecisionError: a stored decision breaks its contract.
    """
    cache_dir = cache_dir or default_cache_dir()
    manifest, row = _conversion(lake, day, robot, episode_id)
    path, sha = episode_file(lake, day, robot, episode_id, cache_dir=cache_dir)
    with EpisodeReader(path) as reader:
        ep = reader.low_dim()
        cameras = [CameraTrack(c.name, c.kind, c.width, c.height) for c in reader.cameras.values()]
    raw = _raw_record(lake, day, robot, episode_id)
    rights_src = raw.get("rights") or (json.loads(ep.attrs["rights"]) if ep.attrs.get("rights") else None)
    rights = Rights.from_dict(rights_src).to_dict() if rights_src else {}
    meta = raw.get("metadata") or {}
    provenance = {
        "HDF5": f"{episodes_prefix(day, robot)}/{row['file']}",
        "HDF5 sha256": sha,
        "raw MCAP": str(raw.get("mcap_key") or ep.attrs.get("source_key", "")),
        "raw sha256": str(raw.get("sha256") or ep.attrs.get("source_sha256", "")),
        "robot profile": ep.profile or str(row.get("profile", "")),
        "operator": str(meta.get("operator") or ep.attrs.get("operator") or ""),
        "site": str(meta.get("site") or ep.attrs.get("site") or ""),
        "converted by": f"hvla {manifest.get('code_version', '?')} at {manifest.get('created_at', '?')}",
        "frames": f"{ep.num_frames} at {ep.fps:g} fps",
    }
    return EpisodeReview(
        day=day, robot=robot, episode_id=episode_id, task=ep.task, fps=ep.fps,
        duration_s=ep.num_frames / ep.fps if ep.fps else 0.0, timestamps=ep.timestamps,
        state=ep.state, state_names=list(ep.state_names), action=ep.action, action_names=list(ep.action_names),
        cameras=cameras, video_version=sha[:12], findings=review_findings(lake, day, robot, episode_id, row),
        quality_score=row.get("quality_score"), rights=rights,
        withdrawn=revoked_episodes(lake).get(episode_id, ""), provenance=provenance,
        decisions=decision_history(lake, episode_id),
    )


def episode_video(lake: Lake, day: str, robot: str, episode_id: str, camera: str, *,
                  cache_dir: Path | None = None) -> Path:
    """The MP4 of one colour camera of an episode (H.264, ``yuv420p``, ``fps`` of the episode, one
    video frame per episode frame), encoded on first use into
    ``<cache_dir>/video/<hdf5 sha256>/<camera>.mp4`` (a lock per file: concurrent requests encode
    once; written to a temporary name and renamed, so a half file is never served).

    Raises:
        UnknownIdError: unknown episode (see :func:`episode_review`) or camera (closest named), or a
            depth camera (not played).
    """
    from hvla_platform.lib.dataset.episode_video import encode_frames  # deferred: PyAV

    cache_dir = cache_dir or default_cache_dir()
    path, sha = episode_file(lake, day, robot, episode_id, cache_dir=cache_dir)
    with EpisodeReader(path) as reader:
        cams, fps = reader.cameras, float(reader.low_dim().fps)
    if camera not in cams or cams[camera].kind != "rgb":
        colour = [c for c, info in cams.items() if info.kind == "rgb"]
        what = "a depth camera (not played)" if camera in cams else "unknown"
        raise UnknownIdError(f"camera {camera!r} of episode {episode_id!r} is {what}{did_you_mean(camera, colour)}")
    dest = cache_dir / "video" / sha / f"{camera}.mp4"
    if dest.exists():
        return dest
    with file_lock(cache_dir / "locks" / f"{sha}-{camera}.lock", what=f"encoding {camera} of {episode_id}"):
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{camera}.{os.getpid()}.part.mp4")
            encode_frames(path, camera, tmp, fps=round(fps), vcodec=VIDEO_CODEC,
                          options={**_VIDEO_OPTIONS, "g": str(max(1, round(fps)))}, sample=[])
            os.replace(tmp, dest)
    return dest


@dataclass(frozen=True)
class QueueRow:
    """One episode of a release's review queue.

    ``in_release``: ``selected`` (in the release), ``approved`` (in it by a supervisor's approval)
    or ``excluded``; ``reason``: why (for approved/excluded); ``partition``: ``<day>|<robot>`` when
    the lake still holds the episode, else ``""`` (no review page then); ``state``: ``hvla qa
    list``'s status; ``failed_checks``: the QA checks it failed; ``decision``: the latest decision
    (``{"decision", "by", "reason", "at"}``) or ``None``.
    """

    episode_id: str
    in_release: str
    reason: str
    quality_score: float | None
    partition: str
    state: str
    failed_checks: tuple[str, ...]
    decision: dict[str, Any] | None


@dataclass
class ReleaseQueue:
    """A release version's episodes (:func:`release_queue`): ``release`` the version id shown,
    ``spec_name`` its spec, ``version`` its number, ``built_at`` its creation time."""

    release: str
    spec_name: str
    version: int
    built_at: str
    rows: list[QueueRow]


def release_queue(lake: Lake, release: str) -> ReleaseQueue:
    """Every episode of a release version — selected, approved and excluded, with reasons — with its
    quality score, QA state and latest decision (:func:`~hvla_platform.lib.processing.qa.states.episode_states`).

    ``release`` is a spec name (its **latest published** version) or a version id ``<name>.<n>``
    (that version).

    Raises:
        UnknownIdError: no published version of that name (closest release named).
        UnsafeIdError: ``release`` cannot name anything in the lake.
        TableError / DecisionError: a stored table or decision breaks its contract.
    """
    found = latest_version(lake, check_id(release, "release"))
    if found is None:
        name, n = parse_version_id(release)
        record = next((r for r in list_versions(lake, name) if r.version == n), None) if n else None
        m = version_manifest(lake, record) if record is not None else None
        found = (record, m) if m is not None else None
    if found is None:
        specs = [k[len(RELEASE_SPECS) + 1:-len(".yaml")] for k in lake.list_keys(RELEASE_SPECS) if k.endswith(".yaml")]
        raise UnknownIdError(f"unknown release {release!r}{did_you_mean(release, known_versions(lake) + specs)}: "
                             "no published version of it in this lake")
    record, m = found
    states = {s.episode_id: s for s in episode_states(lake) if s.episode_id}
    ids = set(m.episode_index) | set(m.excluded) | set(m.approved)
    rows = []
    for ep in sorted(ids):
        if ep in m.excluded:
            in_release, reason = "excluded", m.excluded[ep]
        elif ep in m.approved:
            in_release, reason = "approved", m.approved[ep]
        else:
            in_release, reason = "selected", ""
        s = states.get(ep)
        rows.append(QueueRow(
            episode_id=ep, in_release=in_release, reason=reason,
            quality_score=m.quality_scores.get(ep, s.quality_score if s else None),
            partition=s.partition if s else "", state=s.status if s else "gone",
            failed_checks=tuple(s.failed_checks) if s else (), decision=s.decision if s else None))
    return ReleaseQueue(release=m.release, spec_name=m.spec_name or record.spec_name, version=m.version,
                        built_at=m.created_at, rows=rows)


@dataclass
class ReviewIndex:
    """What ``/review/`` lists: ``releases`` (spec name, its latest published version id or ``""``
    when never built, its number of episodes) and ``episodes``, every converted episode's
    :class:`~hvla_platform.lib.processing.qa.states.EpisodeState`, those with failed checks and no
    decision first."""

    releases: list[tuple[str, str, int]]
    episodes: list[Any]


def review_index(lake: Lake) -> ReviewIndex:
    """The review landing page's content (:class:`ReviewIndex`).

    Raises:
        TableError / DecisionError: a stored table or decision breaks its contract.
    """
    names = {k[len(RELEASE_SPECS) + 1:-len(".yaml")] for k in lake.list_keys(RELEASE_SPECS) if k.endswith(".yaml")}
    names |= {k[len(RELEASE_VERSIONS) + 1:].split("/", 1)[0] for k in lake.list_keys(RELEASE_VERSIONS)}
    releases = []
    for name in sorted(names):
        found = latest_version(lake, name)
        releases.append((name, found[1].release, found[1].num_episodes + len(found[1].excluded)) if found else (name, "", 0))
    episodes = [s for s in episode_states(lake) if s.status == "converted"]
    episodes.sort(key=lambda s: (not s.failed_checks, s.decision is not None, s.partition, s.episode_id))
    return ReviewIndex(releases=releases, episodes=episodes)


# ---- identity -----------------------------------------------------------------------------------

def default_identity(header: str | None = None) -> Callable[[Request], str]:
    """The reviewer identity policy (module docstring): the value of ``header`` (default: the
    header ``$HVLA_WEB_USER_HEADER`` names) when one is configured; else the service's OS user for
    a loopback client; else ``""`` (no identity)."""
    header = header if header is not None else os.environ.get(WEB_USER_HEADER_ENV, "")
    user = getpass.getuser()

    def identity(request: Request) -> str:
        if header:
            return request.headers.get(header, "").strip()
        return user if is_loopback(request.client.host if request.client else None) else ""

    return identity


# ---- routes -------------------------------------------------------------------------------------

def _refusal(status: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(" ".join(str(message).split()) + "\n", status_code=status)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


def review_routes(lake: Lake, *, identity: Callable[[Request], str], cache_dir: Path | None = None) -> list[Route]:
    """The review routes (module docstring), for ``Starlette(routes=...)`` or the lake web service's
    ``extra_routes``.

    Args:
        lake: the lake to read and record decisions in.
        identity: the reviewer of a request, ``""`` for none (:func:`default_identity`).
        cache_dir: the video cache (default :func:`default_cache_dir`).
    """
    cache = cache_dir or default_cache_dir()

    def ids(request: Request) -> tuple[str, str, str]:
        p = request.path_params
        return p["day"], p["robot"], p["episode_id"]

    async def page(request: Request) -> Response:
        day, robot, ep = ids(request)
        try:
            review = await run_in_threadpool(episode_review, lake, day, robot, ep, cache_dir=cache)
        except (UnknownIdError, UnsafeIdError) as exc:
            return _refusal(404, exc)
        try:
            t = float(request.query_params.get("t", "0") or 0)
        except ValueError:
            return _refusal(400, f"t={request.query_params.get('t')!r} is not a number of seconds")
        return HTMLResponse(review_page.episode_page(review, reviewer=identity(request), start_s=t,
                                                     base_path=episode_path(day, robot, ep)))

    async def video(request: Request) -> Response:
        day, robot, ep = ids(request)
        m = _MP4.fullmatch(request.path_params["file"])
        if m is None:
            return _refusal(404, f"no video {request.path_params['file']!r}: expected <camera>.mp4")
        try:
            path = await run_in_threadpool(episode_video, lake, day, robot, ep, m["camera"], cache_dir=cache)
        except (UnknownIdError, UnsafeIdError) as exc:
            return _refusal(404, exc)
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=86400"})

    async def decide(request: Request) -> Response:
        day, robot, ep = ids(request)
        who = identity(request)
        if not who:
            return _refusal(403, "no reviewer identity for this request: decisions are recorded only for "
                                 f"a loopback client or behind a proxy that sets the header ${WEB_USER_HEADER_ENV} names")
        if not _same_origin(request):
            return _refusal(403, f"cross-origin decision refused (Origin {request.headers.get('origin')!r})")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return _refusal(415, 'a decision is JSON: {"decision": "approve"|"reject", "reason": "..."}')
        try:
            body = await request.json()
        except ValueError:
            return _refusal(400, "the request body is not JSON")
        if not isinstance(body, dict) or set(body) - {"decision", "reason"}:
            extra = sorted(set(body) - {"decision", "reason"}) if isinstance(body, dict) else body
            return _refusal(400, f'a decision is {{"decision", "reason"}} only (got {extra!r}); '
                                 "the reviewer comes from the request, not the body")
        try:
            await run_in_threadpool(_conversion, lake, day, robot, ep)
            rec = await run_in_threadpool(record_decision, lake, ep, str(body.get("decision", "")),
                                          str(body.get("reason", "")), who)
        except (UnknownIdError, UnsafeIdError) as exc:
            return _refusal(404, exc)
        except DecisionError as exc:
            return _refusal(400, exc)
        return JSONResponse(rec)

    async def queue(request: Request) -> Response:
        try:
            q = await run_in_threadpool(release_queue, lake, request.path_params["release"])
        except (UnknownIdError, UnsafeIdError) as exc:
            return _refusal(404, exc)
        return HTMLResponse(review_page.queue_page(q))

    async def index(request: Request) -> Response:
        return HTMLResponse(review_page.index_page(await run_in_threadpool(review_index, lake)))

    async def plotly_js(request: Request) -> Response:
        body, version = review_page.plotly_js()
        etag = f'"plotly-{version}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="text/javascript",
                        headers={"ETag": etag, "Cache-Control": "public, max-age=604800"})

    base = "/review/partitions/{day}/{robot}/episodes/{episode_id}"
    return [
        Route("/review/", index, methods=["GET"]),
        Route("/review", lambda request: RedirectResponse("/review/", status_code=307), methods=["GET"]),
        Route(base, page, methods=["GET"]),
        Route(base + "/video/{file}", video, methods=["GET"]),
        Route(base + "/decision", decide, methods=["POST"]),
        Route("/review/releases/{release}", queue, methods=["GET"]),
        Route(review_page.PLOTLY_JS_PATH, plotly_js, methods=["GET"]),
    ]


def service_routes(lake: Lake) -> list[Route]:
    """The review routes as the lake web service mounts them: :func:`review_routes` with
    :func:`default_identity` and :func:`default_cache_dir` (a route provider for ``hvla web``:
    ``"hvla_platform.lib.web.review:service_routes"``)."""
    return review_routes(lake, identity=default_identity())
