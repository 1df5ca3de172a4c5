"""Seed 003's three training targets derived from phase-labelled teleop episodes.

Seed 003 ("Data Conversion") derives three datasets from one recording, applying **in this order**
(the order matters):

1. **phase filtering** — keep the frames of the target's phases;
2. **no-op removal** — drop frames whose joints have not changed (threshold 1e-4 rad);
3. **stop-signal synthesis** — append 3 copies of the last frame with gripper = 255 (``planner`` and
   ``correction`` only);
4. **delta joints** — ``q[t+1] - q[t]``, the RLDS action;
5. **image resizing** — square, 256 by default (configurable).

No-op removal runs before the stop signal because the stop frames repeat the last frame's joints:
the other way round they would be removed as no-ops (the seed's "Important" note; the unit test
``test_noop_removal_runs_before_stop_signal`` fails if the two steps are swapped).

=============  ==============================  ===========
target         phases kept                     stop signal
=============  ==============================  ===========
``e2e``        teleop, skill, correction,      no
               skill_resume
``planner``    teleop                          3 frames
``correction`` correction                      3 frames
=============  ==============================  ===========

Decisions where the seed's text is not explicit (docs/teleop_targets.md):

- **"Unchanged within 1e-4 rad"** compares a frame with the **previous kept frame** (not the
  previous recorded one, so a slow drift of < 1e-4 rad per frame is not lost: it is kept once it
  adds up past the threshold) by the **largest absolute joint change** (the L∞ norm over the six
  joints): frame ``t`` is kept when ``max_j |q[t, j] - q[kept, j]| > 1e-4``. The first frame is
  always kept; the gripper is not compared (a gripper-only frame is a no-op). This is the seed
  repository's own ``remove_noop_frames`` (ChangChrisLiu/DataCollection ``scripts/conversion_utils.py``).
- **A phase filter that leaves several segments** (e.g. two ``correction`` phases after two failed
  grasps): every contiguous run of kept frames becomes **its own training episode** (id
  ``<episode>.seg<k>``), and steps 2–5 run per segment, so each one ends in its own stop signal
  (each teleop or correction segment ends where a skill was called) and no action jumps across a
  skill execution that was filtered out. (The seed's converter concatenates the runs.)
- A segment with fewer than 2 frames after step 3 is dropped (the seed's converter skips such
  episodes too); it is counted in :class:`TargetCounts`, never silently lost.

Nothing here imports Dagster, LeRobot or TensorFlow; the exporters are
:mod:`hvla_platform.lib.dataset.teleop_lerobot` and :mod:`hvla_platform.lib.dataset.rlds_export`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from hvla_platform.lib.core.keys import RAW_TELEOP
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import InputRef, manifest_sha256
from hvla_platform.lib.core.rights import Rights, RightsError, combine_rights
from hvla_platform.lib.formats.teleop.episode import CAMERAS, GRIPPER_MAX, PHASES, TeleopEpisode
from hvla_platform.lib.ingest.teleop import load_raw_teleop_episodes

#: Seed 003's no-op threshold: joints unchanged within this many radians (L∞ over the six joints).
NOOP_THRESHOLD_RAD = 1e-4
#: Seed 003's stop signal: this many copies of the last frame ...
STOP_SIGNAL_FRAMES = 3
#: ... with the gripper at this Robotiq position (255 = closed).
STOP_SIGNAL_GRIPPER = GRIPPER_MAX
#: Seed 003's image size for RLDS (OpenVLA-OFT: 256; base OpenVLA: 224).
DEFAULT_IMAGE_SIZE = 256
#: The phase label given to synthesized stop frames (as the seed's converter labels them).
STOP_PHASE = "stop_signal"
#: Fewer frames than this after stop-signal synthesis: the segment is dropped (counted).
MIN_FRAMES = 2


class TargetError(ValueError):
    """A target derivation was asked for something it cannot do (unknown target, bad option)."""


@dataclass(frozen=True)
class TargetSpec:
    """One of seed 003's training targets.

    Attributes:
        name: ``e2e`` | ``planner`` | ``correction``.
        phases: the phase labels kept by step 1.
        stop_signal: whether step 3 appends :data:`STOP_SIGNAL_FRAMES` stop frames.
        purpose: the seed's one-line purpose (for the dataset card).
    """

    name: str
    phases: tuple[str, ...]
    stop_signal: bool
    purpose: str


#: Seed 003's three targets ("System Overview" table).
TARGETS: dict[str, TargetSpec] = {
    "e2e": TargetSpec("e2e", PHASES, False, "Full trajectory for VLA executor models"),
    "planner": TargetSpec("planner", ("teleop",), True, "Teaches WHEN to call a skill"),
    "correction": TargetSpec("correction", ("correction",), True, "Teaches recovery after grasp failure"),
}


def target_spec(name: str) -> TargetSpec:
    """The :class:`TargetSpec` called ``name``.

    Raises:
        TargetError: not one of :data:`TARGETS` (the message lists them).
    """
    try:
        return TARGETS[name]
    except KeyError:
        raise TargetError(f"unknown teleop target {name!r}; expected one of {sorted(TARGETS)}") from None


@dataclass(frozen=True)
class TargetOptions:
    """Options of a derivation (all default to the seed's values).

    Attributes:
        image_size: side of the square images of step 5, pixels (256; 224 for base OpenVLA).
        noop_threshold_rad: the no-op threshold of step 2, radians.
        keep_noops: skip step 2 (the seed converter's ``--keep-noops``).
        stop_signal_frames: stop frames appended by step 3 for targets with a stop signal.

    Raises:
        TargetError: a non-positive size or a negative threshold / frame count.
    """

    image_size: int = DEFAULT_IMAGE_SIZE
    noop_threshold_rad: float = NOOP_THRESHOLD_RAD
    keep_noops: bool = False
    stop_signal_frames: int = STOP_SIGNAL_FRAMES

    def __post_init__(self) -> None:
        if int(self.image_size) <= 0:
            raise TargetError(f"image_size must be positive, got {self.image_size}")
        if not self.noop_threshold_rad >= 0:
            raise TargetError(f"noop_threshold_rad must be >= 0, got {self.noop_threshold_rad}")
        if int(self.stop_signal_frames) < 0:
            raise TargetError(f"stop_signal_frames must be >= 0, got {self.stop_signal_frames}")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for manifests' ``config`` and the dataset card)."""
        return {"image_size": int(self.image_size), "noop_threshold_rad": float(self.noop_threshold_rad),
                "keep_noops": bool(self.keep_noops), "stop_signal_frames": int(self.stop_signal_frames)}


# ---- the five steps, each on frame indices of one source episode -------------------------------------

def phase_segments(phases: tuple[str, ...] | list[str], keep: tuple[str, ...]) -> list[np.ndarray]:
    """Step 1: the contiguous runs of frames whose phase is in ``keep``.

    Args:
        phases: ``(T,)`` phase label per frame.
        keep: phase labels to keep.

    Returns:
        one ``(n_k,) int64`` array of frame indices per run, in recording order (empty list when no
        frame is kept).
    """
    mask = np.fromiter((p in keep for p in phases), dtype=bool, count=len(phases))
    if not mask.any():
        return []
    idx = np.flatnonzero(mask)
    breaks = np.flatnonzero(np.diff(idx) > 1) + 1
    return [a.astype(np.int64) for a in np.split(idx, breaks)]


def remove_noops(joint_positions: np.ndarray, indices: np.ndarray,
                 threshold_rad: float = NOOP_THRESHOLD_RAD) -> np.ndarray:
    """Step 2: drop the frames whose joints are unchanged within ``threshold_rad`` of the previous
    **kept** frame (L∞ over the joints; the first frame is always kept).

    Args:
        joint_positions: ``(T, 6) float64`` joint angles of the whole episode, radians.
        indices: ``(n,) int64`` frame indices of one segment, increasing.
        threshold_rad: a frame is kept when ``max_j |q[t, j] - q[last kept, j]| > threshold_rad``.

    Returns:
        ``(m,) int64`` the kept frame indices (``m ≤ n``; ``m = 0`` only for an empty segment).

    Source: seed 003's step 2; the comparison is the seed repository's ``remove_noop_frames``
    (module docstring).
    """
    if len(indices) == 0:
        return np.asarray(indices, dtype=np.int64)
    kept = [int(indices[0])]
    last = joint_positions[kept[0]]
    for i in indices[1:]:
        q = joint_positions[int(i)]
        if float(np.max(np.abs(q - last))) > threshold_rad:
            kept.append(int(i))
            last = q
    return np.asarray(kept, dtype=np.int64)


def append_stop_signal(indices: np.ndarray, frames: int = STOP_SIGNAL_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: ``frames`` copies of the last frame appended (their gripper is set to
    :data:`STOP_SIGNAL_GRIPPER` when the arrays are gathered, :func:`gather`).

    Args:
        indices: ``(m,) int64`` kept frame indices, m ≥ 1.
        frames: number of stop frames.

    Returns:
        ``(indices, is_stop)``: ``(m + frames,) int64`` source frame of each output frame (the stop
        frames repeat the last index) and ``(m + frames,) bool`` marking the stop frames.

    Raises:
        TargetError: ``indices`` is empty (there is no last frame to copy).
    """
    if len(indices) == 0:
        raise TargetError("a stop signal needs at least one frame to copy")
    out = np.concatenate([indices, np.full(frames, indices[-1], dtype=np.int64)])
    is_stop = np.concatenate([np.zeros(len(indices), bool), np.ones(frames, bool)])
    return out, is_stop


def delta_joints(joint_positions: np.ndarray) -> np.ndarray:
    """Step 4: the RLDS action, ``q[t+1] - q[t]`` per joint; the last step's is zero.

    Args:
        joint_positions: ``(N, 6) float64`` joints of one training episode, radians.

    Returns:
        ``(N, 6) float32`` radians (computed in float64, then cast; seed's RLDS builder).
    """
    q = np.asarray(joint_positions, dtype=np.float64)
    d = np.zeros_like(q)
    d[:-1] = q[1:] - q[:-1]
    return d.astype(np.float32)


def resize_images(frames: np.ndarray, size: int) -> np.ndarray:
    """Step 5: every frame resized to ``size × size`` with PIL's LANCZOS filter (the seed
    repository's ``resize_rgb_pil``); frames already that size are returned unchanged.

    Args:
        frames: ``(N, H, W, 3) uint8`` RGB.
        size: output side, pixels.

    Returns:
        ``(N, size, size, 3) uint8``.
    """
    if frames.shape[1:3] == (size, size):
        return frames
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for k, img in enumerate(frames):
        out[k] = np.asarray(Image.fromarray(img).resize((size, size), Image.LANCZOS))
    return out


# ---- derived episodes ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TargetEpisode:
    """One training episode of a target (one segment of one source episode), after the five steps.

    Attributes:
        episode_id: ``<source episode id>``, or ``<source episode id>.seg<k>`` when the phase filter
            left several segments of that episode (k counts from 0).
        source_key: lake key of the raw episode it comes from.
        source_episode_id: the raw episode's id.
        segment: k, the segment's position among the source's segments.
        source_index: ``(N,) int64`` the source frame each frame copies (stop frames repeat the last).
        is_stop: ``(N,) bool`` the synthesized stop frames.
        phases: ``(N,)`` phase labels (:data:`STOP_PHASE` for stop frames).
        timestamps: ``(N,) float64`` Unix seconds of the source frames (stop frame k: the last
            frame's + k / fps).
        joint_positions: ``(N, 6) float64`` radians.
        gripper_pos: ``(N,) uint8`` Robotiq 0–255 (stop frames: 255).
        delta_joints: ``(N, 6) float32`` step 4's action, radians.
        images: camera (``base_rgb``, ``wrist_rgb``) → ``(N, S, S, 3) uint8`` after step 5.
        fps: the source's frame rate, Hz.
        meta: the source's ``episode_meta.json``.
    """

    episode_id: str
    source_key: str
    source_episode_id: str
    segment: int
    source_index: np.ndarray
    is_stop: np.ndarray
    phases: tuple[str, ...]
    timestamps: np.ndarray
    joint_positions: np.ndarray
    gripper_pos: np.ndarray
    delta_joints: np.ndarray
    images: dict[str, np.ndarray]
    fps: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """N."""
        return len(self.source_index)

    @property
    def gripper01(self) -> np.ndarray:
        """``(N,) float32`` gripper / 255 (0 open … 1 closed)."""
        return self.gripper_pos.astype(np.float32) / np.float32(GRIPPER_MAX)


@dataclass
class SourceCounts:
    """What the derivation did with one source episode (all counts are frames unless named).

    Attributes:
        source_key / episode_id: the raw episode.
        frames: T, recorded frames.
        outside_phases: frames removed by step 1.
        noops_removed: frames removed by step 2.
        stop_frames: frames added by step 3.
        segments: contiguous runs left by step 1.
        kept_episodes: training episodes made (segments not dropped).
        dropped: one reason per dropped segment (fewer than :data:`MIN_FRAMES` frames) or for a
            source with no frame in the target's phases.
        output_frames: frames in its training episodes.
    """

    source_key: str
    episode_id: str
    frames: int
    outside_phases: int = 0
    noops_removed: int = 0
    stop_frames: int = 0
    segments: int = 0
    kept_episodes: int = 0
    dropped: list[str] = field(default_factory=list)
    output_frames: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


@dataclass
class TargetCounts:
    """Totals of a derivation over all its sources, plus the per-source :class:`SourceCounts`."""

    target: str
    sources: list[SourceCounts] = field(default_factory=list)

    def _sum(self, name: str) -> int:
        return int(sum(getattr(s, name) for s in self.sources))

    def to_dict(self) -> dict[str, Any]:
        """``{"target", "source_episodes", "source_frames", "outside_phases", "noops_removed",
        "stop_frames", "segments", "episodes", "dropped", "frames", "per_source": [...]}``."""
        return {"target": self.target, "source_episodes": len(self.sources), "source_frames": self._sum("frames"),
                "outside_phases": self._sum("outside_phases"), "noops_removed": self._sum("noops_removed"),
                "stop_frames": self._sum("stop_frames"), "segments": self._sum("segments"),
                "episodes": self._sum("kept_episodes"),
                "dropped": [f"{s.episode_id}: {r}" for s in self.sources for r in s.dropped],
                "frames": self._sum("output_frames"), "per_source": [s.to_dict() for s in self.sources]}


@dataclass
class TargetDerivation:
    """The result of :func:`derive_target`: the training episodes and what was removed/added."""

    target: TargetSpec
    options: TargetOptions
    episodes: list[TargetEpisode]
    counts: TargetCounts

    @property
    def num_frames(self) -> int:
        """Frames over all training episodes."""
        return int(sum(e.num_frames for e in self.episodes))


def gather(episode: TeleopEpisode, source_key: str, segment: int, indices: np.ndarray, is_stop: np.ndarray,
           episode_id: str, image_size: int) -> TargetEpisode:
    """The arrays of one training episode from its source frame indices (steps 4 and 5 applied;
    stop frames get gripper :data:`STOP_SIGNAL_GRIPPER`, phase :data:`STOP_PHASE`).

    Args:
        episode: the source episode.
        source_key: its lake key.
        segment: the segment's position among the source's segments.
        indices: ``(N,) int64`` source frame per output frame.
        is_stop: ``(N,) bool`` stop frames.
        episode_id: the training episode's id.
        image_size: step 5's size.

    Raises:
        TargetError: the source lacks one of the cameras :data:`CAMERAS`.
    """
    missing = [c for c in CAMERAS if c not in episode.images]
    if missing:
        raise TargetError(f"{episode.episode_id}: no camera(s) {missing}; seed 003's targets need {list(CAMERAS)}")
    joints = episode.joint_positions[indices].astype(np.float64)
    gripper = episode.gripper_pos[indices].astype(np.uint8)
    gripper[is_stop] = STOP_SIGNAL_GRIPPER
    phases = tuple(STOP_PHASE if s else episode.phases[int(i)] for i, s in zip(indices, is_stop))
    stamps = episode.timestamps[indices].astype(np.float64)
    n_stop = int(is_stop.sum())
    if n_stop:
        stamps[is_stop] = stamps[~is_stop][-1] + np.arange(1, n_stop + 1) / episode.fps
    images = {c: resize_images(episode.images[c][indices], image_size) for c in CAMERAS}
    return TargetEpisode(episode_id=episode_id, source_key=source_key, source_episode_id=episode.episode_id,
                         segment=segment, source_index=np.asarray(indices, np.int64), is_stop=np.asarray(is_stop, bool),
                         phases=phases, timestamps=stamps, joint_positions=joints, gripper_pos=gripper,
                         delta_joints=delta_joints(joints), images=images, fps=float(episode.fps),
                         meta=dict(episode.meta))


def derive_episode(source_key: str, episode: TeleopEpisode, target: TargetSpec,
                   options: TargetOptions = TargetOptions()) -> tuple[list[TargetEpisode], SourceCounts]:
    """Steps 1–5 on one source episode, in the seed's order (module docstring).

    Args:
        source_key: the raw episode's lake key (recorded on each training episode).
        episode: the source episode.
        target: which target.
        options: sizes and thresholds.

    Returns:
        ``(training episodes, counts)``: zero, one or several training episodes (one per segment
        that keeps at least :data:`MIN_FRAMES` frames).

    Raises:
        TargetError: the source lacks a camera of :data:`CAMERAS`.
    """
    counts = SourceCounts(source_key=source_key, episode_id=episode.episode_id, frames=episode.num_frames)
    segments = phase_segments(episode.phases, target.phases)                        # 1. phase filtering
    counts.segments = len(segments)
    counts.outside_phases = episode.num_frames - int(sum(len(s) for s in segments))
    if not segments:
        counts.dropped.append(f"no frame in phase(s) {list(target.phases)}")
    out: list[TargetEpisode] = []
    for k, seg in enumerate(segments):
        kept = seg if options.keep_noops else remove_noops(                         # 2. no-op removal
            episode.joint_positions, seg, options.noop_threshold_rad)
        counts.noops_removed += len(seg) - len(kept)
        if target.stop_signal:                                                      # 3. stop signal
            indices, is_stop = append_stop_signal(kept, options.stop_signal_frames)
        else:
            indices, is_stop = kept, np.zeros(len(kept), bool)
        if len(indices) < MIN_FRAMES:
            counts.dropped.append(f"segment {k} (frames {int(seg[0])}-{int(seg[-1])}) has {len(indices)} frame(s) "
                                  f"after no-op removal, fewer than {MIN_FRAMES}")
            continue
        counts.stop_frames += int(is_stop.sum())
        ep_id = episode.episode_id if len(segments) == 1 else f"{episode.episode_id}.seg{k}"
        te = gather(episode, source_key, k, indices, is_stop, ep_id, int(options.image_size))  # 4. + 5.
        out.append(te)
        counts.kept_episodes += 1
        counts.output_frames += te.num_frames
    return out, counts


def derive_target(sources: list[tuple[str, TeleopEpisode]], target: str | TargetSpec,
                  options: TargetOptions = TargetOptions()) -> TargetDerivation:
    """One target's training episodes from ``(raw lake key, episode)`` pairs, in the given order.

    Args:
        sources: ``(lake key of the raw episode, TeleopEpisode)`` pairs (the raw teleop loader's
            output, keys as strings).
        target: a :data:`TARGETS` name or spec.
        options: :class:`TargetOptions`.

    Returns:
        :class:`TargetDerivation` (training episodes in source order, segments in recording order).

    Raises:
        TargetError: unknown target, duplicate source episode ids, or a source without a camera.
    """
    spec = target_spec(target) if isinstance(target, str) else target
    ids = [ep.episode_id for _, ep in sources]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise TargetError(f"duplicate teleop episode id(s) {dupes} among the target's sources")
    counts = TargetCounts(spec.name)
    episodes: list[TargetEpisode] = []
    for key, ep in sources:
        eps, c = derive_episode(key, ep, spec, options)
        episodes.extend(eps)
        counts.sources.append(c)
    return TargetDerivation(spec, options, episodes, counts)


# ---- sources in the lake ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TeleopSource:
    """One raw teleop episode as the exporters take it: the episode and what its raw manifest says.

    Attributes:
        key: the raw episode's lake key (its artifact prefix).
        sha256: sha256 of its stored manifest (what consumers record as the input's hash).
        episode: the episode, loaded.
        rights: its rights (the raw manifest's ``rights`` block).
        task: its language instruction when the raw manifest records one (``task``), else None.
    """

    key: str
    sha256: str
    episode: TeleopEpisode
    rights: Rights
    task: str | None = None

    def input_ref(self) -> InputRef:
        """The :class:`InputRef` a derived artifact records for this source (kind ``raw_teleop``)."""
        return InputRef(key=self.key, sha256=self.sha256, kind="raw_teleop", episode_ids=[self.episode.episode_id])


def teleop_sources(lake: Lake, pairs: list[tuple[str | InputRef, TeleopEpisode]]) -> list[TeleopSource]:
    """:class:`TeleopSource` s for the raw teleop loader's ``(key or InputRef, episode)`` pairs,
    reading each raw episode's committed manifest for its hash, rights and task.

    Raises:
        TargetError: a raw episode has no committed manifest, or its manifest has no valid
            ``rights`` block (the message names the key).
    """
    out = []
    for ref, ep in pairs:
        key = ref if isinstance(ref, str) else ref.key
        data = lake.read_manifest(key)
        if data is None:
            raise TargetError(f"{key}: no committed raw teleop episode (no manifest) for {ep.episode_id}")
        try:
            rights = Rights.from_dict(data.get("rights") or {})
        except RightsError as exc:
            raise TargetError(f"{key}: raw teleop manifest has no valid rights block: {exc}") from None
        task = data.get("task")
        out.append(TeleopSource(key=key, sha256=manifest_sha256(data), episode=ep, rights=rights,
                                task=task if isinstance(task, str) and task.strip() else None))
    return out


def sources_rights(sources: list[TeleopSource]) -> Rights:
    """Rights of a target built from ``sources``: :func:`~hvla_platform.lib.core.rights.combine_rights`
    over **every** source given (also those contributing no frame to this target: all three targets
    read the same raw episodes, record them all as inputs, and carry the same rights).

    Raises:
        RightsError: no sources.
    """
    return combine_rights(s.rights for s in sources)


def task_of(source: TeleopSource, task: str | None) -> str:
    """The language instruction of ``source``'s training episodes: ``task`` when given (the seed
    converter's ``--task``), else the raw manifest's ``task``.

    Raises:
        TargetError: neither is set (the message names the episode).
    """
    if task is not None and task.strip():
        return task
    if source.task:
        return source.task
    raise TargetError(f"{source.key}: episode {source.episode.episode_id} records no task; give the target a task "
                      "(the seed converter's --task)")


def raw_teleop_partitions(lake: Lake) -> list[str]:
    """Every ``day|robot`` partition with a committed raw teleop episode (``raw-teleop/<day>/<robot>/<episode>``)."""
    parts = {tuple(p.split("/")[1:3]) for p in lake.list_artifacts(RAW_TELEOP) if p.count("/") == 3}
    return [f"{d}|{r}" for d, r in sorted(parts)]


def load_teleop_sources(lake: Lake, partitions: list[str] | None = None) -> tuple[list[TeleopSource], list[str]]:
    """The usable raw teleop episodes of ``partitions`` (default: all, :func:`raw_teleop_partitions`)
    as :class:`TeleopSource` s (lib/ingest/teleop.py ``load_raw_teleop_episodes``, then
    :func:`teleop_sources`).

    Returns:
        ``(sources, partitions read)``.

    Raises:
        TargetError: no raw teleop partition in the lake, or a raw manifest without rights.
        FileNotFoundError / TeleopFormatError: from the raw loader.
    """
    parts = list(partitions) if partitions else raw_teleop_partitions(lake)
    if not parts:
        raise TargetError(f"no raw teleop episodes in the lake ({lake.uri(RAW_TELEOP)}); run the raw_teleop asset")
    return teleop_sources(lake, load_raw_teleop_episodes(lake, parts)), parts
