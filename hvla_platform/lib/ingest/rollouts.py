"""Seed 000's ``before_retraining_from_runtime`` checklist, run on every landed rollout.

A rollout is a robot recording made by ``hvla deploy --record-rollout`` (``metadata.yaml``
``source: rollout`` with a ``rollout`` block; :mod:`hvla_platform.lib.serving.rollout_recording`).
It lands and is published to the raw layer like any recording (the raw layer is evidence: an
incident must stay reviewable); then :func:`run_rollout_checklist` checks it against the
deployment's runtime-data policy it carries and publishes the result as the artifact
``rollout-checks/<day>/<robot>/<episode>`` (type ``rollout_checklist``), whose manifest inputs are
the raw episode and **the checkpoint that produced the rollout** (lineage).

The four checks (the seed's keys):

``customer_permission_checked``      the policy grants retraining (with a reference), and the
                                     rollout's rights block is the one the policy gives
                                     (:func:`~hvla_platform.lib.formats.recording.runtime_policy.rollout_rights_block`):
                                     uses, owner, retention — not the training data's
``private_frames_filtered``          the redaction the robot applied is the policy's, and no private
                                     frame remains: every frame of a private camera stamped in a
                                     private window is absent (``drop``) or entirely black
                                     (``blackout``; decoded, every pixel 0). The same is verified
                                     on the processed HDF5 episode by :func:`check_episode_private_frames`
``incident_data_labeled``            a rollout that ended in a fault or an emergency stop carries
                                     ``rollout.incident`` (kind = outcome, its cause) and its
                                     ``/safety/events`` topic holds the fault / e-stop event; a
                                     rollout that did not carries no incident label
``deletion_request_process_defined`` the policy names a deletion contact and process, and the rights
                                     give a retention date

**A rollout that fails any check can never enter a training release**: it is kept (raw, its
checklist) as incident evidence only. :func:`rollout_exclusions` is what release selection
(``dataset/releases.py``) asks; a rollout whose checklist has not run is excluded too (fail closed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import h5py
import numpy as np
import yaml

from hvla_platform.lib.core.keys import episodes_prefix, raw_prefix, rollout_check_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import (
    Content,
    InputRef,
    RolloutChecklistManifest,
    load_manifest,
    manifest_sha256,
    publish_if_changed,
)
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.formats.bags.bag import open_bag
from hvla_platform.lib.formats.episode_h5 import EpisodeFormatError, EpisodeReader, decode_frame
from hvla_platform.lib.formats.mcap.errors import RawLogError
from hvla_platform.lib.formats.recording.metadata import (
    ROLLOUT_SOURCE,
    RecordingMetadata,
    RecordingMetadataError,
    parse_recording_metadata,
)
from hvla_platform.lib.formats.recording.profile import DEFAULT_PROFILE, ProfileError, load_profile
from hvla_platform.lib.formats.recording.runtime_policy import rollout_rights_block
from hvla_platform.lib.ingest.landing import METADATA

#: The checklist's checks, in the seed's order (also the names of the Dagster asset checks).
CHECKLIST = ("customer_permission_checked", "private_frames_filtered", "incident_data_labeled",
             "deletion_request_process_defined")
#: Version of the checklist's rules (part of the artifact's fingerprint: a change re-runs it).
CHECKLIST_VERSION = 1
#: Reason code of a rollout a release leaves out (``excluded[episode_id]`` starts with it).
INCIDENT_EVIDENCE_ONLY = "rollout_incident_evidence_only"
#: A frame counts as black when no pixel exceeds this value (0-255; JPEG of an all-zero frame decodes to 0).
BLACK_MAX_LEVEL = 0


def is_rollout(metadata: Any) -> bool:
    """True when a parsed ``metadata.yaml`` says the recording is a rollout (``source: rollout``)."""
    return isinstance(metadata, dict) and metadata.get("source") == ROLLOUT_SOURCE


def _check(passed: bool, detail: str) -> dict[str, Any]:
    return {"passed": bool(passed), "detail": detail}


def _permission(meta: RecordingMetadata) -> dict[str, Any]:
    ro = meta.rollout
    assert ro is not None
    pol = ro.runtime_policy
    perm = pol.retrain_permission
    expected = rollout_rights_block(pol, meta.capture_date)
    got = meta.rights.model_dump() if meta.rights is not None else {}
    differ = [k for k in ("data_owner", "license", "allowed_uses", "retention_until", "customer")
              if got.get(k) != expected[k]]
    if differ:
        return _check(False, f"the rights block is not the runtime-data policy's ({pol.policy_id}): "
                             + "; ".join(f"{k} {got.get(k)!r} (policy: {expected[k]!r})" for k in differ))
    if not perm.granted:
        return _check(False, f"customer {pol.customer} does not permit retraining on this deployment's telemetry "
                             f"(runtime-data policy {pol.policy_id}): incident evidence only")
    return _check(True, f"customer {pol.customer} permits retraining: {perm.reference}"
                        + (f" (granted by {perm.granted_by})" if perm.granted_by else "")
                        + f"; allowed uses {sorted(pol.allowed_uses)}")


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


def _windows_text(windows: Iterable[tuple[float, float]]) -> str:
    return ", ".join(f"[{a:g}, {b:g}) s" for a, b in windows)


def _private_frames(meta: RecordingMetadata, bag_folder: Path) -> dict[str, Any]:
    ro = meta.rollout
    assert ro is not None
    red = ro.runtime_policy.redaction
    if red is None or not red.cameras or not red.windows_s:
        return _check(True, "the runtime-data policy marks no camera frame private")
    applied = ro.redaction
    if applied is None or (applied.rule, list(applied.cameras), [tuple(w) for w in applied.windows_s]) != \
            (red.rule, list(red.cameras), [tuple(w) for w in red.windows_s]):
        return _check(False, f"the robot did not apply the policy's redaction ({red.rule} {red.cameras} in "
                             f"{_windows_text(red.windows_s)}); recorded: "
                             f"{applied.model_dump() if applied is not None else 'none'}")
    try:
        cams = load_profile(meta.profile_name or DEFAULT_PROFILE).cameras
    except ProfileError as exc:
        return _check(False, f"cannot tell the cameras' topics: {exc}")
    unknown = [c for c in red.cameras if c not in cams]
    if unknown:
        return _check(False, f"redaction names camera(s) {unknown} the robot profile does not have ({sorted(cams)})")
    topics = {cams[c].topic: c for c in red.cameras}
    private, remaining = 0, []
    try:
        for m in open_bag(bag_folder).messages(list(topics)):
            cam = topics[m.topic]
            t_s = (_stamp_ns(m.msg) - ro.start_ns) / 1e9
            if not red.is_private(cam, t_s):
                continue
            private += 1
            if red.rule == "drop":
                remaining.append(f"{cam} at {t_s:.3f} s (stored, should be dropped)")
                continue
            level = int(decode_frame(bytes(m.msg.data), "rgb").max())
            if level > BLACK_MAX_LEVEL:
                remaining.append(f"{cam} at {t_s:.3f} s (max level {level})")
    except (RawLogError, EpisodeFormatError) as exc:
        return _check(False, f"cannot read the camera frames: {exc}")
    if remaining:
        return _check(False, f"{len(remaining)} private frame(s) not redacted in {_windows_text(red.windows_s)}: "
                             + "; ".join(remaining[:5]) + (" …" if len(remaining) > 5 else ""))
    what = "dropped (none stored)" if red.rule == "drop" else f"{private} stored, all black"
    return _check(True, f"private frames of {red.cameras} in {_windows_text(red.windows_s)}: "
                        f"{applied.frames_redacted} redacted on the robot, {what}")


def _incident(meta: RecordingMetadata, bag_folder: Path) -> dict[str, Any]:
    ro = meta.rollout
    assert ro is not None
    if ro.outcome not in ("fault", "estop"):
        if ro.incident is not None:
            return _check(False, f"outcome {ro.outcome} but labelled as incident {ro.incident.kind}")
        return _check(True, f"outcome {ro.outcome}: no incident")
    if ro.incident is None or ro.incident.kind != ro.outcome:
        return _check(False, f"the rollout ended in {ro.outcome} ({ro.cause}) but carries "
                             f"{'no incident label' if ro.incident is None else 'incident ' + ro.incident.kind}")
    events = []
    try:
        for m in open_bag(bag_folder).messages([ro.safety_topic]):
            try:
                events.append(json.loads(str(m.msg.data)))
            except json.JSONDecodeError:
                continue
    except RawLogError as exc:
        return _check(False, f"cannot read {ro.safety_topic}: {exc}")
    if ro.outcome == "fault":
        found = any(e.get("event") == "mode" and e.get("mode") == "fault" for e in events)
    else:
        found = any(e.get("event") == "estop" or (e.get("event") == "mode" and e.get("mode") == "estop")
                    for e in events)
    if not found:
        return _check(False, f"labelled {ro.outcome} but {ro.safety_topic} holds no {ro.outcome} event "
                             f"({len(events)} safety event(s))")
    return _check(True, f"incident labelled {ro.incident.kind}: {ro.incident.cause} "
                        f"({len(events)} safety event(s) on {ro.safety_topic})")


def _deletion(meta: RecordingMetadata) -> dict[str, Any]:
    ro = meta.rollout
    assert ro is not None
    d = ro.runtime_policy.deletion
    retention = meta.rights.retention_until if meta.rights is not None else None
    if d is None:
        return _check(False, f"runtime-data policy {ro.runtime_policy.policy_id} defines no deletion process "
                             "(deletion: {contact, process})")
    if not retention:
        return _check(False, "the rights block gives no retention date")
    return _check(True, f"kept until {retention}; deletion requests to {d.contact}: {d.process}")


def check_rollout_recording(bag_folder: Path, metadata: dict, *, source: str = METADATA) -> dict[str, dict[str, Any]]:
    """Run the checklist on a rollout's local files.

    Args:
        bag_folder: the recording folder (or raw episode folder) holding the bag.
        metadata: the parsed ``metadata.yaml``.
        source: names the metadata file in messages.

    Returns:
        ``{check: {"passed": bool, "detail": str}}`` for every name of :data:`CHECKLIST`. Never
        raises for bad input: a metadata file that breaks its contract, or a recording that is not a
        rollout, fails every check with the reason.
    """
    try:
        meta = parse_recording_metadata(metadata, source=source)
        if meta.source != ROLLOUT_SOURCE or meta.rollout is None:
            raise RecordingMetadataError(f"{source}: not a rollout (source {meta.source!r}, "
                                         f"{'no' if meta.rollout is None else 'a'} rollout block)")
    except RecordingMetadataError as exc:
        return {name: _check(False, str(exc)) for name in CHECKLIST}
    return {"customer_permission_checked": _permission(meta),
            "private_frames_filtered": _private_frames(meta, bag_folder),
            "incident_data_labeled": _incident(meta, bag_folder),
            "deletion_request_process_defined": _deletion(meta)}


@dataclass
class RolloutChecklist:
    """The checklist of one rollout episode, as published.

    Attributes:
        episode_id, capture_day, robot_id: the rollout's raw episode.
        checks: ``{check: {"passed", "detail"}}`` (:data:`CHECKLIST`).
        retrain_permitted: every check passed (then the customer permits retraining).
        prefix: the ``rollout-checks/…`` artifact; status: ``materialized`` or ``cached``.
        checkpoint_key, outcome: from the rollout block.
    """

    episode_id: str
    capture_day: str
    robot_id: str
    checks: dict[str, dict[str, Any]]
    retrain_permitted: bool
    prefix: str
    status: str
    checkpoint_key: str | None
    outcome: str


def run_rollout_checklist(lake: Lake, day: str, robot: str, ep: str) -> RolloutChecklist:
    """Run the checklist on the raw rollout ``raw-mcap/<day>/<robot>/<ep>`` and publish it at
    ``rollout-checks/<day>/<robot>/<ep>`` (inputs: the raw episode, kind ``raw_mcap``, and the
    checkpoint that produced the rollout, kind ``checkpoint``, restricted to ``ep``; rights: the
    raw episode's). Cached when the raw episode and the checklist's rules are unchanged.

    Raises:
        FileNotFoundError: the raw episode is not published.
        ValueError: the raw episode is not a rollout (``source`` is not ``rollout``).
    """
    prefix = raw_prefix(day, robot, ep)
    raw = lake.read_manifest(prefix)
    if raw is None:
        raise FileNotFoundError(f"no raw episode at {lake.uri(prefix)}; ingest its partition first")
    doc = yaml.safe_load(lake.read_bytes(f"{prefix}/{METADATA}"))
    if not is_rollout(doc):
        raise ValueError(f"{lake.uri(prefix)} is not a rollout (metadata.yaml source {doc.get('source') if isinstance(doc, dict) else None!r})")
    with lake.local_artifact(prefix) as root:
        checks = check_rollout_recording(Path(root), doc, source=f"{prefix}/{METADATA}")
    ro = doc.get("rollout") if isinstance(doc.get("rollout"), dict) else {}
    ckpt_key = ro.get("checkpoint_key") if isinstance(ro.get("checkpoint_key"), str) else None
    inputs = [InputRef(key=prefix, sha256=manifest_sha256(raw), kind="raw_mcap", episode_ids=[ep])]
    if ckpt_key:
        ckpt = lake.read_manifest(ckpt_key)
        inputs.append(InputRef(key=ckpt_key, sha256=manifest_sha256(ckpt) if ckpt else "", kind="checkpoint",
                               episode_ids=[ep]))
    permitted = all(c["passed"] for c in checks.values())
    policy = ro.get("runtime_policy") if isinstance(ro.get("runtime_policy"), dict) else {}

    def write(staging: Path) -> Content:
        (staging / "checklist.json").write_text(json.dumps(
            {"before_retraining_from_runtime": {k: v["passed"] for k, v in checks.items()}, "checks": checks},
            indent=2))
        return Content(extra={
            "capture_day": day, "robot_id": robot, "rollout_episode": ep, "checkpoint_key": ckpt_key,
            "server_instance": ro.get("server_instance"), "outcome": str(ro.get("outcome")),
            "policy_id": policy.get("policy_id"), "retrain_permitted": permitted, "checks": checks},
            episode_ids=[ep])

    pub = publish_if_changed(lake, rollout_check_prefix(day, robot, ep), artifact_type="rollout_checklist",
                             inputs=inputs, config={"checklist_version": CHECKLIST_VERSION}, write=write,
                             rights=Rights.from_dict(raw["rights"]))
    m = pub.manifest
    assert isinstance(m, RolloutChecklistManifest)
    return RolloutChecklist(episode_id=ep, capture_day=day, robot_id=robot, checks=m.checks,
                            retrain_permitted=m.retrain_permitted, prefix=pub.prefix, status=pub.status,
                            checkpoint_key=m.checkpoint_key, outcome=m.outcome)


def rollout_episodes(lake: Lake, day: str, robot: str, episode_ids: Iterable[str]) -> list[str]:
    """The episodes among ``episode_ids`` whose raw ``metadata.yaml`` says ``source: rollout`` (one
    small read per episode; an episode without a raw metadata file is skipped)."""
    out = []
    for ep in episode_ids:
        key = f"{raw_prefix(day, robot, ep)}/{METADATA}"
        if lake.exists(key):
            try:
                doc = yaml.safe_load(lake.read_bytes(key))
            except yaml.YAMLError:
                continue  # not valid YAML: raw ingest quarantined it, it never reaches a release
            if is_rollout(doc):
                out.append(ep)
    return out


def run_partition_checklists(lake: Lake, day: str, robot: str, episode_ids: Iterable[str]) -> list[RolloutChecklist]:
    """:func:`run_rollout_checklist` for every rollout among the published ``episode_ids`` of a raw partition."""
    return [run_rollout_checklist(lake, day, robot, ep) for ep in rollout_episodes(lake, day, robot, episode_ids)]


def rollout_exclusions(lake: Lake, day: str, robot: str, episode_ids: Iterable[str]) -> dict[str, str]:
    """``{episode_id: reason}`` for the rollouts among ``episode_ids`` that no training release may take.

    A rollout is excluded unless its published checklist passed every check (the customer permits
    retraining, private frames filtered, incidents labelled, deletion process defined); one whose
    checklist has not run is excluded too. Each reason starts with :data:`INCIDENT_EVIDENCE_ONLY`
    and names the failed checks. Episodes that are not rollouts are not listed.
    """
    out: dict[str, str] = {}
    for ep in rollout_episodes(lake, day, robot, episode_ids):
        m = load_manifest(lake, rollout_check_prefix(day, robot, ep), RolloutChecklistManifest)
        if m is None:
            out[ep] = (f"{INCIDENT_EVIDENCE_ONLY}: rollout whose before_retraining_from_runtime checklist has not "
                       f"run ({rollout_check_prefix(day, robot, ep)} missing)")
        elif not m.retrain_permitted:
            failed = "; ".join(f"{k}: {v.get('detail')}" for k, v in m.checks.items() if not v.get("passed"))
            out[ep] = f"{INCIDENT_EVIDENCE_ONLY}: rollout kept as incident evidence only ({failed})"
    return out


def check_episode_private_frames(h5_path: str | Path, metadata: dict) -> dict[str, Any]:
    """``private_frames_filtered`` on a processed episode: no stored frame of a private camera
    stamped in a private window (``observation/images/<cam>/stamps_ns`` against the rollout's
    ``start_ns``) is other than black, and with ``drop`` none is stored at all.

    Args:
        h5_path: the episode's HDF5 file (format 3; docs in :mod:`hvla_platform.lib.formats.episode_h5`).
        metadata: the rollout's parsed ``metadata.yaml``.

    Returns:
        ``{"passed": bool, "detail": str}``.
    """
    try:
        meta = parse_recording_metadata(metadata)
    except RecordingMetadataError as exc:
        return _check(False, str(exc))
    if meta.rollout is None:
        return _check(False, "not a rollout")
    ro = meta.rollout
    red = ro.runtime_policy.redaction
    if red is None or not red.cameras or not red.windows_s:
        return _check(True, "the runtime-data policy marks no camera frame private")
    remaining, private = [], 0
    with EpisodeReader(h5_path) as reader, h5py.File(h5_path, "r") as f:
        for cam in red.cameras:
            if cam not in reader.cameras:
                continue
            stamps = np.asarray(f[f"observation/images/{cam}/stamps_ns"][()], dtype=np.int64)
            for i, s in enumerate(stamps):
                t_s = (int(s) - ro.start_ns) / 1e9
                if not red.is_private(cam, t_s):
                    continue
                private += 1
                if red.rule == "drop":
                    remaining.append(f"{cam} frame {i} at {t_s:.3f} s (should be dropped)")
                elif int(reader.stored_frame(cam, i).max()) > BLACK_MAX_LEVEL:
                    remaining.append(f"{cam} frame {i} at {t_s:.3f} s")
    if remaining:
        return _check(False, f"{len(remaining)} private frame(s) remain in the processed episode: "
                             + "; ".join(remaining[:5]))
    return _check(True, f"processed episode: {private} private frame(s) of {red.cameras}, none showing anything")


def check_partition_episodes_private_frames(lake: Lake, day: str, robot: str) -> dict[str, dict[str, Any]]:
    """:func:`check_episode_private_frames` for every converted rollout of the partition's published
    ``episodes-hdf5/<day>/<robot>`` artifact: ``{episode_id: {"passed", "detail"}}`` (empty when the
    partition holds no rollout).

    Raises:
        FileNotFoundError: the partition has no published HDF5 artifact.
    """
    prefix = episodes_prefix(day, robot)
    manifest = lake.read_manifest(prefix)
    if manifest is None:
        raise FileNotFoundError(f"no episodes_hdf5 artifact at {lake.uri(prefix)}")
    files = {c["episode_id"]: c["file"] for c in manifest.get("conversions", []) if c.get("status") == "converted"}
    eps = rollout_episodes(lake, day, robot, sorted(files))
    if not eps:
        return {}
    out = {}
    with lake.local_artifact(prefix) as root:
        for ep in eps:
            doc = yaml.safe_load(lake.read_bytes(f"{raw_prefix(day, robot, ep)}/{METADATA}"))
            out[ep] = check_episode_private_frames(Path(root) / files[ep], doc)
    return out
