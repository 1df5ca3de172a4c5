"""Dataset release specs: which raw partitions become which LeRobot release, and how.

A release spec is a small YAML file (``releases/<name>.yaml`` in the repo for the demo; stored in
the lake under ``release-specs/<name>.yaml`` once registered). Its ``name`` is the Dagster
partition key of the dataset-side assets (``lerobot_dataset``, ``norm_stats``, ``robodm_cache``).

Example::

    name: g1-reach-v1
    repo_id: hvla/g1-reach
    partitions: [{capture_day: "2026-11-10", robot_id: g1-001}]   # or "all"
    fps: 20
    cameras: [head, wrist_right]
    state_joints: [...]          # default: waist + both arms (17)
    action_joints: [...]         # default: both arms (14)
    heldout: {fraction: 0.25, seed: 0}     # or {episode_ids: [...]}
    video_codec: h264
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import yaml

from hvla_platform.lib.processing.qa.thresholds import DEFAULT_MIN_QUALITY
from hvla_platform.lib.formats.recording.contract import (
    CAMERA_TOPICS,
    G1_ARM_JOINTS,
    G1_WAIST_JOINTS,
    ROBOT_MODEL_G1,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


#: Default lowest quality score (``hvla_platform.lib.processing.qa.score``) an episode needs to enter a release.


class ReleaseSpecError(ValueError):
    """A release spec is malformed."""


def _grant(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not raw.get("reference") or not raw.get("granted_by"):
        raise ReleaseSpecError("'cross_customer_grant' needs 'reference', 'granted_by' and 'customers'")
    customers = raw.get("customers")
    if not isinstance(customers, list) or len(customers) < 2 or not all(isinstance(c, str) for c in customers):
        raise ReleaseSpecError("'cross_customer_grant.customers' must list the (two or more) customers it allows to mix")
    return {"reference": str(raw["reference"]), "granted_by": str(raw["granted_by"]), "customers": sorted(customers)}


@dataclass(frozen=True)
class ReleaseSpec:
    """A dataset release: see the module docstring for the YAML form.

    Attributes:
        name: release name, the partition key (``[A-Za-z0-9._-]``, ≤ 64 chars).
        repo_id: LeRobot ``<org>/<name>``.
        partitions: ``(capture_day, robot_id)`` pairs, or empty for all available partitions.
        fps: frame rate of the release, Hz (integer, as LeRobot requires).
        cameras: camera names (keys of :data:`CAMERA_TOPICS`).
        state_joints: joints forming ``observation.state``.
        action_joints: joints forming ``action``.
        heldout_fraction, heldout_seed: random held-out split by episode when
            ``heldout_episode_ids`` is empty.
        heldout_episode_ids: explicit held-out episodes.
        video_codec: LeRobot video codec (``h264`` by default: SVT-AV1 is ~4x slower to encode on 2
            cores, see docs/environment.md).
        robot_type: LeRobot ``robot_type``.
        min_quality: episodes with a lower quality score, or a failed QA gate, are left out unless a
            supervisor approved them; rejected episodes are always left out.
        cross_customer_grant: a release may hold data of more than one customer only under a grant
            ``{reference, granted_by, customers: [...]}`` naming every customer it mixes (seed 000:
            data of customer A must not silently flow into customer B's pipeline).
    """

    name: str
    repo_id: str
    partitions: tuple[tuple[str, str], ...] = ()
    fps: int = 20
    cameras: tuple[str, ...] = tuple(CAMERA_TOPICS)
    state_joints: tuple[str, ...] = tuple(G1_WAIST_JOINTS + G1_ARM_JOINTS)
    action_joints: tuple[str, ...] = tuple(G1_ARM_JOINTS)
    heldout_fraction: float = 0.25
    heldout_seed: int = 0
    heldout_episode_ids: tuple[str, ...] = ()
    video_codec: str = "h264"
    robot_type: str = ROBOT_MODEL_G1
    description: str = ""
    min_quality: float = DEFAULT_MIN_QUALITY
    cross_customer_grant: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "ReleaseSpec":
        """Validate and build a spec from a parsed YAML mapping.

        Raises:
            ReleaseSpecError: a field is missing or invalid (the message names it).
        """
        if not isinstance(data, Mapping):
            raise ReleaseSpecError("a release spec must be a mapping")
        for req in ("name", "repo_id"):
            if not data.get(req):
                raise ReleaseSpecError(f"release spec is missing '{req}'")
        name, repo_id = str(data["name"]), str(data["repo_id"])
        if not _NAME_RE.match(name):
            raise ReleaseSpecError(f"release name {name!r} must match {_NAME_RE.pattern}")
        if not _REPO_RE.match(repo_id):
            raise ReleaseSpecError(f"repo_id {repo_id!r} must look like '<org>/<name>'")
        parts_raw = data.get("partitions", "all")
        partitions: tuple[tuple[str, str], ...] = ()
        if parts_raw != "all":
            if not isinstance(parts_raw, list):
                raise ReleaseSpecError("'partitions' must be 'all' or a list of {capture_day, robot_id}")
            partitions = tuple(sorted((str(p["capture_day"]), str(p["robot_id"])) for p in parts_raw))
        fps = data.get("fps", 20)
        if not isinstance(fps, int) or not 1 <= fps <= 1000:
            raise ReleaseSpecError(f"'fps' must be an integer in [1, 1000], got {fps!r}")
        cameras = tuple(data.get("cameras", tuple(CAMERA_TOPICS)))
        unknown = [c for c in cameras if c not in CAMERA_TOPICS]
        if unknown:
            raise ReleaseSpecError(f"unknown camera(s) {unknown}; known: {list(CAMERA_TOPICS)}")
        mq = data.get("min_quality", DEFAULT_MIN_QUALITY)
        if not isinstance(mq, (int, float)) or not 0.0 <= float(mq) <= 1.0:
            raise ReleaseSpecError(f"'min_quality' must be a number in [0, 1], got {mq!r}")
        heldout = data.get("heldout", {}) or {}
        frac = float(heldout.get("fraction", 0.25))
        if not 0.0 <= frac < 1.0:
            raise ReleaseSpecError(f"'heldout.fraction' must be in [0, 1), got {frac}")
        return cls(
            name=name,
            repo_id=repo_id,
            partitions=partitions,
            fps=fps,
            cameras=cameras,
            state_joints=tuple(data.get("state_joints", G1_WAIST_JOINTS + G1_ARM_JOINTS)),
            action_joints=tuple(data.get("action_joints", G1_ARM_JOINTS)),
            heldout_fraction=frac,
            heldout_seed=int(heldout.get("seed", 0)),
            heldout_episode_ids=tuple(heldout.get("episode_ids", ())),
            video_codec=str(data.get("video_codec", "h264")),
            robot_type=str(data.get("robot_type", ROBOT_MODEL_G1)),
            description=str(data.get("description", "")),
            min_quality=float(data.get("min_quality", DEFAULT_MIN_QUALITY)),
            cross_customer_grant=_grant(data.get("cross_customer_grant")),
        )

    @classmethod
    def from_yaml(cls, text: str | bytes) -> "ReleaseSpec":
        """Parse a YAML release spec (``yaml.safe_load``). Raises :class:`ReleaseSpecError`."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ReleaseSpecError(f"release spec is not valid YAML: {exc}") from exc
        return cls.from_mapping(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-serialisable form (round-trips through :meth:`from_mapping`)."""
        d = asdict(self)
        d.pop("extra")
        if d["cross_customer_grant"] is None:
            d.pop("cross_customer_grant")
        else:
            d["cross_customer_grant"] = dict(d["cross_customer_grant"])
        d["partitions"] = [{"capture_day": c, "robot_id": r} for c, r in self.partitions] or "all"
        d["heldout"] = {"fraction": d.pop("heldout_fraction"), "seed": d.pop("heldout_seed"),
                        "episode_ids": list(d.pop("heldout_episode_ids"))}
        for k in ("cameras", "state_joints", "action_joints"):
            d[k] = list(d[k])
        return d

    def split(self, episode_ids: list[str]) -> tuple[list[str], list[str]]:
        """Split episodes into (train, heldout), sorted, deterministically.

        Explicit ``heldout_episode_ids`` win; otherwise ``round(fraction * N)`` episodes (at least
        one when N ≥ 2 and fraction > 0) are drawn with ``random.Random(seed)`` from the sorted
        ids, so adding an episode never reshuffles the seed's choice of the others' order.
        """
        ids = sorted(set(episode_ids))
        if self.heldout_episode_ids:
            held = sorted(set(self.heldout_episode_ids) & set(ids))
        else:
            n = round(self.heldout_fraction * len(ids))
            if self.heldout_fraction > 0 and len(ids) >= 2:
                n = max(n, 1)
            n = min(n, len(ids) - 1) if ids else 0
            held = sorted(random.Random(self.heldout_seed).sample(ids, n)) if n > 0 else []
        train = [e for e in ids if e not in set(held)]
        return train, held

    def digest(self) -> str:
        """sha256 of the spec's canonical form (part of the release's fingerprint)."""
        return hashlib.sha256(yaml.safe_dump(self.to_dict(), sort_keys=True).encode()).hexdigest()
