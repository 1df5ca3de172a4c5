"""Dataset mixtures: weighted co-training over published releases (docs/mixtures.md).

A mixture (spec: :mod:`~hvla_platform.lib.dataset.mixture_spec`) samples several published LeRobot
v3 releases — robot teleop, simulation, action-free human video, rollouts — with weights, the way
co-training recipes mix datasets (EgoHumanoid's human + robot co-training, Octo/OXE's per-dataset
sample weights, openpi's padding of state and action to the model's width). It is published as
``mixtures/<name>/<mixture id>/`` (:func:`~hvla_platform.lib.core.keys.mixture_prefix`) holding::

    sampling_weights.parquet   one row per episode sampled: source, release, episode index,
                               frames, LeRobot's first global index, its draw probability
                               (core/tables.py mixture_weights_schema)
    README.md                  the dataset card: sources, versions, roles, weights, shares,
                               episode/frame counts, feature mapping, rights
    spec.yaml                  the spec as validated (canonical form)
    _hvla_manifest.json        MixtureManifest: inputs = the component releases (lineage)

**References, not a copy.** The frames stay in the component releases (immutable versions, so a
reference always means the same data): a materialised copy would duplicate every video, and one
LeRobot dataset cannot hold sources whose cameras, resolutions and action widths differ without
re-encoding and padding them on disk. The trainer reads each component with LeRobot
(:class:`MixtureReader`) and the mapping is applied per item, as openpi's data transforms do.

**What a mixture refuses** (:func:`resolve_mixture`, one line each): an unknown release (did you
mean), an unpublished version, a source that does not allow every intended use (naming it and the
uses), past its retention date, flagged by a consent withdrawal, or holding a withdrawn episode;
customers mixed without a ``cross_customer_grant`` naming all of them; sources whose vector
features (``action``, ``observation.state``) differ in width or joint names without a
``feature_map`` stating how each source fills the mixture feature; a source wider than the
target; a feature map naming a feature the release lacks; action sources at different fps; a
robot role without an action feature; a loss a source cannot supervise.

**How embodiments meet.** Each vector feature of the mixture is zero-padded to the widest source
(or ``target.action_dim`` / ``state_dim``) and carries a mask feature ``<feature>_mask`` (D,) bool,
True on the dimensions the source fills (its first d); each camera slot carries ``<slot>_mask``
() bool. An action-free source has ``action_mask`` all False and supervises ``latent_action``
only (:data:`~hvla_platform.lib.dataset.mixture_spec.LOSSES`).

**Sampling.** A source's share is ``weight / Σ weights`` exactly. Within a source every frame is
equally likely (``within_source: frames``) or every episode (``episodes``). :class:`MixtureSampler`
draws (source, episode, frame) by these probabilities with a seeded NumPy generator.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from hvla_platform.lib.core import features
from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.keys import LEROBOT, MIXTURE_SPECS, MIXTURES, mixture_prefix, mixture_spec_key
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import (
    Content,
    InputRef,
    LeRobotDatasetManifest,
    MixtureManifest,
    Published,
    fingerprint,
    load_manifest,
    publish_if_changed,
    require_manifest,
)
from hvla_platform.lib.core.rights import Rights, RightsError, combine_rights, uses_blocked
from hvla_platform.lib.core.suggest import UnknownIdError, did_you_mean
from hvla_platform.lib.core.tables import WEIGHT_SUM_TOLERANCE, check_mixture_weights, read_mixture_weights
from hvla_platform.lib.core.withdrawals import artifact_flags, flag_summary, revoked_episodes
from hvla_platform.lib.dataset.lerobot_release import DEFAULT_VIDEO_BACKEND
from hvla_platform.lib.dataset.mixture_spec import ACTION_ROLES, ROLES, MixtureSource, MixtureSpec, MixtureSpecError
from hvla_platform.lib.dataset.versions import parse_version_id, version_id

#: The weights table's file in a mixture artifact.
WEIGHTS_FILE = "sampling_weights.parquet"
CARD_FILE = "README.md"
SPEC_FILE = "spec.yaml"
#: LeRobot's bookkeeping columns: never a mixture feature.
LEROBOT_INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
#: Suffix of the mask feature of a mixture feature (``action_mask``, ``observation.images.head_mask``).
MASK_SUFFIX = "_mask"
#: The target dimension a spec may set, per vector feature.
_TARGET_DIM = {features.ACTION: "action_dim", features.STATE: "state_dim"}
_VIDEO_DTYPES = ("video", "image")


class MixtureError(ValueError):
    """A mixture cannot be built as specified (one line: which source, which feature, why)."""


# ---- the published releases ----------------------------------------------------------------------
def published_releases(lake: Lake) -> dict[str, list[LeRobotDatasetManifest]]:
    """Every published LeRobot release of the lake, ``{spec name: [manifests by version]}``
    (``spec_name`` of the manifest, or its ``release`` without ``.<n>``)."""
    out: dict[str, list[LeRobotDatasetManifest]] = {}
    for prefix in lake.list_artifacts(LEROBOT):
        m = load_manifest(lake, prefix, LeRobotDatasetManifest)
        if m is None:
            continue
        name = m.spec_name or parse_version_id(m.release)[0]
        out.setdefault(name, []).append(m)
    for versions in out.values():
        versions.sort(key=lambda m: (m.version, m.created_at))
    return out


def resolve_release(catalog: Mapping[str, list[LeRobotDatasetManifest]], source: MixtureSource
                    ) -> tuple[LeRobotDatasetManifest, bool]:
    """The release version a source names and whether it was pinned: ``<name>`` or
    ``<name>@latest`` → the newest published version (not pinned); ``<name>@<n>`` or the version id
    ``<name>.<n>`` → version n (pinned).

    Raises:
        UnknownIdError: no release of that name (did you mean), or no such published version (the
            message lists the published ones).
    """
    ref, at = source.release_name, source.release_at
    name, n = (ref, None) if ref in catalog else parse_version_id(ref)
    if name != ref and name in catalog and at is not None:
        raise UnknownIdError(f"source {source.name}: release {source.release!r} names a version twice; write "
                             f"{name}@{n} or {ref}")
    if name not in catalog:
        known = sorted(set(catalog) | {m.release for ms in catalog.values() for m in ms})
        raise UnknownIdError(f"source {source.name}: unknown release {ref!r}{did_you_mean(ref, known)}; a mixture "
                             "takes published releases (`hvla release build NAME` publishes one)")
    versions = catalog[name]
    if name == ref and at not in (None, "latest"):
        n = int(at)
    if n is None:
        return versions[-1], False
    for m in versions:
        if m.version == n:
            return m, True
    raise UnknownIdError(f"source {source.name}: release {name} has no published version {n} (published: "
                         f"{', '.join(m.release for m in versions)})")


# ---- resolution ----------------------------------------------------------------------------------
@dataclass
class EpisodeRow:
    """One episode a source contributes (a row of the weights table before weighting)."""

    episode_index: int
    episode_id: str | None
    split: str
    num_frames: int
    dataset_from_index: int


@dataclass
class ResolvedSource:
    """A source bound to its published release.

    Attributes:
        spec: the source as written.
        manifest: the release version it resolved to; ``pinned`` whether the spec named it.
        role: the role used; ``role_from``: ``spec``, ``release`` (its manifest's ``source_kind``
            or teleop derivation, :func:`release_role`) or ``default`` (``human_video`` for an
            action-free source, else ``robot_teleop``).
        feature_map: ``{source feature: mixture feature}`` in effect; ``explicit`` the mixture
            features the spec's ``feature_map`` names (an implicit identity is not a statement).
        unused: source features the mixture does not use.
        action_free: the source fills no ``action``.
        losses: the losses it supervises.
        episodes: the episodes it contributes (its split).
    """

    spec: MixtureSource
    manifest: LeRobotDatasetManifest
    pinned: bool
    role: str
    role_from: str
    feature_map: dict[str, str]
    explicit: set[str]
    unused: list[str]
    action_free: bool
    losses: list[str]
    episodes: list[EpisodeRow] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The source's name in the mixture."""
        return self.spec.name

    @property
    def rights(self) -> Rights:
        """The release's rights."""
        return self.manifest.rights_obj

    @property
    def num_frames(self) -> int:
        """Frames of the episodes it contributes."""
        return sum(e.num_frames for e in self.episodes)

    def feature(self, name: str) -> dict[str, Any]:
        """The release's ``feature_schema`` entry of source feature ``name``."""
        return self.manifest.feature_schema["features"][name]

    def source_of(self, target: str) -> str | None:
        """The source feature that fills mixture feature ``target``, or None."""
        return next((s for s, t in self.feature_map.items() if t == target), None)


@dataclass
class ResolvedMixture:
    """A spec resolved against the lake: every source bound, features and rights decided.

    Attributes:
        spec: the spec.
        sources: the resolved sources in spec order.
        target_features: :attr:`~hvla_platform.lib.core.manifest.MixtureManifest.target_features`.
        dims: ``{source name: {mixture vector feature: [d, D]}}``.
        fps: the action sources' common fps (None without an action source, or when they differ
            under ``mixed_fps: per_source``).
        rights: the mixture's rights (:func:`~hvla_platform.lib.core.rights.combine_rights` of the sources').
        shares: ``{source name: weight / Σ weights}``.
    """

    spec: MixtureSpec
    sources: list[ResolvedSource]
    target_features: dict[str, dict[str, Any]]
    dims: dict[str, dict[str, list[int]]]
    fps: float | None
    rights: Rights
    shares: dict[str, float]


def _shape(feature: Mapping[str, Any]) -> str:
    return "(" + ", ".join(map(str, feature["shape"])) + ("," if len(feature["shape"]) == 1 else "") + ")"


def _bind_features(src: MixtureSource, m: LeRobotDatasetManifest) -> tuple[dict[str, str], set[str], list[str]]:
    """(feature map in effect, explicitly mapped mixture features, unused source features)."""
    feats = {k: v for k, v in m.feature_schema.get("features", {}).items() if k not in LEROBOT_INDEX_FEATURES}
    if src.feature_map is None:
        fmap = {k: k for k in feats if k in (features.ACTION, features.STATE, features.LOCOMOTION_COMMAND)
                or k.startswith(features.IMAGE_PREFIX)}
        explicit: set[str] = set()
    else:
        unknown = [k for k in src.feature_map if k not in feats]
        if unknown:
            raise MixtureError(
                f"source {src.name}: feature_map names " + ", ".join(
                    f"{k!r}{did_you_mean(k, feats)}" for k in unknown) + f", not a feature of release {m.release} "
                f"(its features: {', '.join(sorted(feats))})")
        fmap = dict(src.feature_map)
        explicit = set(fmap.values())
    for s, t in fmap.items():
        is_video = str(feats[s]["dtype"]) in _VIDEO_DTYPES
        if is_video != t.startswith(features.IMAGE_PREFIX):
            what = "a camera" if is_video else f"a {feats[s]['dtype']} vector {_shape(feats[s])}"
            raise MixtureError(f"source {src.name}: feature_map maps {s!r} ({what}) onto {t!r}: cameras map onto "
                               f"{features.IMAGE_PREFIX}<slot>, vectors onto action / observation.state / "
                               f"{features.LOCOMOTION_COMMAND}")
        if not is_video and len(feats[s]["shape"]) != 1:
            raise MixtureError(f"source {src.name}: {s!r} has shape {_shape(feats[s])}; only 1-D vectors are mixed")
    return fmap, explicit, sorted(set(feats) - set(fmap))


def release_role(m: LeRobotDatasetManifest) -> str | None:
    """The role a release's manifest states, or None: its ``source_kind`` when that is one of
    :data:`~hvla_platform.lib.dataset.mixture_spec.ROLES` (video releases say ``human_video``),
    ``robot_teleop`` for a seed-003 teleop target (``derivation.source == "teleop"``)."""
    kind = str(getattr(m, "source_kind", "") or "")
    if kind in ROLES:
        return kind
    if (getattr(m, "derivation", None) or {}).get("source") == "teleop":
        return "robot_teleop"
    return None


def _role(src: MixtureSource, action_free: bool, m: LeRobotDatasetManifest) -> tuple[str, str]:
    """(role, where it came from: ``spec``, ``release`` (its manifest) or ``default``: human_video
    for an action-free source, else robot_teleop)."""
    stated = release_role(m)
    if src.role is not None:
        if stated is not None and stated != src.role:
            raise MixtureError(f"source {src.name}: role {src.role} contradicts release {m.release}, whose manifest "
                               f"says {stated}; a mixture does not relabel where data comes from")
        if src.role in ACTION_ROLES and action_free:
            raise MixtureError(f"source {src.name}: role {src.role} needs an action feature, and release {m.release} "
                               "has none mapped onto 'action' (an action-free source is human_video: it supervises "
                               "latent_action only)")
        return src.role, "spec"
    if stated is not None:
        if stated in ACTION_ROLES and action_free:
            raise MixtureError(f"source {src.name}: release {m.release} is {stated} data but its feature_map maps no "
                               "'action' (map it, or declare the source's losses explicitly)")
        return stated, "release"
    return ("human_video" if action_free else "robot_teleop"), "default"


def _losses(src: MixtureSource, action_free: bool, has_camera: bool) -> list[str]:
    supported = ([] if action_free else ["action"]) + (["latent_action"] if has_camera else [])
    if src.losses is None:
        if not supported:
            raise MixtureError(f"source {src.name}: supervises nothing (no action and no camera mapped)")
        return supported
    bad = [loss for loss in src.losses if loss not in supported]
    if bad:
        why = {"action": "it fills no 'action' (action-free)", "latent_action": "it maps no camera"}
        raise MixtureError(f"source {src.name}: cannot supervise {', '.join(bad)}: "
                           + "; ".join(why[b] for b in bad))
    return list(src.losses)


def _episode_rows(lake: Lake, m: LeRobotDatasetManifest, split: str, source: str) -> list[EpisodeRow]:
    """The episodes of a release's split from LeRobot's own episode metadata
    (``meta/episodes/chunk-*/file-*.parquet``: ``episode_index``, ``length``, ``dataset_from_index``)."""
    keys = sorted(k for k in lake.list_keys(f"{m.artifact_key}/meta/episodes") if k.endswith(".parquet"))
    rows: dict[int, tuple[int, int]] = {}
    for key in keys:
        # read on this thread (ParquetFile, use_threads=False), not with pq.read_table: read_table's
        # dataset scanner lets go of the buffer (which wraps the Python bytes, so letting go takes the
        # GIL) on one of Arrow's pool threads, after it returns; when the process exited right after
        # (a refused mixture) that thread met interpreter shutdown and aborted the process
        # ("terminate called without an active exception", exit 134; apache/arrow#34314)
        t = pq.ParquetFile(pa.BufferReader(lake.read_bytes(key))).read(
            columns=["episode_index", "length", "dataset_from_index"], use_threads=False)
        for i, n, start in zip(*(t.column(c).to_pylist() for c in ("episode_index", "length", "dataset_from_index"))):
            rows[int(i)] = (int(n), int(start))
    if len(rows) != m.num_episodes:
        raise MixtureError(f"source {source}: release {m.release} lists {len(rows)} episode(s) in meta/episodes, its "
                           f"manifest {m.num_episodes}")
    held = set(m.heldout_episode_indices)
    if split == "train":
        if not m.train_episode_indices:
            raise MixtureError(f"source {source}: release {m.release} records no train split; use split: all")
        wanted = sorted(m.train_episode_indices)
    else:
        wanted = sorted(rows)
    ids = {i: e for e, i in m.episode_index.items()}
    out = []
    for i in wanted:
        n, start = rows[i]
        if n > 0:
            out.append(EpisodeRow(i, ids.get(i), "heldout" if i in held else "train", n, start))
    if not out:
        raise MixtureError(f"source {source}: release {m.release} has no episode with frames in split {split}")
    return out


def _check_rights(spec: MixtureSpec, sources: list[ResolvedSource], lake: Lake, today: dt.date) -> Rights:
    named = {s.name: s.rights for s in sources}
    blocked = uses_blocked(named, spec.intended_uses)
    if blocked:
        detail = "; ".join(f"source {n} (release {next(s.manifest.release for s in sources if s.name == n)}) does "
                           f"not allow {', '.join(u)} (it allows {', '.join(sorted(named[n].allowed_uses)) or 'nothing'})"
                           for n, u in blocked.items())
        raise RightsError(f"mixture {spec.name}: intended use(s) {', '.join(spec.intended_uses)} refused: {detail}")
    for s in sources:
        if s.rights.is_expired(today):
            raise RightsError(f"mixture {spec.name}: source {s.name} (release {s.manifest.release}) is past its "
                              f"retention date {s.rights.retention_until.isoformat()}")
        flag = artifact_flags(lake, s.manifest.artifact_key)
        if flag is not None:
            raise RightsError(f"mixture {spec.name}: source {s.name} (release {s.manifest.release}) is flagged "
                              f"{flag_summary(flag)}; pin a version built after the withdrawal")
    revoked = revoked_episodes(lake)
    for s in sources:
        gone = sorted(e.episode_id for e in s.episodes if e.episode_id in revoked)
        if gone:
            raise RightsError(f"mixture {spec.name}: source {s.name} (release {s.manifest.release}) holds withdrawn "
                              f"episode(s) {gone[:3]}: {revoked[gone[0]]}")
    rights = combine_rights(named.values())
    if len(rights.customers) > 1:
        grant = spec.cross_customer_grant
        if not grant or not set(rights.customers) <= set(grant["customers"]):
            by = "; ".join(f"{s.name}: {', '.join(sorted(s.rights.customers))}" for s in sources)
            missing = sorted(set(rights.customers) - set(grant["customers"] if grant else ()))
            raise RightsError(f"mixture {spec.name} would mix customers ({by}) without a cross-customer grant "
                              f"covering {missing}; add cross_customer_grant {{reference, granted_by, customers}}")
    return rights


def _vector_targets(spec: MixtureSpec, sources: list[ResolvedSource]
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, list[int]]]]:
    """Target vector features and per-source dims, refusing unstated mixes of shapes or names."""
    targets: dict[str, dict[str, Any]] = {}
    dims: dict[str, dict[str, list[int]]] = {s.name: {} for s in sources}
    names = sorted({t for s in sources for t in s.feature_map.values() if not t.startswith(features.IMAGE_PREFIX)})
    for t in names:
        providers = [(s, s.feature(s.source_of(t))) for s in sources if s.source_of(t) is not None]
        kinds = {(tuple(f["shape"]), tuple(f.get("names") or ())) for _s, f in providers}
        if len(kinds) > 1:
            implicit = [s.name for s, _f in providers if t not in s.explicit]
            if implicit:
                a, fa = providers[0]
                b, fb = next((s, f) for s, f in providers[1:]
                             if (tuple(f["shape"]), tuple(f.get("names") or ())) != (tuple(fa["shape"]),
                                                                                    tuple(fa.get("names") or ())))
                how = ("differ" if fa["shape"] != fb["shape"] else "have the same width but different names "
                       f"({(fa.get('names') or ['?'])[0]}… vs {(fb.get('names') or ['?'])[0]}…)")
                raise MixtureError(
                    f"mixture {spec.name}: {a.name} {a.source_of(t)} {_shape(fa)} and {b.name} {b.source_of(t)} "
                    f"{_shape(fb)} {how} and no feature_map maps them (not stated by: {', '.join(implicit)}); give each "
                    f"source a feature_map naming which of its features fills {t!r} — it is zero-padded to the widest "
                    f"with {t}{MASK_SUFFIX}")
        widest = max(int(f["shape"][0]) for _s, f in providers)
        width = getattr(spec, _TARGET_DIM[t]) if t in _TARGET_DIM and getattr(spec, _TARGET_DIM[t]) else widest
        for s, f in providers:
            d = int(f["shape"][0])
            if d > width:
                raise MixtureError(f"mixture {spec.name}: source {s.name} {s.source_of(t)} {_shape(f)} is wider than "
                                   f"the target {t} ({width},) ({_TARGET_DIM.get(t, t)})")
            dims[s.name][t] = [d, width]
        targets[t] = {"dtype": "float32", "shape": [width], "mask": t + MASK_SUFFIX,
                      "padding": "zeros after the source's dimensions"}
        targets[t + MASK_SUFFIX] = {"dtype": "bool", "shape": [width], "mask": None,
                                    "padding": f"True on the dimensions the source fills in {t}"}
    return targets, dims


def resolve_mixture(lake: Lake, spec: MixtureSpec, *, today: dt.date | None = None) -> ResolvedMixture:
    """Bind every source of ``spec`` to its published release and decide features and rights.

    Raises:
        UnknownIdError: a source names an unknown release or an unpublished version.
        MixtureError: features cannot be combined as specified (module docstring), or a release's
            episode metadata disagrees with its manifest.
        RightsError: an intended use is not allowed by a source (naming it), a source is past
            retention, flagged or holds a withdrawn episode, or customers are mixed without a grant.
    """
    today = today or dt.date.today()
    catalog = published_releases(lake)
    sources: list[ResolvedSource] = []
    for src in spec.sources:
        m, pinned = resolve_release(catalog, src)
        fmap, explicit, unused = _bind_features(src, m)
        action_free = features.ACTION not in fmap.values()
        role, role_from = _role(src, action_free, m)
        has_camera = any(t.startswith(features.IMAGE_PREFIX) for t in fmap.values())
        rs = ResolvedSource(spec=src, manifest=m, pinned=pinned, role=role, role_from=role_from, feature_map=fmap,
                            explicit=explicit, unused=unused, action_free=action_free,
                            losses=_losses(src, action_free, has_camera))
        rs.episodes = _episode_rows(lake, m, src.split, src.name)
        sources.append(rs)
    fps_of = {s.name: float(s.manifest.fps) for s in sources if not s.action_free}
    mixed = len(set(fps_of.values())) > 1
    if mixed and spec.mixed_fps == "refuse":
        detail = " and ".join(f"{n} at {f:g} fps" for n, f in fps_of.items())
        raise MixtureError(f"mixture {spec.name}: {detail}: an action chunk would span different times per step; build "
                           "the action sources' releases at one fps (release spec `fps`), or state `mixed_fps: "
                           "per_source` — a mixture does not resample")
    rights = _check_rights(spec, sources, lake, today)
    targets, dims = _vector_targets(spec, sources)
    for t in sorted({t for s in sources for t in s.feature_map.values() if t.startswith(features.IMAGE_PREFIX)}):
        targets[t] = {"dtype": "video", "shape": None, "mask": t + MASK_SUFFIX,
                      "padding": "absent when the source has no such camera (decoded at the source's own size)"}
        targets[t + MASK_SUFFIX] = {"dtype": "bool", "shape": [], "mask": None,
                                    "padding": "True when the source fills the camera slot"}
    total = sum(s.weight for s in spec.sources)
    shares = {s.name: s.spec.weight / total for s in sources}
    return ResolvedMixture(spec=spec, sources=sources, target_features=targets, dims=dims,
                           fps=None if mixed else next(iter(fps_of.values()), None), rights=rights, shares=shares)


# ---- the weights table ---------------------------------------------------------------------------
def weights_rows(res: ResolvedMixture) -> list[dict[str, Any]]:
    """The per-episode sampling weights (one dict per row of
    :func:`~hvla_platform.lib.core.tables.mixture_weights_schema`): a source's share spread over its
    frames (``within_source: frames``) or its episodes (``episodes``)."""
    rows = []
    for s in res.sources:
        share, frames, n = res.shares[s.name], s.num_frames, len(s.episodes)
        for e in s.episodes:
            w = share * e.num_frames / frames if res.spec.within_source == "frames" else share / n
            rows.append({"source": s.name, "release": s.manifest.release, "role": s.role,
                         "episode_index": e.episode_index, "episode_id": e.episode_id, "split": e.split,
                         "num_frames": e.num_frames, "dataset_from_index": e.dataset_from_index,
                         "episode_weight": w, "frame_weight": w / e.num_frames, "action_free": s.action_free})
    return rows


def weights_frame(rows: list[dict[str, Any]], *, where: str) -> Any:
    """``rows`` as a polars DataFrame with the schema's dtypes, validated.

    Raises:
        TableError: the rows do not match :func:`~hvla_platform.lib.core.tables.mixture_weights_schema`.
    """
    # deferred: polars is imported on first use (core/tables.py: ~0.4 s with pandera)
    import polars as pl

    schema = {"source": pl.String, "release": pl.String, "role": pl.String, "episode_index": pl.Int64,
              "episode_id": pl.String, "split": pl.String, "num_frames": pl.Int64, "dataset_from_index": pl.Int64,
              "episode_weight": pl.Float64, "frame_weight": pl.Float64, "action_free": pl.Boolean}
    return check_mixture_weights(pl.DataFrame(rows, schema=schema), where=where)


# ---- the card ------------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def mixture_card(res: ResolvedMixture, mixture_id: str, version: int) -> str:
    """The dataset card (markdown) of a mixture version: sources (release version and whether it
    was pinned, role, weight, effective and natural share, episodes, frames, fps, losses), the
    feature mapping with padding and masks, unused features, and the rights."""
    spec, total_frames = res.spec, sum(s.num_frames for s in res.sources)
    lines = [f"# Mixture {mixture_id}", "",
             f"`{spec.repo_id}` — version {version} of mixture `{spec.name}` (immutable). "
             + (spec.description or ""), "",
             f"- Intended use(s): {', '.join(spec.intended_uses)} (every source allows each)",
             f"- Within a source: every {spec.within_source[:-1]} equally likely; sampler seed {spec.seed}",
             f"- Action fps: {res.fps:g}" if res.fps is not None else (
                 "- Action fps: per source (`mixed_fps: per_source`: an action chunk of H steps spans H / fps "
                 "seconds of each source; see the sources' fps)" if spec.mixed_fps == "per_source"
                 and any(not s.action_free for s in res.sources) else "- Action fps: (no action source)"),
             f"- Episodes: {sum(len(s.episodes) for s in res.sources)}, frames: {total_frames}",
             "- Frames are not copied: each source is read from its release (references to immutable versions).",
             "", "## Sources", "",
             "| source | release | pinned | role | weight | effective share | natural share | episodes | frames | "
             "fps | action-free | losses |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in res.sources:
        lines.append(f"| {s.name} | `{s.manifest.release}` (`{s.manifest.repo_id}`) | "
                     f"{'yes' if s.pinned else 'no: latest at build'} | {s.role}"
                     f"{ {'spec': '', 'release': ' (from release)', 'default': ' (default)'}[s.role_from]} | "
                     f"{s.spec.weight:g} | "
                     f"{_pct(res.shares[s.name])} | {_pct(s.num_frames / total_frames)} | {len(s.episodes)} "
                     f"({s.spec.split}) | {s.num_frames} | {s.manifest.fps:g} | {'yes' if s.action_free else 'no'} | "
                     f"{', '.join(s.losses)} |")
    lines += ["", "Effective share = weight / Σ weights: the fraction of draws from the source. Natural share = its "
              "fraction of the frames (what uniform sampling over the concatenated data would give).", "",
              "## Feature mapping", "",
              "| source | source feature | shape | mixture feature | dims filled |", "|---|---|---|---|---|"]
    for s in res.sources:
        for src_f, t in sorted(s.feature_map.items(), key=lambda kv: kv[1]):
            d = res.dims[s.name].get(t)
            filled = f"{d[0]} of {d[1]} (zero-padded, `{t}{MASK_SUFFIX}`)" if d else "camera slot"
            lines.append(f"| {s.name} | `{src_f}` | {_shape(s.feature(src_f))} | `{t}` | {filled} |")
        if s.unused:
            lines.append(f"| {s.name} | not used: {', '.join(f'`{u}`' for u in s.unused)} | | | |")
    lines += ["", "Mixture features (as the reader returns them):", ""]
    for t, f in res.target_features.items():
        shape = "per source" if f["shape"] is None else "(" + ", ".join(map(str, f["shape"])) + ")"
        lines.append(f"- `{t}` {f['dtype']} {shape}: {f['padding']}")
    r = res.rights.to_dict()
    lines += ["", "## Rights", "",
              "Computed over all sources: allowed uses = intersection, owners / consents / licenses / customers = "
              "union, retention = earliest, human video and customer environment = any.", "",
              f"- Allowed uses: {', '.join(r['allowed_uses']) or '(none)'}",
              f"- Data owners: {', '.join(r['data_owners'])}", f"- Licenses: {', '.join(r['licenses'])}",
              f"- Consent references: {', '.join(r['consent_refs']) or '(none)'}",
              f"- Customers: {', '.join(r['customers'])}; sites: {', '.join(r['sites'])}",
              f"- Retention until: {r['retention_until']}",
              f"- Contains human video: {'yes' if r['contains_human_video'] else 'no'}; customer environment: "
              f"{'yes' if r['contains_customer_environment'] else 'no'}", "",
              "| source | allowed uses | retention until | human video |", "|---|---|---|---|"]
    for s in res.sources:
        sr = s.rights
        lines.append(f"| {s.name} | {', '.join(sorted(sr.allowed_uses))} | {sr.retention_until.isoformat()} | "
                     f"{'yes' if sr.contains_human_video else 'no'} |")
    if spec.cross_customer_grant:
        g = spec.cross_customer_grant
        lines += ["", f"Customers mixed under grant {g['reference']} by {g['granted_by']}: {', '.join(g['customers'])}."]
    lines += ["", "## Reading it", "", "```python",
              "from hvla_platform.lib.dataset.mixture import open_mixture",
              f"with open_mixture(lake, '{spec.name}') as reader:",
              "    for draw in reader.sampler().draw(256).records():",
              "        item = reader.item(draw)  # padded features, *_mask, source, losses", "```", ""]
    return "\n".join(lines)


# ---- registering and building ------------------------------------------------------------------
def register_mixture(lake: Lake, text: str | bytes, *, source: str = "mixture spec") -> MixtureSpec:
    """Validate a mixture spec (the file alone) and store it under ``mixture-specs/<name>.yaml``.

    Raises:
        MixtureSpecError: the spec is invalid.
    """
    spec = MixtureSpec.from_yaml(text, source=source)
    lake.write_bytes(mixture_spec_key(spec.name), text.encode() if isinstance(text, str) else text)
    return spec


def registered_mixtures(lake: Lake) -> list[str]:
    """Names of the registered mixture specs, sorted."""
    n = len(MIXTURE_SPECS) + 1
    return sorted(k[n:-len(".yaml")] for k in lake.list_keys(MIXTURE_SPECS) if k.endswith(".yaml"))


def load_mixture_spec(lake: Lake, name: str) -> MixtureSpec:
    """The registered spec of mixture ``name``.

    Raises:
        UnknownIdError: no such mixture (did you mean).
        MixtureSpecError: the stored spec is invalid or names another mixture.
    """
    key = mixture_spec_key(name)
    if not lake.exists(key):
        raise UnknownIdError(f"unknown mixture {name!r}{did_you_mean(name, registered_mixtures(lake))}; register it "
                             "with `hvla mixture register <spec.yaml>`")
    spec = MixtureSpec.from_yaml(lake.read_bytes(key), source=lake.uri(key))
    if spec.name != name:
        raise MixtureSpecError(f"{lake.uri(key)} declares name {spec.name!r}, expected {name!r}")
    return spec


def mixture_versions(lake: Lake, name: str) -> list[MixtureManifest]:
    """The published versions of mixture ``name``, oldest first."""
    out = [m for p in lake.list_artifacts(f"{MIXTURES}/{name}")
           if (m := load_manifest(lake, p, MixtureManifest)) is not None and m.name == name]
    return sorted(out, key=lambda m: m.version)


def latest_mixture(lake: Lake, name: str) -> MixtureManifest:
    """The newest published version of mixture ``name``.

    Raises:
        UnknownIdError: the mixture has no published version (did you mean, over published mixtures).
    """
    found = mixture_versions(lake, name)
    if not found:
        names = {p.split("/")[1] for p in lake.list_artifacts(MIXTURES)}
        raise UnknownIdError(f"mixture {name!r} has no published version{did_you_mean(name, names)}; build it with "
                             f"`hvla mixture build {name}`")
    return found[-1]


@dataclass
class MixtureBuild(Published):
    """:class:`~hvla_platform.lib.core.manifest.Published` plus the resolution it was built from."""

    resolved: ResolvedMixture | None = None


def build_mixture(lake: Lake, spec: MixtureSpec, *, today: dt.date | None = None,
                  progress: Callable[[str], None] | None = None) -> MixtureBuild:
    """Resolve ``spec`` (:func:`resolve_mixture`) and publish it as a new immutable version
    ``mixtures/<name>/<mixture id>`` with :func:`~hvla_platform.lib.core.manifest.publish_if_changed`
    — unless the latest version has the same fingerprint (the same component release versions,
    by key and manifest hash, and the same spec), which is returned ``cached``.

    Raises:
        UnknownIdError, MixtureError, RightsError: see :func:`resolve_mixture` (nothing is written).
        TableError: the weights table breaks its schema (a bug: nothing is published).
        ImmutableArtifactError: another build published this version meanwhile.
    """
    say = progress or (lambda _m: None)
    res = resolve_mixture(lake, spec, today=today)
    for s in res.sources:
        say(f"source {s.name}: {s.manifest.release} ({'pinned' if s.pinned else 'latest'}), {s.role}, "
            f"share {_pct(res.shares[s.name])}, {len(s.episodes)} episode(s), {s.num_frames} frame(s)"
            + (", action-free" if s.action_free else ""))
    inputs = [InputRef(key=s.manifest.artifact_key, sha256=s.manifest.sha256(), kind="lerobot_dataset",
                       episode_ids=[e.episode_id for e in s.episodes if e.episode_id],
                       extra={"source": s.name, "release": s.manifest.release, "role": s.role,
                              "weight": s.spec.weight})
              for s in res.sources]
    config = {"spec": spec.to_dict(), "spec_sha256": spec.digest(),
              "releases": {s.name: s.manifest.release for s in res.sources}}
    fp = fingerprint([i.to_dict() for i in inputs], config)
    versions = mixture_versions(lake, spec.name)
    if versions and versions[-1].fingerprint == fp:
        latest = versions[-1]
        return MixtureBuild("cached", latest.artifact_key, lake.uri(latest.artifact_key), latest, resolved=res)
    version = versions[-1].version + 1 if versions else 0
    mid = version_id(spec.name, version)
    prefix = mixture_prefix(spec.name, mid)
    rows = weights_rows(res)

    def write(root: Path) -> Content:
        weights_frame(rows, where=f"{prefix}/{WEIGHTS_FILE}").write_parquet(root / WEIGHTS_FILE)
        (root / CARD_FILE).write_text(mixture_card(res, mid, version), encoding="utf-8")
        (root / SPEC_FILE).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False), encoding="utf-8")
        return Content(rights=res.rights, extra={
            "mixture": mid, "name": spec.name, "version": version, "repo_id": spec.repo_id,
            "description": spec.description, "intended_uses": list(spec.intended_uses),
            "within_source": spec.within_source, "seed": spec.seed, "weights_table": WEIGHTS_FILE,
            "fps": res.fps, "mixed_fps": spec.mixed_fps,
            "num_episodes": len(rows), "num_frames": sum(r["num_frames"] for r in rows),
            "target_features": res.target_features,
            "cross_customer_grant": dict(spec.cross_customer_grant) if spec.cross_customer_grant else None,
            "sources": [{
                "name": s.name, "release": s.manifest.release, "requested": s.spec.release, "pinned": s.pinned,
                "prefix": s.manifest.artifact_key, "repo_id": s.manifest.repo_id, "role": s.role,
                "role_from": s.role_from, "weight": s.spec.weight, "share": res.shares[s.name],
                "natural_share": s.num_frames / sum(x.num_frames for x in res.sources), "split": s.spec.split,
                "fps": float(s.manifest.fps), "num_episodes": len(s.episodes), "num_frames": s.num_frames,
                "action_free": s.action_free, "losses": s.losses, "feature_map": s.feature_map,
                "explicit": sorted(s.explicit), "dims": res.dims[s.name],
                "cameras": sorted(t for t in s.feature_map.values() if t.startswith(features.IMAGE_PREFIX)),
                "unused_features": s.unused, "profile": s.manifest.profile, "robot_type": s.manifest.robot_type,
            } for s in res.sources],
        })

    say(f"publishing mixture {mid}: {len(rows)} episode(s) over {len(res.sources)} source(s)")
    published = publish_if_changed(lake, prefix, artifact_type="mixture_release", inputs=inputs, config=config,
                                   write=write, rights=res.rights, immutable=True)
    return MixtureBuild(**vars(published), resolved=res)


# ---- reading: the sampler and the reader --------------------------------------------------------
@dataclass(frozen=True)
class Draw:
    """One sampled frame: ``source`` (name in the mixture), ``release`` (version id),
    ``episode_index`` and ``frame_index`` (in the component LeRobot dataset), ``dataset_index``
    (LeRobot's global item index: the episode's first index + frame), ``action_free``."""

    source: str
    release: str
    episode_index: int
    frame_index: int
    dataset_index: int
    action_free: bool


@dataclass(frozen=True)
class Draws:
    """``n`` draws as arrays: ``row`` (n,) int64 rows of the weights table, ``frame_index`` (n,)
    int64, plus the table they index."""

    table: Any
    row: np.ndarray
    frame_index: np.ndarray

    def sources(self) -> np.ndarray:
        """(n,) object array of source names."""
        return np.asarray(self.table["source"].to_numpy(), dtype=object)[self.row]

    def records(self) -> list[Draw]:
        """The draws as :class:`Draw` records."""
        t = self.table
        src, rel = t["source"].to_list(), t["release"].to_list()
        ep, start, free = t["episode_index"].to_list(), t["dataset_from_index"].to_list(), t["action_free"].to_list()
        return [Draw(src[r], rel[r], int(ep[r]), int(f), int(start[r] + f), bool(free[r]))
                for r, f in zip(self.row.tolist(), self.frame_index.tolist())]


class MixtureSampler:
    """Seeded draws of (source, episode, frame) by a mixture's sampling weights.

    Each draw picks a row (episode) of the weights table with probability ``episode_weight``
    (``numpy.random.Generator.choice``), then a frame uniformly within it, so every frame is drawn
    with probability ``frame_weight`` and a source with its share. Draws are with replacement (an
    infinite stream, as co-training samplers are). The same table and seed give the same draws.

    Args:
        table: the validated weights table (polars DataFrame, :func:`read_mixture_weights`).
        seed: the generator's seed (the mixture's ``seed`` by default in :meth:`MixtureReader.sampler`).
    """

    def __init__(self, table: Any, seed: int = 0):
        self.table = table
        self.seed = seed
        p = table["episode_weight"].to_numpy().astype(np.float64)
        self._p = p / p.sum()  # the table sums to 1 within WEIGHT_SUM_TOLERANCE; renormalise the rounding
        self._frames = table["num_frames"].to_numpy().astype(np.int64)
        self._rng = np.random.default_rng(seed)

    @classmethod
    def from_lake(cls, lake: Lake, manifest: MixtureManifest, seed: int | None = None) -> "MixtureSampler":
        """The sampler of a published mixture version (its weights table read and validated).

        Raises:
            TableError: the table breaks its schema.
        """
        with lake.local_artifact(manifest.artifact_key) as root:
            table = read_mixture_weights(Path(root) / manifest.weights_table)
        return cls(table, manifest.seed if seed is None else seed)

    def draw(self, n: int) -> Draws:
        """``n`` draws (``n`` ≥ 0).

        Raises:
            ValueError: ``n`` < 0.
        """
        if n < 0:
            raise ValueError(f"cannot draw {n} samples")
        row = self._rng.choice(len(self._p), size=n, p=self._p)
        frame = np.floor(self._rng.random(n) * self._frames[row]).astype(np.int64)
        return Draws(self.table, row.astype(np.int64), frame)

    def shares(self) -> dict[str, float]:
        """``{source: probability}`` the sampler draws each source with (Σ over its rows)."""
        out: dict[str, float] = {}
        for s, p in zip(self.table["source"].to_list(), self._p.tolist()):
            out[s] = out.get(s, 0.0) + p
        return out


class MixtureReader:
    """Items of a mixture as a trainer consumes them: each component read with LeRobot's
    ``LeRobotDataset``, its features mapped onto the mixture's, vectors zero-padded with masks.

    Use :func:`open_mixture` (it makes the component datasets local and opens them).
    """

    def __init__(self, manifest: MixtureManifest, table: Any, datasets: Mapping[str, Any]):
        self.manifest = manifest
        self.table = table
        self._datasets = dict(datasets)
        self._sources = {s["name"]: s for s in manifest.sources}

    def sampler(self, seed: int | None = None) -> MixtureSampler:
        """A :class:`MixtureSampler` over this mixture (the mixture's seed by default)."""
        return MixtureSampler(self.table, self.manifest.seed if seed is None else seed)

    def item(self, draw: Draw) -> dict[str, Any]:
        """The mixture's item for ``draw``.

        Returns:
            ``{"source", "release", "role", "action_free", "losses", "task", "episode_index",
            "frame_index"}`` plus, per vector mixture feature F of width D, ``F`` (D,) float32 (the
            source's d dimensions, then zeros) and ``F_mask`` (D,) bool (True on the first d); per
            camera slot S, ``S_mask`` () bool and, when the source fills it, ``S`` (3, H, W) float32
            in [0, 1] as LeRobot decodes it (the source's own size: resizing is the model's transform).

        Raises:
            MixtureError: the dataset's item is not the episode and frame the weights table names.
        """
        src = self._sources[draw.source]
        raw = self._datasets[draw.source][int(draw.dataset_index)]
        ep, fr = int(raw["episode_index"]), int(raw["frame_index"])
        if (ep, fr) != (draw.episode_index, draw.frame_index):
            raise MixtureError(f"source {draw.source}: item {draw.dataset_index} of {draw.release} is episode {ep} "
                               f"frame {fr}, the weights table says episode {draw.episode_index} frame "
                               f"{draw.frame_index}")
        back = {t: s for s, t in src["feature_map"].items()}
        out: dict[str, Any] = {"source": draw.source, "release": draw.release, "role": src["role"],
                               "action_free": src["action_free"], "losses": list(src["losses"]),
                               "task": raw.get("task"), "episode_index": ep, "frame_index": fr}
        for t, f in self.manifest.target_features.items():
            if f["mask"] is None:
                continue
            if f["dtype"] == "video":
                present = t in back
                out[f["mask"]] = np.bool_(present)
                if present:
                    out[t] = np.asarray(raw[back[t]], dtype=np.float32)
                continue
            width = int(f["shape"][0])
            vec, mask = np.zeros(width, np.float32), np.zeros(width, np.bool_)
            if t in back:
                v = np.asarray(raw[back[t]], dtype=np.float32).reshape(-1)
                vec[: v.shape[0]], mask[: v.shape[0]] = v, True
            out[t], out[f["mask"]] = vec, mask
        return out


@contextlib.contextmanager
def open_mixture(lake: Lake, name: str, *, mixture_id: str | None = None,
                 video_backend: str = DEFAULT_VIDEO_BACKEND) -> Iterator[MixtureReader]:
    """A :class:`MixtureReader` over mixture ``name`` (its newest version, or ``mixture_id``):
    the weights table read and validated, each component release made local
    (``lake.local_artifact``) and opened with ``LeRobotDataset(repo_id, root=…)``.

    Raises:
        UnknownIdError: no such mixture or version.
        TableError: the weights table breaks its schema.
    """
    manifest = (latest_mixture(lake, name) if mixture_id is None
                else require_manifest(lake, mixture_prefix(name, mixture_id), MixtureManifest))
    LeRobotDataset = import_lerobot_dataset()
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(lake.local_artifact(manifest.artifact_key))
        table = read_mixture_weights(Path(root) / manifest.weights_table)
        datasets = {}
        for s in manifest.sources:
            local = stack.enter_context(lake.local_artifact(s["prefix"]))
            datasets[s["name"]] = LeRobotDataset(s["repo_id"], root=Path(local), video_backend=video_backend)
        yield MixtureReader(manifest, table, datasets)


def weight_sums(table: Any) -> dict[str, float]:
    """``{source: Σ episode_weight}`` of a weights table (the source's effective share)."""
    out: dict[str, float] = {}
    for s, w in zip(table["source"].to_list(), table["episode_weight"].to_list()):
        out[s] = out.get(s, 0.0) + float(w)
    return out


def weights_consistent(manifest: MixtureManifest, table: Any) -> list[str]:
    """Problems between a mixture's manifest and its weights table read back (empty = consistent):
    Σ episode_weight ≠ 1, a source's Σ ≠ its recorded share, shares not summing to 1, a source
    with no row or rows of a source the manifest does not list."""
    problems = []
    total = float(sum(table["episode_weight"].to_list()))
    if abs(total - 1.0) > WEIGHT_SUM_TOLERANCE:
        problems.append(f"episode weights sum to {total!r}, not 1")
    sums = weight_sums(table)
    shares = {s["name"]: float(s["share"]) for s in manifest.sources}
    if abs(sum(shares.values()) - 1.0) > WEIGHT_SUM_TOLERANCE:
        problems.append(f"recorded shares sum to {sum(shares.values())!r}, not 1")
    for name, share in shares.items():
        got = sums.get(name)
        if got is None:
            problems.append(f"source {name} has no row in the weights table")
        elif abs(got - share) > WEIGHT_SUM_TOLERANCE:
            problems.append(f"source {name}: its rows sum to {got:.12g}, its share is {share:.12g}")
    problems += [f"rows of source {n}, which the manifest does not list" for n in sorted(set(sums) - set(shares))]
    return problems
