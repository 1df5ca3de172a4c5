"""The episode QA checks that need the rest of the lake: duplicates and truncated recordings.

``duplicate``
    The same recording under another episode id, anywhere in the lake (not only in the episode's
    own partition). **Exact**: the raw MCAP's sha256 (the ``sha256`` of every raw partition index,
    ``raw-mcap/<day>/<robot>/_partition.json``) equals another episode's. **Near**: the signal
    fingerprints (:func:`signal_fingerprint`, kept in every converted episode's QA metrics in the
    ``episodes-hdf5`` manifests) agree (:func:`near_duplicate`), which finds a re-encoded or
    re-stamped copy whose bytes differ; or the frame fingerprints (:func:`frame_fingerprint`, in the
    same manifests) of the shared colour cameras agree (:func:`near_duplicate_frames`), which finds a
    copy whose joint streams were perturbed (re-quantised, noise added) but whose video is the same.
    The check fails on the *later* copy and names the original:
    the original is the one published to the raw layer first (its raw manifest's ``created_at``),
    ties broken by capture day, robot and episode id. A near-duplicate is found when the later copy
    is converted after the earlier one (its fingerprint must be in a manifest or earlier in the same
    conversion run); exact duplicates only need the raw indexes.
``recording_complete``
    The joint-state span covers at least ``min_recorded_fraction`` of the ``duration_s`` the
    recording's own ``metadata.yaml`` states; a shorter MCAP was cut (recorder crash, partial copy)
    even when it is a valid file. Left out (not run) when the metadata states no duration.

:func:`apply_lake_checks` adds both to an :class:`~hvla_platform.lib.processing.build.EpisodeConversion`
(the partition conversion calls it for every episode) and recomputes the quality score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hvla_platform.lib.core.keys import EPISODES, PARTITION_INDEX, RAW, raw_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.yaml_io import safe_load_yaml
from hvla_platform.lib.formats.recording.streams import JointStream
from hvla_platform.lib.formats.recording.metadata import parse_recording_metadata
from hvla_platform.lib.ingest.landing import METADATA
from hvla_platform.lib.processing.qa.image_stats import hamming
from hvla_platform.lib.processing.qa.score import quality_score
from hvla_platform.lib.processing.qa.thresholds import QAThresholds

#: The lake-wide QA checks, in report order (after :data:`~hvla_platform.lib.processing.qa.metrics.QA_CHECKS`).
LAKE_QA_CHECKS = ("recording_complete", "duplicate")

#: Samples per joint in a signal fingerprint.
FINGERPRINT_SAMPLES = 16


def signal_fingerprint(js: JointStream, samples: int = FINGERPRINT_SAMPLES) -> dict[str, Any]:
    """A compact signal fingerprint of a recording: ``{"duration_s": float, "q": (samples, J) list}``.

    ``q`` are the measured joint positions (radians, the stream's joint order, J = 29 for the G1)
    linearly interpolated at ``samples`` evenly spaced times from the first to the last joint-state
    stamp, rounded to 0.1 mrad (below the encoder noise); non-finite values become 0. Two recordings
    of the same motion have the same fingerprint whatever their episode ids, absolute times, bytes
    or cameras.
    """
    t = (js.stamps_ns - js.stamps_ns[0]) / 1e9 if js.stamps_ns.size else np.zeros(0)
    if t.size < 2:
        return {"duration_s": 0.0, "q": []}
    order = np.argsort(t, kind="stable")
    t, pos = t[order], np.where(np.isfinite(js.position), js.position, 0.0)[order]
    grid = np.linspace(0.0, float(t[-1]), samples)
    q = np.stack([np.interp(grid, t, pos[:, j]) for j in range(pos.shape[1])], axis=1)
    return {"duration_s": float(t[-1]), "q": np.round(q, 4).tolist()}


def near_duplicate(a: dict[str, Any], b: dict[str, Any], th: QAThresholds) -> bool:
    """Whether two fingerprints (:func:`signal_fingerprint`) are near-duplicates.

    True when their durations differ by at most ``near_duplicate_duration_s`` and, on every joint
    that moves in either (range > ``stall_motion_rad``), they differ by at most
    ``near_duplicate_rad`` at every sample; False when no joint moves in either (two robots standing
    still are not copies of each other) or the shapes differ.
    """
    qa, qb = np.asarray(a.get("q") or [], np.float64), np.asarray(b.get("q") or [], np.float64)
    if qa.ndim != 2 or qa.shape != qb.shape or qa.size == 0:
        return False
    if abs(float(a["duration_s"]) - float(b["duration_s"])) > th.near_duplicate_duration_s:
        return False
    moving = (np.ptp(qa, axis=0) > th.stall_motion_rad) | (np.ptp(qb, axis=0) > th.stall_motion_rad)
    if not moving.any():
        return False
    return bool(np.abs(qa[:, moving] - qb[:, moving]).max() <= th.near_duplicate_rad)


def frame_fingerprint(stamps_ns: np.ndarray, hashes: np.ndarray, samples: int = FINGERPRINT_SAMPLES) -> list[str]:
    """A compact frame fingerprint of one colour camera: the dHashes (16 hex digits each) of the
    frames nearest to ``samples`` evenly spaced times from the first to the last stamp.

    Args:
        stamps_ns: (N,) int64 stamps of the camera's decodable frames (any order).
        hashes: (N,) uint64 their dHashes (:attr:`~hvla_platform.lib.processing.convert.CameraScan.dhash`).
        samples: number of hashes kept.

    Returns ``[]`` for a camera with fewer than 2 frames.
    """
    t = np.asarray(stamps_ns, np.int64)
    h = np.asarray(hashes, np.uint64)
    if t.size < 2:
        return []
    order = np.argsort(t, kind="stable")
    t, h = t[order], h[order]
    grid = np.linspace(float(t[0]), float(t[-1]), samples)
    right = np.clip(np.searchsorted(t, grid), 1, t.size - 1)
    nearest = np.where(grid - t[right - 1] <= t[right] - grid, right - 1, right)
    return [f"{int(x):016x}" for x in h[nearest]]


def _distinctness(hashes: np.ndarray) -> float:
    """Median over the samples of a fingerprint of the Hamming distance to its nearest other sample."""
    d = hamming(hashes[:, None], hashes[None, :])
    np.fill_diagonal(d, 64)
    return float(np.median(d.min(axis=1)))


def near_duplicate_frames(a: dict[str, list[str]], b: dict[str, list[str]], duration_a_s: float,
                          duration_b_s: float, th: QAThresholds) -> list[str]:
    """The shared colour cameras on which two frame fingerprints (:func:`frame_fingerprint` per
    camera) show the same video, or ``[]`` when they are not near-duplicates.

    Near-duplicates when the durations (seconds) differ by at most ``near_duplicate_duration_s`` and
    every shared camera whose fingerprints **both see motion** (the median distance of a sample to
    the nearest other sample of its own fingerprint exceeds 2 × ``near_duplicate_hash_bits``; there
    must be at least one) agrees sample by sample: the hashes at the same sample differ by at most
    ``near_duplicate_hash_bits`` bits on all samples but at most one. By the triangle inequality a
    sample of one fingerprint then lies within the bound of one sample of the other only, so two
    different recordings of the same static or slow scene (the simulator's views, whose hashes stay
    a few bits apart all episode) do not match, while a copy of the video does.
    """
    if abs(float(duration_a_s) - float(duration_b_s)) > th.near_duplicate_duration_s:
        return []
    bits = int(th.near_duplicate_hash_bits)
    matched = []
    for cam in sorted(set(a) & set(b)):
        fa = np.array([int(x, 16) for x in a[cam]], np.uint64)
        fb = np.array([int(x, 16) for x in b[cam]], np.uint64)
        if fa.size < 2 or fa.shape != fb.shape:
            continue
        if min(_distinctness(fa), _distinctness(fb)) <= 2 * bits:
            continue  # a static or slow view: agreement would not tell recordings apart
        if int((hamming(fa, fb) > bits).sum()) > 1:
            return []
        matched.append(cam)
    return matched


@dataclass
class KnownEpisode:
    """One episode the lake knows: partition, raw sha256, raw publication time (ISO 8601, ``""``
    when unknown), signal fingerprint and frame fingerprints (``{camera: [hex dHash]}``; both
    ``None`` until it is converted)."""

    episode_id: str
    capture_day: str
    robot_id: str
    sha256: str
    published_at: str = ""
    fingerprint: dict[str, Any] | None = None
    frame_fingerprint: dict[str, list[str]] | None = None

    @property
    def order(self) -> tuple[str, str, str, str]:
        """Sort key: who came first (raw publication, then day, robot, id)."""
        return (self.published_at or "9999", self.capture_day, self.robot_id, self.episode_id)

    @property
    def where(self) -> str:
        """``<episode> (<day>|<robot>)``."""
        return f"{self.episode_id} ({self.capture_day}|{self.robot_id})"


@dataclass
class LakeEpisodeIndex:
    """Every raw episode of the lake with its sha256, and the fingerprints of the converted ones.

    Built once per partition conversion (:meth:`from_lake`); episodes converted in the run are
    added with :meth:`add` so later ones in the same partition are compared with them.
    """

    episodes: dict[str, KnownEpisode] = field(default_factory=dict)
    lake: Lake | None = None

    @classmethod
    def from_lake(cls, lake: Lake) -> "LakeEpisodeIndex":
        """Read every raw partition index (sha256 of the episodes published to raw) and every
        ``episodes-hdf5`` manifest (fingerprints). Both are read as plain JSON (their schemas are
        checked by their own readers); rows without an ``episode_id`` or ``sha256`` are skipped."""
        idx = cls(lake=lake)
        for key in lake.list_keys(RAW):
            segs = key.split("/")
            if len(segs) != 4 or segs[3] != PARTITION_INDEX:
                continue
            day, robot = segs[1], segs[2]
            for row in lake.read_json(key).get("episodes", []):
                ep, sha = row.get("episode_id"), row.get("sha256")
                if ep and sha and row.get("status") in ("published", "cached"):
                    idx.episodes[ep] = KnownEpisode(ep, day, robot, sha)
        for prefix in lake.list_artifacts(EPISODES):
            manifest = lake.read_manifest(prefix) or {}
            for conv in manifest.get("conversions", []):
                fp = (conv.get("qa_metrics") or {}).get("fingerprint")
                frames = (conv.get("qa_metrics") or {}).get("frame_fingerprint")
                known = idx.episodes.get(conv.get("episode_id", ""))
                if known is not None and fp:
                    known.fingerprint = fp
                if known is not None and frames:
                    known.frame_fingerprint = frames
        return idx

    def add(self, episode: KnownEpisode) -> None:
        """Record (or update) an episode, e.g. one just converted."""
        self.episodes[episode.episode_id] = episode

    def _published_at(self, ep: KnownEpisode) -> str:
        if not ep.published_at and self.lake is not None:
            m = self.lake.read_manifest(raw_prefix(ep.capture_day, ep.robot_id, ep.episode_id)) or {}
            ep.published_at = str(m.get("created_at") or "")
        return ep.published_at

    def original_of(self, me: KnownEpisode, th: QAThresholds) -> tuple[str, KnownEpisode] | None:
        """``("exact" | "near", original)`` when ``me`` duplicates an episode that came before it, else
        ``None`` (also when ``me`` is itself the original of its copies)."""
        self._published_at(me)
        found = []
        for other in self.episodes.values():
            if other.episode_id == me.episode_id:
                continue
            if other.sha256 and other.sha256 == me.sha256:
                found.append(("exact", other))
            elif near_evidence(me, other, th):
                found.append(("near", other))
        for _, other in found:
            self._published_at(other)
        earlier = [(kind, o) for kind, o in found if o.order < me.order]
        return min(earlier, key=lambda ko: ko[1].order) if earlier else None


def near_evidence(me: KnownEpisode, other: KnownEpisode, th: QAThresholds) -> str:
    """Why ``me`` and ``other`` are near-duplicates (one line), ``""`` when they are not: their signal
    fingerprints agree (:func:`near_duplicate`), or their frame fingerprints do
    (:func:`near_duplicate_frames`, durations from the signal fingerprints)."""
    if not (me.fingerprint and other.fingerprint):
        return ""
    if near_duplicate(me.fingerprint, other.fingerprint, th):
        return f"same motion (signal fingerprint within {th.near_duplicate_rad} rad)"
    if me.frame_fingerprint and other.frame_fingerprint:
        cams = near_duplicate_frames(me.frame_fingerprint, other.frame_fingerprint, me.fingerprint["duration_s"],
                                     other.fingerprint["duration_s"], th)
        if cams:
            return (f"same video (frame fingerprints of {', '.join(cams)} within "
                    f"{int(th.near_duplicate_hash_bits)} bits)")
    return ""


def duplicate_check(me: KnownEpisode, index: LakeEpisodeIndex, th: QAThresholds) -> dict[str, Any]:
    """The ``duplicate`` check of one episode against the lake (module docstring)."""
    hit = index.original_of(me, th)
    if hit is None:
        return {"passed": True, "detail": f"no other episode of the {len(index.episodes)} known has its sha256, "
                                          "signal or frame fingerprint (or this is the first copy)", "frames": []}
    kind, orig = hit
    what = ("byte-identical raw MCAP (sha256 " + me.sha256[:12] + "…)" if kind == "exact" else
            near_evidence(me, orig, th))
    return {"passed": False, "detail": f"{kind} duplicate of {orig.where}: {what}", "frames": [],
            "original": orig.episode_id, "kind": kind}


def recording_complete_check(recorded_s: float, stated_s: float | None, th: QAThresholds) -> dict[str, Any] | None:
    """The ``recording_complete`` check: ``recorded_s`` (joint-state span, seconds) against the
    ``duration_s`` its metadata states (seconds); ``None`` when it states none (not run)."""
    if stated_s is None or stated_s <= 0:
        return None
    ok = recorded_s >= th.min_recorded_fraction * stated_s
    return {"passed": bool(ok), "detail": f"recorded {recorded_s:.2f} s of the {stated_s:.2f} s its metadata.yaml "
                                          f"states (min {th.min_recorded_fraction:.0%})", "frames": []}


class _Conversion(Protocol):
    episode_id: str
    status: str
    qa_checks: dict[str, dict[str, Any]]
    qa_metrics: dict[str, Any]
    quality_score: float | None
    quality_components: dict[str, float]


def stated_duration_s(lake: Lake, day: str, robot: str, episode_id: str) -> float | None:
    """``duration_s`` of a raw episode's ``metadata.yaml`` (seconds), ``None`` when absent.

    Raises:
        RecordingMetadataError: the file breaks its contract.
    """
    key = f"{raw_prefix(day, robot, episode_id)}/{METADATA}"
    if not lake.exists(key):
        return None
    meta = parse_recording_metadata(safe_load_yaml(lake.read_bytes(key)), source=lake.uri(key))
    return None if meta.duration_s is None else float(meta.duration_s)


_UNREAD = object()


def apply_lake_checks(conv: _Conversion, *, lake: Lake, day: str, robot: str, sha256: str,
                      index: LakeEpisodeIndex, qa: QAThresholds, stated_s: Any = _UNREAD) -> None:
    """Add ``recording_complete`` and ``duplicate`` to ``conv.qa_checks`` (when its QA ran), record it in
    ``index`` and recompute ``conv.quality_score`` / ``quality_components`` for a converted episode.

    ``stated_s``: the ``duration_s`` (seconds, or None) of the episode's ``metadata.yaml`` when the
    caller has already parsed it; by default it is read from the lake (:func:`stated_duration_s`).

    Raises:
        RecordingMetadataError: the raw episode's ``metadata.yaml`` breaks its contract.
    """
    me = KnownEpisode(conv.episode_id, day, robot, sha256, fingerprint=conv.qa_metrics.get("fingerprint"),
                      frame_fingerprint=conv.qa_metrics.get("frame_fingerprint"))
    if conv.qa_checks:
        if stated_s is _UNREAD:
            stated_s = stated_duration_s(lake, day, robot, conv.episode_id)
        done = recording_complete_check(float(conv.qa_metrics.get("duration_s", 0.0)), stated_s, qa)
        if done is not None:
            conv.qa_checks["recording_complete"] = done
        conv.qa_checks["duplicate"] = duplicate_check(me, index, qa)
        if conv.status == "converted":
            conv.quality_score, conv.quality_components = quality_score(conv.qa_checks, conv.qa_metrics, qa)
    index.add(me)
