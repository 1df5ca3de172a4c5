"""Consent withdrawal and deletion requests (seed 001: consent, deletion requests, retention).

:func:`revoke_consent` carries out a withdrawal, every step landing in the append-only audit log
(``audit/<UTC time>-<id>.json``, write-once objects):

1. records the request (``rights-revocations/<consent>/<time>.json``) with the affected raw
   episodes and every impacted artifact, found by :func:`hvla_platform.lib.lineage.graph.downstream`.
   Every raw source is withdrawn the same way (:data:`~hvla_platform.lib.lineage.records.RAW_TYPES`):
   robot MCAP episodes (``raw-mcap/``, rollouts included), seed-003 teleop episodes (``raw-teleop/``,
   landed under ``landing/_teleop/``) and human video clips (``raw-human-video/``, landed under
   ``landing-human-video/``);
2. marks the impacted releases, norm stats, caches, checkpoints and eval reports *not to be used*
   (``flags/<artifact key>.json``; :func:`artifact_flags` reads them — serving refuses a flagged
   checkpoint, training refuses a flagged release), checkpoints as ``retrain_required``;
3. handles the raw files per ``raw_policy``: ``restrict`` moves the episode's raw, landing and
   quarantine objects to ``restricted/…`` (access-controlled prefix), ``delete`` deletes them, ``keep``
   leaves them (e.g. a legal hold) — before any rebuild, so a re-ingest of a partition no longer
   sees them and a failing rebuild leaves the withdrawal itself done. Nothing else is deleted;
4. from then on every release leaves the episodes out (:func:`revoked_episodes`, used by release
   selection) — and, when ``rebuild``, rebuilds (or removes, when all its episodes are withdrawn)
   each affected HDF5 partition, and rebuilds each impacted release as a new version
   ``<release>-r<N>`` with its norm stats and Robo-DM cache. Only robot releases built from a
   release spec are rebuilt: the teleop targets (LeRobot and RLDS), human video bucket releases and
   mixtures are flagged, not rebuilt; their next build leaves the withdrawn leaves out.

:func:`plan_revocation` computes all of this without changing anything (``hvla rights revoke
--dry-run``); :func:`revoke_consent` carries out exactly that plan. The revocation record keeps
each episode's capture day and robot (``episode_info``) so lineage still counts an episode whose
raw objects are gone (:mod:`hvla_platform.lib.lineage.standing`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import re
import uuid
from dataclasses import dataclass, field
from typing import Callable

import yaml

from hvla_platform.lib.core.keys import (HUMAN_VIDEO_LANDING, LANDING, QUARANTINE, RESTRICTED, REVOCATIONS, flag_key,
                                         spec_key)
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import EpisodesManifest, LeRobotDatasetManifest, require_manifest
from hvla_platform.lib.core.withdrawals import audit, now_utc, withdrawn_episode_records
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.norm_stats_build import build_norm_stats
from hvla_platform.lib.dataset.openpi_export import build_openpi_export
from hvla_platform.lib.dataset.releases import register_release
from hvla_platform.lib.dataset.robodm_build import build_cache
from hvla_platform.lib.dataset.versions import load_release_version
from hvla_platform.lib.lineage.graph import DownstreamHit, LineageError, downstream, load_index
from hvla_platform.lib.lineage.records import CLIP_TYPE, RAW_ROOTS, RAW_TYPE, RAW_TYPES
from hvla_platform.lib.ops.flag_targets import asset_partition
from hvla_platform.lib.processing.build import convert_partition

RAW_POLICIES = ("restrict", "delete", "keep")
_CONSENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: derived artifact types a withdrawal flags, in the order they are flagged and listed (releases of
#: every source, the teleop targets' RLDS twins, release derivatives, mixtures, then training)
_LAYER_ORDER = ("lerobot_dataset", "rlds_dataset", "norm_stats", "robodm_cache", "openpi_export", "mixture_release",
                "checkpoint", "eval_report")
#: where a withdrawn leaf's objects are found: every raw root, the robot / teleop landing area
#: (``landing/``, teleop under ``landing/_teleop/``), the clips' landing area and every quarantine
_OBJECT_ROOTS = (*RAW_ROOTS.values(), LANDING, HUMAN_VIDEO_LANDING, QUARANTINE)


class RevocationError(ValueError):
    """The request is malformed or names a consent no episode carries."""


@dataclass
class RevocationResult:
    """What :func:`revoke_consent` did."""

    consent: str
    episodes: list[str]
    flagged: dict[str, str] = field(default_factory=dict)  # artifact key -> status
    rebuilt_releases: dict[str, str] = field(default_factory=dict)  # old -> new release
    raw_handled: dict[str, list[str]] = field(default_factory=dict)  # episode -> keys moved/deleted
    # episode -> {key: ISO date}: objects the store itself keeps until that date (S3 Object Lock,
    # COMPLIANCE): a delete only hides them (a delete marker); their data cannot be erased before
    raw_held: dict[str, dict[str, str]] = field(default_factory=dict)
    record_key: str = ""


def _next_release_name(lake: Lake, name: str, taken: set[str] = frozenset()) -> str:
    base = re.sub(r"-r\d+$", "", name)
    n = 1
    while lake.exists(spec_key(f"{base}-r{n}")) or f"{base}-r{n}" in taken:
        n += 1
    return f"{base}-r{n}"


@dataclass
class RevocationPlan:
    """What a withdrawal of ``consent`` will change, computed without changing anything
    (:func:`plan_revocation`; ``hvla rights revoke --dry-run`` prints it).

    Attributes:
        consent, reason, by, raw_policy: the request.
        episodes: the withdrawn raw leaf ids (sorted): robot MCAP episodes, teleop episodes and
            human video clips alike (every type of :data:`~hvla_platform.lib.lineage.records.RAW_TYPES`).
        episode_info: ``{episode_id: {"capture_day", "robot_id"}}`` (from the raw manifests; kept in
            the revocation record so lineage can still count them once their raw objects are gone);
            a teleop episode adds ``"raw_type": "raw_teleop_episode", "raw_key"``, a clip has
            ``"device_id"`` instead of ``robot_id`` and ``"raw_type": "raw_human_video_clip", "raw_key"``.
        flags: ``{artifact key: (artifact type, "do_not_use" | "retrain_required")}``, in layer order:
            releases of every source (robot spec releases, teleop targets, human video buckets),
            RLDS datasets, norm stats, caches, openpi exports, mixtures, checkpoints, eval reports.
        raw_partitions: ``{"<day>|<robot>": [withdrawn episode ids]}`` for robot MCAP episodes (the
            ``raw_mcap`` partitions); ``{"raw-teleop:<day>|<robot>" | "raw-human-video:<day>|<device>":
            [ids]}`` for the other sources.
        raw_objects: ``{episode_id: [lake keys]}``: the raw, landing and quarantine objects
            ``raw_policy`` moves to ``restricted/`` (``restrict``), deletes (``delete``) or keeps (``keep``).
        partitions: ``{episodes-hdf5 key: "rebuild" | "remove"}`` (empty without rebuild).
        releases: ``{release version: the new version name}`` to rebuild (empty without rebuild):
            robot releases built from a release spec only; the teleop targets, human video bucket
            releases, RLDS datasets and mixtures are flagged, not rebuilt (their next build leaves
            the withdrawn leaves out: their raw objects are gone and the loaders skip withdrawn ids).
    """

    consent: str
    reason: str
    by: str
    raw_policy: str
    episodes: list[str]
    episode_info: dict[str, dict[str, str | None]]
    flags: dict[str, tuple[str, str]]
    raw_partitions: dict[str, list[str]]
    raw_objects: dict[str, list[str]]
    partitions: dict[str, str]
    releases: dict[str, str]
    hits: list[DownstreamHit] = field(default_factory=list, repr=False)


def _check_request(consent: str, reason: str, raw_policy: str) -> None:
    if not _CONSENT_RE.match(consent or ""):
        raise RevocationError(f"consent id {consent!r} is not a valid id")
    if not reason or not reason.strip():
        raise RevocationError("a revocation needs a reason")
    if raw_policy not in RAW_POLICIES:
        raise RevocationError(f"raw_policy must be one of {RAW_POLICIES}, got {raw_policy!r}")


def _episode_info(h: DownstreamHit) -> dict[str, str | None]:
    """What the revocation record keeps of a withdrawn raw leaf (hit of type in ``RAW_TYPES``): robot
    MCAP episodes as before (``capture_day``, ``robot_id``); other sources also name their raw type and
    key, clips their camera ``device_id`` (no robot)."""
    if h.type == RAW_TYPE:
        return {"capture_day": h.info.get("capture_day"), "robot_id": h.info.get("robot_id")}
    who = {"device_id": h.info.get("device_id")} if h.type == CLIP_TYPE else {"robot_id": h.info.get("robot_id")}
    return {"capture_day": h.info.get("capture_day"), **who, "raw_type": h.type, "raw_key": h.key}


def _raw_partition(info: dict[str, str | None]) -> str:
    """The raw partition of a withdrawn leaf as :attr:`RevocationPlan.raw_partitions` names it."""
    raw_type = info.get("raw_type", RAW_TYPE)
    if raw_type == RAW_TYPE:
        return f"{info['capture_day']}|{info['robot_id']}"
    return f"{RAW_ROOTS[str(raw_type)]}:{info['capture_day']}|{info.get('device_id') or info.get('robot_id')}"


def _spec_release(lake: Lake, key: str) -> bool:
    """Whether the LeRobot dataset at ``key`` is a robot release built from a release spec (the
    ``lerobot_dataset`` asset, rebuilt as ``<release>-r<N>``), not a seed-003 teleop target or a
    human video bucket release (other assets; :func:`~hvla_platform.lib.ops.flag_targets.asset_partition`)."""
    m = lake.read_manifest(key)
    return bool(m) and asset_partition(m)[0] == "lerobot_dataset"


def plan_revocation(lake: Lake, consent: str, *, reason: str, by: str | None = None, raw_policy: str = "restrict",
                    rebuild: bool = True, persist_index: bool = True) -> RevocationPlan:
    """What :func:`revoke_consent` with these arguments would change.

    With ``persist_index=False`` (``--dry-run``) it only reads the lake: the lineage index it builds
    is not written back (``_index/lineage/``).

    Raises:
        RevocationError: malformed consent id, empty reason, unknown ``raw_policy``, or no episode
            carries the consent (the message names the closest known consent).
    """
    _check_request(consent, reason, raw_policy)
    try:
        hits = downstream(lake, f"consent:{consent}", index=load_index(lake, persist=persist_index))
    except LineageError as exc:  # names the closest known consent ("did you mean")
        raise RevocationError(str(exc)) from exc
    episodes = sorted({e for h in hits for e in h.episode_ids})
    if not episodes:
        raise RevocationError(f"no episode carries consent {consent!r}")
    if not any(h.type in RAW_TYPES and h.key.startswith(f"{RAW_ROOTS[h.type]}/") for h in hits):
        # only the revocation records (and copies under restricted/) name them now
        prior = sorted({r["revocation"] for e, r in withdrawn_episode_records(lake).items() if e in episodes})
        raise RevocationError(f"consent {consent!r} was already withdrawn ({', '.join(prior)}): no raw episode "
                              "carries it any more")
    info: dict[str, dict[str, str | None]] = {}
    for h in sorted((h for h in hits if h.type in RAW_TYPES), key=lambda h: not h.key.startswith(f"{RAW_ROOTS[h.type]}/")):
        for e in h.episode_ids:  # the live raw leaf first, a restricted/ copy only for what it alone names
            info.setdefault(e, _episode_info(h))
    impacted = sorted((h for h in hits if h.type in _LAYER_ORDER), key=lambda h: (_LAYER_ORDER.index(h.type), h.key))
    raw_partitions: dict[str, list[str]] = {}
    for e in episodes:
        if e in info:
            raw_partitions.setdefault(_raw_partition(info[e]), []).append(e)
    listed = [k for prefix in _OBJECT_ROOTS for k in lake.list_keys(prefix)]
    partitions: dict[str, str] = {}
    releases: dict[str, str] = {}
    if rebuild:
        for h in hits:
            if h.type == "episodes_hdf5":
                every = set(h.episode_ids) >= set(require_manifest(lake, h.key, EpisodesManifest).episode_ids)
                partitions[h.key] = "remove" if every else "rebuild"
        taken: set[str] = set()
        for h in impacted:
            if h.type == "lerobot_dataset" and _spec_release(lake, h.key):
                old = require_manifest(lake, h.key, LeRobotDatasetManifest).release
                releases[old] = _next_release_name(lake, load_release_version(lake, old).spec_name, taken)
                taken.add(releases[old])
    return RevocationPlan(
        consent=consent, reason=reason.strip(), by=by or getpass.getuser(), raw_policy=raw_policy, episodes=episodes,
        episode_info=info,
        flags={h.key: (h.type, "retrain_required" if h.type == "checkpoint" else "do_not_use") for h in impacted},
        raw_partitions=raw_partitions, raw_objects={e: [k for k in listed if f"/{e}/" in k] for e in episodes},
        partitions=partitions, releases=releases, hits=hits)


def revoke_consent(lake: Lake, consent: str, *, reason: str, by: str | None = None, raw_policy: str = "restrict",
                   rebuild: bool = True, progress: Callable[[str], None] | None = None,
                   rebuild_partition: Callable[[str, str], None] | None = None,
                   rebuild_release: Callable[[str], None] | None = None) -> RevocationResult:
    """Carry out a consent withdrawal (see the module docstring for the steps).

    ``rebuild_partition(day, robot)`` / ``rebuild_release(name)`` rebuild an affected HDF5 partition
    / a new release version (its LeRobot dataset, norm stats and cache); by default the plain
    library builders are used, the CLI passes functions that materialize the Dagster assets so the
    rebuilds are runs with checks in the event log.

    Raises:
        RevocationError: malformed consent id, empty reason, unknown ``raw_policy``, or no episode
            carries the consent.
    """
    plan = plan_revocation(lake, consent, reason=reason, by=by, raw_policy=raw_policy, rebuild=rebuild)
    say = progress or (lambda _m: None)
    by, episodes, hits = plan.by, plan.episodes, plan.hits
    impacted = [h for h in hits if h.key in plan.flags]
    at = now_utc()
    record = {"consent": consent, "reason": plan.reason, "by": by, "at": at.isoformat(timespec="seconds"),
              "episodes": episodes, "raw_policy": raw_policy, "episode_info": plan.episode_info,
              "impacted": [{"type": h.type, "key": h.key, "episode_ids": h.episode_ids} for h in impacted]}
    res = RevocationResult(consent=consent, episodes=episodes)
    res.record_key = f"{REVOCATIONS}/{consent}/{at.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:6]}.json"
    lake.write_json(res.record_key, record, write_once=True)
    audit(lake, "consent_revoked", consent=consent, reason=record["reason"], by=by, episodes=episodes,
          impacted=[h.key for h in impacted])
    say(f"consent {consent}: {len(episodes)} episode(s), {len(impacted)} impacted artifact(s)")
    for h in sorted(impacted, key=lambda h: (_LAYER_ORDER.index(h.type), h.key)):
        status = plan.flags[h.key][1]
        flag = {"status": status, "consent": consent, "reason": record["reason"], "by": by,
                "at": record["at"], "episode_ids": h.episode_ids, "revocation": res.record_key}
        lake.write_json(flag_key(h.key), flag)
        res.flagged[h.key] = status
        audit(lake, "artifact_flagged", artifact=h.key, status=status, consent=consent)
    # raw objects first: a rebuild that re-ingests a partition (the CLI's ingest_job) then no longer
    # sees the withdrawn episodes, and a failing rebuild leaves the withdrawal itself carried out
    for ep in episodes:
        handled = []
        held: dict[str, str] = {}
        for k in plan.raw_objects[ep]:
            if raw_policy == "keep":
                continue
            until = lake.retention_until(k)
            if until is not None and until > dt.date.today():
                held[k] = until.isoformat()
            if raw_policy == "restrict":
                lake.write_bytes(f"{RESTRICTED}/{k}", lake.read_bytes(k), write_once=False)
            lake.delete(k)
            handled.append(k)
        res.raw_handled[ep] = handled
        audit(lake, f"raw_{raw_policy}", episode=ep, consent=consent, objects=handled)
        if held:
            res.raw_held[ep] = held
            audit(lake, "raw_held_by_store", episode=ep, consent=consent, retained_until=held,
                  detail="the store's object lock (COMPLIANCE) keeps these versions until the dates given; "
                         "they are hidden now and can only be erased after")
    for pkey, action in plan.partitions.items():  # derived HDF5 rebuilt without the episodes
        _, day, robot = pkey.split("/")
        if action == "remove":
            # every episode of the partition is withdrawn: remove the derived artifact
            # (manifest first, so it is never visible half-deleted)
            keys = lake.list_keys(pkey)
            lake.delete(lake.manifest_key(pkey))
            for k in keys:
                lake.delete(k)
            audit(lake, "episodes_removed", partition=f"{day}|{robot}", consent=consent)
        else:
            (rebuild_partition or (lambda d, r: convert_partition(lake, d, r)))(day, robot)
            audit(lake, "episodes_rebuilt", partition=f"{day}|{robot}", consent=consent)
    for old in plan.releases:
        spec = load_release_version(lake, old)  # the spec that version was built from
        new_name = _next_release_name(lake, spec.spec_name)
        doc = {**spec.to_dict(), "name": new_name,
               "description": f"{spec.description} Rebuilt from {old} without consent {consent} ({record['reason']}).".strip()}
        new_spec = register_release(lake, yaml.safe_dump(doc, sort_keys=False))
        say(f"rebuilding {old} as {new_name} without {len(episodes)} episode(s)")
        if rebuild_release is not None:
            rebuild_release(new_spec.name)
        else:
            built = build_release(lake, new_spec).spec  # the version it published
            build_norm_stats(lake, built)
            build_cache(lake, built)
            build_openpi_export(lake, built)
        res.rebuilt_releases[old] = new_name
        audit(lake, "release_rebuilt", old_release=old, new_release=new_name, consent=consent)
    return res
