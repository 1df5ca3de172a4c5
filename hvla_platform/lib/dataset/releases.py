"""Registering release specs in the lake and resolving which episodes a release contains."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py

from hvla_platform.lib.core.keys import EPISODES, LEROBOT, episodes_prefix
from hvla_platform.lib.formats.recording.profile import DEFAULT_PROFILE
from hvla_platform.lib.ingest.raw import read_partition_index
from hvla_platform.lib.ingest.rollouts import rollout_exclusions
from hvla_platform.lib.core.manifest import LeRobotDatasetManifest, load_manifest, manifest_sha256
from hvla_platform.lib.processing.qa.decisions import latest_decisions
from hvla_platform.lib.core.withdrawals import revoked_episodes
from hvla_platform.lib.processing.qa.score import GATES
from hvla_platform.lib.dataset.spec import ReleaseSpec, ReleaseSpecError
from hvla_platform.lib.core.rights import Rights, RightsError
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.tables import check_qa_results
from hvla_platform.lib.core.keys import lerobot_release_prefix, spec_key


#: Reason code of an episode a release leaves out because it follows another robot profile than the
#: release's spec (``excluded[episode_id]`` starts with it). Mapping several profiles into one
#: release is not supported (a later issue: other data sources and mixtures).
OTHER_PROFILE = "other_profile"


def episode_profile(path: str | os.PathLike[str]) -> str:
    """The robot profile an episode HDF5 file follows: its ``profile`` attribute
    (``<name>@<version>``, format 3), or :data:`DEFAULT_PROFILE` (the bare name: the version is not
    recorded) for a file without one (format 2: every episode made before profiles existed).

    Only the file's attributes are read (no dataset).

    Raises:
        OSError: not an HDF5 file.
    """
    with h5py.File(Path(path), "r") as f:
        value = f.attrs.get("profile")
    if isinstance(value, bytes):
        value = value.decode()
    return str(value) if value else DEFAULT_PROFILE


def profile_name(key: str) -> str:
    """``unitree_g1_29dof`` of ``unitree_g1_29dof@1`` (a bare name is returned unchanged)."""
    return key.partition("@")[0]


def register_release(lake: Lake, spec_yaml: str, *, source: str = "release spec") -> ReleaseSpec:
    """Validate a release spec and store it in the lake (replacing an earlier spec of that name).

    ``source`` names the spec's file in error messages.

    Raises:
        ReleaseSpecError: the spec is invalid.
    """
    spec = ReleaseSpec.from_yaml(spec_yaml, source=source)
    lake.write_bytes(spec_key(spec.name), spec_yaml.encode() if isinstance(spec_yaml, str) else spec_yaml)
    return spec


def load_release(lake: Lake, release: str) -> ReleaseSpec:
    """The registered spec of ``release``.

    Raises:
        FileNotFoundError: no spec is registered under that name.
        ReleaseSpecError: the stored spec is invalid, or its ``name`` differs from ``release``.
    """
    key = spec_key(release)
    if not lake.exists(key):
        raise FileNotFoundError(f"release {release!r} has no registered spec ({lake.uri(key)}); "
                                "register it with `hvla release register <spec.yaml>`")
    spec = ReleaseSpec.from_yaml(lake.read_bytes(key), source=lake.uri(key))
    if spec.name != release:
        raise ReleaseSpecError(f"{lake.uri(key)} declares name {spec.name!r}, expected {release!r}")
    return spec


def lerobot_prefix(spec: ReleaseSpec) -> str:
    """``lerobot/<repo_id>/<release>``: releases of one repo_id are kept side by side."""
    return lerobot_release_prefix(spec.repo_id, spec.name)


@dataclass
class SelectedEpisode:
    """One episode chosen for a release, with where its HDF5 lives and its rights."""

    episode_id: str
    capture_day: str
    robot_id: str
    hdf5_key: str
    hdf5_sha256: str
    rights: Rights
    task: str
    operator: str | None = None
    site: str | None = None
    raw_mcap_key: str = ""
    raw_sha256: str = ""
    quality_score: float | None = None
    profile: str = DEFAULT_PROFILE  # the HDF5's robot profile key (episode_profile)
    #: the conversion's ``qa_metrics`` (the release checks read the camera statistics from it)
    qa_metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Selection:
    """Episodes a release takes, and the ones it leaves out with reasons."""

    episodes: list[SelectedEpisode]
    excluded: dict[str, str] = field(default_factory=dict)
    approved: dict[str, str] = field(default_factory=dict)
    partitions: list[tuple[str, str]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)  # episodes_hdf5 artifacts used


def available_episode_partitions(lake: Lake) -> list[tuple[str, str]]:
    """(capture_day, robot_id) pairs with a committed ``episodes-hdf5`` artifact."""
    out = []
    for prefix in lake.list_artifacts(EPISODES):
        parts = prefix.split("/")
        if len(parts) == 3:
            out.append((parts[1], parts[2]))
    return sorted(out)


def select_episodes(lake: Lake, spec: ReleaseSpec, *, today: dt.date | None = None) -> Selection:
    """Resolve the episodes of ``spec`` from the committed HDF5 artifacts.

    Excluded, each with its reason: episodes not converted; episodes whose consent was withdrawn;
    episodes of another robot profile than ``spec.profile`` (their HDF5 ``profile`` attribute, see
    :func:`episode_profile`; the reason starts with :data:`OTHER_PROFILE`: a release does not mix
    profiles); episodes past their retention date (``today`` > ``retention_until``, so expired data
    never enters a new release); rollouts of a deployed policy whose ``before_retraining_from_runtime``
    checklist did not pass, e.g. without the customer's permission to retrain (the reason starts with
    ``rollout_incident_evidence_only``: :func:`~hvla_platform.lib.ingest.rollouts.rollout_exclusions`);
    episodes a supervisor rejected; episodes whose quality score is
    below ``spec.min_quality`` or that failed a QA gate, unless a supervisor approved them (then
    they are included and listed in ``approved``).

    An episode's profile is the one its HDF5 file names: the conversion's row records that key
    (``conversions[i].profile``); for rows written before conversions recorded it, the file's
    attributes are read (:func:`episode_profile`, through ``lake.local_artifact`` of the partition:
    on an object-store lake that downloads the partition's files).

    Raises:
        FileNotFoundError: a partition named by the spec has no HDF5 artifact.
        ValueError: the spec selects no episode at all.
        TableError: a partition's index or QA results do not match their schemas.
    """
    today = today or dt.date.today()
    decisions = latest_decisions(lake)
    revoked = revoked_episodes(lake)
    wanted = list(spec.partitions) or available_episode_partitions(lake)
    sel = Selection(episodes=[], partitions=wanted)
    for day, robot in wanted:
        prefix = episodes_prefix(day, robot)
        manifest = lake.read_manifest(prefix)
        if manifest is None:
            raise FileNotFoundError(f"release {spec.name}: partition {day}|{robot} has no episodes_hdf5 artifact "
                                    f"({lake.uri(prefix)}); materialize episodes_hdf5 for it first")
        sel.inputs.append({"key": prefix, "sha256": manifest_sha256(manifest), "kind": "episodes_hdf5",
                           "partition": f"{day}|{robot}"})
        raw = {e["episode_id"]: e for e in read_partition_index(lake, day, robot)["episodes"]}
        files = {f["path"]: f["sha256"] for f in manifest.get("files", [])}
        conversions = check_qa_results(manifest["conversions"],
                                       where=f"{lake.uri(lake.manifest_key(prefix))} (conversions)")
        # the profile each converted episode's HDF5 names: the conversion records it in its row
        # (the same key it wrote into the file); rows of older conversions lack it, so the file is read
        profiles = {c["file"]: str(c["profile"]) for c in conversions
                    if c["status"] == "converted" and c.get("profile")}
        # rollouts without the customer's permission (or a passed checklist) are incident evidence only
        incident_only = rollout_exclusions(lake, day, robot, [c["episode_id"] for c in conversions
                                                               if c["status"] == "converted"])
        unread = [c["file"] for c in conversions
                  if c["status"] == "converted" and c["episode_id"] not in revoked and c["file"] not in profiles]
        if unread:
            with lake.local_artifact(prefix) as root:
                profiles.update({name: episode_profile(Path(root) / name) for name in unread})
        for conv in conversions:
            ep = conv["episode_id"]
            if conv["status"] != "converted":
                sel.excluded[ep] = f"not converted: {conv['reason']}"
                continue
            if ep in revoked:
                sel.excluded[ep] = revoked[ep]
                continue
            if ep in incident_only:
                sel.excluded[ep] = incident_only[ep]
                continue
            ep_profile = profiles[conv["file"]]
            if profile_name(ep_profile) != spec.profile:
                sel.excluded[ep] = (f"{OTHER_PROFILE}: the episode follows robot profile {ep_profile}, "
                                    f"release {spec.name} follows {spec.profile}")
                continue
            r = raw[ep]
            rights = Rights.from_dict(r["rights"])
            if rights.is_expired(today):
                sel.excluded[ep] = f"retention ended {rights.retention_until.isoformat()}"
                continue
            dec = decisions.get(ep)
            if dec and dec["decision"] == "reject":
                sel.excluded[ep] = f"rejected by {dec['by']} at {dec['at']}: {dec['reason']}"
                continue
            score = conv.get("quality_score")
            gates = [g for g in GATES if not conv.get("qa_checks", {}).get(g, {}).get("passed", True)]
            if score is None or score < spec.min_quality or gates:
                why = (f"QA gate(s) failed: {gates}" if gates else
                       f"quality score {score} below min_quality {spec.min_quality}")
                if dec and dec["decision"] == "approve":
                    sel.approved[ep] = f"{why}; approved by {dec['by']} at {dec['at']}: {dec['reason']}"
                else:
                    sel.excluded[ep] = why
                    continue
            sel.episodes.append(SelectedEpisode(
                quality_score=score,
                episode_id=ep, capture_day=day, robot_id=robot, hdf5_key=f"{prefix}/{conv['file']}",
                hdf5_sha256=files.get(conv["file"], conv["sha256"]), rights=rights, task=conv.get("task", ""),
                operator=r["metadata"].get("operator"), site=r["metadata"].get("site"),
                raw_mcap_key=r.get("mcap_key", ""), raw_sha256=r.get("sha256", ""), profile=ep_profile,
                qa_metrics=dict(conv.get("qa_metrics") or {}),
            ))
    if not sel.episodes:
        raise ValueError(f"release {spec.name} selects no usable episode (excluded: {sel.excluded or 'none'})")
    check_customer_mixing(spec, sel)
    sel.episodes.sort(key=lambda e: e.episode_id)
    return sel


def check_customer_mixing(spec: ReleaseSpec, sel: Selection) -> None:
    """Refuse a release that mixes customers without a grant naming all of them.

    Raises:
        RightsError: the selected episodes belong to more than one customer and the spec has no
            ``cross_customer_grant`` covering every one of them (the message names the customers
            and their episodes).
    """
    by_customer: dict[str, list[str]] = {}
    for e in sel.episodes:
        for c in e.rights.customers:
            by_customer.setdefault(c, []).append(e.episode_id)
    if len(by_customer) <= 1:
        return
    grant = spec.cross_customer_grant
    if grant and set(by_customer) <= set(grant["customers"]):
        return
    detail = "; ".join(f"{c}: {len(eps)} episode(s), e.g. {eps[0]}" for c, eps in sorted(by_customer.items()))
    missing = sorted(set(by_customer) - set(grant["customers"])) if grant else sorted(by_customer)
    raise RightsError(
        f"release {spec.name} would mix customers ({detail}) without a cross-customer grant covering "
        f"{missing}; restrict its partitions to one customer or add cross_customer_grant "
        "{reference, granted_by, customers} to the release spec")


def previous_release_manifest(lake: Lake, spec: ReleaseSpec) -> LeRobotDatasetManifest | None:
    """The most recently created other release of the same ``repo_id``, or ``None``."""
    best = None
    for prefix in lake.list_artifacts(f"{LEROBOT}/{spec.repo_id}"):
        if prefix == lerobot_prefix(spec):
            continue
        m = load_manifest(lake, prefix, LeRobotDatasetManifest)
        if m and (best is None or m.created_at > best.created_at):
            best = m
    return best
