"""Dataset release specs: which raw partitions become which LeRobot release, and how.

A release spec is a small YAML file (``releases/<name>.yaml`` in the repo for the demo; stored in
the lake under ``release-specs/<name>.yaml`` once registered). Its ``name`` is the Dagster
partition key of the dataset-side assets (``lerobot_dataset``, ``norm_stats``, ``robodm_cache``).

Example::

    name: g1-reach-v1
    repo_id: hvla/g1-reach
    profile: unitree_g1_29dof    # the robot profile (default); episodes of another profile are left out
    partitions: [{capture_day: "2026-11-10", robot_id: g1-001}]   # or "all"
    fps: 20
    cameras: [head, wrist_right] # default: the profile's colour cameras
    state_joints: [...]          # default: the profile's state joints (the G1: waist + both arms, 17)
    action_joints: [...]         # default: the profile's action joints (the G1: both arms, 14)
    robot_type: unitree_g1       # default: the profile's robot model
    heldout: {fraction: 0.25, seed: 0}     # or {episode_ids: [...]}
    video_codec: h264
    qa: {min_episodes_per_task: 3}         # release-check thresholds (default: ReleaseQAThresholds)

**Robot profile.** ``profile`` names a robot profile
(:mod:`hvla_platform.lib.formats.recording.profile`, docs/robot_profiles.md); the release holds
episodes of that profile only (others are excluded with reason ``other_profile``). ``cameras``,
``state_joints`` and ``action_joints`` must be names the profile has (``state_joints`` among its
``joint_state`` joints, ``action_joints`` among its action joints, ``cameras`` among its **colour**
cameras: a LeRobot video feature is colour, so a depth camera is refused and depth stays in the
HDF5 layer). Left out, they default to the profile's: every state joint (:data:`RELEASE_STATE_DEFAULTS`
narrows that for the G1 to waist + arms, as releases always had it), every action joint, every
colour camera, and the robot model as ``robot_type``. ``profile`` enters the canonical form
(:meth:`ReleaseSpec.to_dict`) only when it is not :data:`DEFAULT_PROFILE`, so a spec written
before profiles existed keeps its digest, and the releases built from it their fingerprints.

**Release checks.** ``qa`` overrides thresholds of the release checks
(:class:`~hvla_platform.lib.dataset.release_qa.ReleaseQAThresholds`: ``max_modified_z``,
``min_episodes_for_outliers``, ``mad_floor_fraction``, ``min_std``, ``max_drift_smd``,
``min_episodes_per_task``, ``max_task_imbalance``, ``action_horizon``); a key left out keeps its
default, and the block enters the canonical form only when it is given (specs without it keep
their digest).

The file is validated strictly by :class:`ReleaseSpecDocument` (a
:class:`~hvla_platform.lib.core.contracts.StrictModel`): an unknown or misspelled key, a missing
required field or a value of the wrong type is a :class:`ReleaseSpecError` whose one-line message
names the file, the key (with the closest valid key) and what was expected, e.g.
``releases/x.yaml: unknown key 'min_qualty' (did you mean 'min_quality'?)``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any, Mapping

import yaml
from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from hvla_platform.lib.core.contracts import StrictModel, iso_date_to_str, validate_document
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.processing.qa.thresholds import DEFAULT_MIN_QUALITY
from hvla_platform.lib.formats.recording.contract import (
    CAMERA_TOPICS,
    G1_ARM_JOINTS,
    G1_WAIST_JOINTS,
    ROBOT_MODEL_G1,
)
from hvla_platform.lib.formats.recording.profile import (
    DEFAULT_PROFILE,
    ProfileError,
    RobotProfile,
    available_profiles,
    load_profile,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: A release version id is ``<name>`` (the first build) or ``<name>.<n>`` (n ≥ 1), so a spec name
#: may not end like a version suffix (lib/dataset/versions.py).
_VERSION_SUFFIX_RE = re.compile(r"\.[0-9]+$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_PROFILE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_]*$")

#: Default ``state_joints`` of a release, per robot profile, where it is not every state joint of
#: the profile: the G1's legs are held still while its pelvis is fixed (near-constant dimensions
#: make normalisation divide by ~0), so its releases take waist + both arms (17 joints), as they
#: always have (docs/decisions.md, "Dataset features").
RELEASE_STATE_DEFAULTS: dict[str, tuple[str, ...]] = {DEFAULT_PROFILE: tuple(G1_WAIST_JOINTS + G1_ARM_JOINTS)}


def heldout_draw(seed: int, episode_id: str) -> float:
    """The episode's split draw, uniform in [0, 1): the first 64 bits of
    ``sha256("hvla-heldout/<seed>/<episode_id>")`` divided by 2**64. Stable across releases,
    machines and Python versions (unlike ``hash()``), and independent of every other episode."""
    digest = hashlib.sha256(f"hvla-heldout/{seed}/{episode_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class ReleaseSpecError(ValueError):
    """A release spec is malformed."""


def default_state_joints(profile: RobotProfile) -> tuple[str, ...]:
    """The ``state_joints`` a release of ``profile`` takes when its spec names none: every
    ``joint_state`` joint of the profile, in its order, unless :data:`RELEASE_STATE_DEFAULTS`
    names a subset for it (the G1: waist + both arms).

    Raises:
        ValueError: the profile lacks a joint of its :data:`RELEASE_STATE_DEFAULTS` entry (a lab's
            own copy of the profile renamed it); the spec must then name its ``state_joints``.
    """
    joints = tuple(RELEASE_STATE_DEFAULTS.get(profile.profile, profile.state_names))
    missing = [j for j in joints if j not in profile.state_names]
    if missing:
        raise ValueError(f"the default state joints of robot profile {profile.profile} are not all its joint_state "
                         f"joints (missing {missing}); name the release's state_joints")
    return joints


def _unknown_names(wanted: list[str], known: list[str]) -> str:
    """``'x' (did you mean 'y'?), 'z' (known: …)`` for the names of ``wanted`` not in ``known``."""
    return ", ".join(f"{n!r}{did_you_mean(n, known)}" for n in dict.fromkeys(wanted) if n not in known)


def _twice(values: list[str]) -> list[str]:
    return sorted({v for v in values if values.count(v) > 1})


def check_against_profile(profile: RobotProfile, *, cameras: list[str] | None = None,
                          state_joints: list[str] | None = None,
                          action_joints: list[str] | None = None) -> None:
    """Check a release's cameras and joints against its robot profile.

    Args:
        cameras: must be colour cameras of the profile (a depth camera is refused: a LeRobot video
            feature is colour; depth stays in the HDF5 layer).
        state_joints: must be ``joint_state`` joints of the profile.
        action_joints: must be action joints of the profile (:attr:`RobotProfile.action_names`).
        None skips a check. A name listed twice is refused.

    Raises:
        ValueError: one line (without the field's name: the caller adds it) naming the unknown
            names with the closest known name of each, the depth camera, or the repeated name.
    """
    if cameras is not None:
        depth = [c for c in cameras if c in profile.depth_cameras]
        if depth:
            what = "is a depth camera" if len(depth) == 1 else "are depth cameras"
            raise ValueError(f"{', '.join(map(repr, depth))} {what} of robot profile {profile.profile}: a LeRobot "
                             "release carries colour cameras only (video features), depth stays in the HDF5 "
                             f"layer — its colour cameras are {profile.rgb_cameras}")
        if any(c not in profile.rgb_cameras for c in cameras):
            raise ValueError(f"unknown camera(s) of robot profile {profile.profile}: "
                             f"{_unknown_names(cameras, profile.rgb_cameras)} — its colour cameras are "
                             f"{profile.rgb_cameras}")
        if _twice(cameras):
            raise ValueError(f"camera(s) listed twice: {_twice(cameras)}")
    for what, names, known, where in (
            ("state joint", state_joints, profile.state_names, "joint_state joints"),
            ("action joint", action_joints, profile.action_names,
             f"action joints (commands {profile.features.action})")):
        if names is None:
            continue
        if any(n not in known for n in names):
            raise ValueError(f"not among robot profile {profile.profile}'s {where}: {_unknown_names(names, known)}")
        if _twice(names):
            raise ValueError(f"{what}(s) listed twice: {_twice(names)}")


def _profile_of(info: ValidationInfo) -> RobotProfile | None:
    """The profile validated before this field (None when ``profile`` itself was invalid: that
    error is already reported)."""
    name = info.data.get("profile")
    if name is None:
        return None
    return load_profile(name)


class PartitionRef(StrictModel):
    """One ``partitions`` entry: a ``(capture_day, robot_id)`` partition of converted data."""

    capture_day: Annotated[str, BeforeValidator(iso_date_to_str)] = Field(
        description="capture day, YYYY-MM-DD (quoted or not)")
    robot_id: str = Field(description="robot id of the partition")


class HeldOut(StrictModel):
    """The ``heldout`` block: a fraction of episodes chosen per episode by a salted hash of its id
    (``seed`` is the salt), or explicit episode ids."""

    fraction: Annotated[float, Field(strict=True, ge=0.0, lt=1.0)] = 0.25
    seed: Annotated[int, Field(strict=True)] = 0
    episode_ids: list[str] = Field(default_factory=list)


class CrossCustomerGrant(StrictModel):
    """The ``cross_customer_grant`` block: the grant under which a release mixes customers."""

    reference: Annotated[str, Field(min_length=1)]
    granted_by: Annotated[str, Field(min_length=1)]
    customers: Annotated[list[str], Field(min_length=2)] = Field(
        description="every customer the release mixes (two or more)")


class ReleaseQASettings(StrictModel):
    """The ``qa`` block: per-release thresholds of the release checks, each a field of
    :class:`~hvla_platform.lib.dataset.release_qa.ReleaseQAThresholds` (meaning, default and
    source there). A key left out keeps the default; an explicit null is refused."""

    max_modified_z: Annotated[float, Field(strict=True, gt=0.0)] = Field(default=None)
    min_episodes_for_outliers: Annotated[int, Field(strict=True, ge=3)] = Field(default=None)
    mad_floor_fraction: Annotated[float, Field(strict=True, ge=0.0, lt=1.0)] = Field(default=None)
    min_std: Annotated[float, Field(strict=True, ge=0.0)] = Field(default=None)
    max_drift_smd: Annotated[float, Field(strict=True, gt=0.0)] = Field(default=None)
    min_episodes_per_task: Annotated[int, Field(strict=True, ge=1)] = Field(default=None)
    max_task_imbalance: Annotated[float, Field(strict=True, ge=1.0)] = Field(default=None)
    action_horizon: Annotated[int, Field(strict=True, ge=1)] = Field(default=None)


class ReleaseSpecDocument(StrictModel):
    """The contract of a release spec file (``releases/<name>.yaml``), as a person writes it.

    Unknown keys are refused; ``name`` and ``repo_id`` are required; everything else has the
    default shown in the module docstring. :meth:`ReleaseSpec.from_mapping` validates through this
    model and raises :class:`ReleaseSpecError` with a one-line message.
    """

    name: str = Field(description="release name, the partition key: [A-Za-z0-9._-], at most 64 characters")
    repo_id: str = Field(description="LeRobot '<org>/<name>'")
    description: str = ""
    profile: str = Field(default=DEFAULT_PROFILE, description="robot profile name (docs/robot_profiles.md)")
    partitions: list[PartitionRef] = Field(default_factory=list, description="'all' or a list of partitions")
    fps: Annotated[int, Field(strict=True, ge=1, le=1000)] = 20
    # Left out (None, never validated): the profile's (ReleaseSpec.from_mapping); an explicit null is
    # refused like any non-list.
    cameras: list[str] = Field(default=None, description="colour cameras (default: the profile's)")
    state_joints: list[str] = Field(default=None, description="state joints (default: default_state_joints)")
    action_joints: list[str] = Field(default=None, description="action joints (default: the profile's)")
    heldout: HeldOut | None = None
    video_codec: str = "h264"
    robot_type: str = Field(default=None, description="LeRobot robot_type (default: the profile's robot model)")
    min_quality: Annotated[float, Field(strict=True, ge=0.0, le=1.0)] = DEFAULT_MIN_QUALITY
    cross_customer_grant: CrossCustomerGrant | None = None
    qa: ReleaseQASettings | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit), "
                             f"got {value!r}")
        if _VERSION_SUFFIX_RE.search(value):
            raise ValueError(f"must not end in '.<number>' (reserved for release versions: <name>.1, <name>.2, ...), "
                             f"got {value!r}")
        return value

    @field_validator("repo_id")
    @classmethod
    def _org_slash_name(cls, value: str) -> str:
        if not _REPO_RE.match(value):
            raise ValueError(f"must look like '<org>/<name>', got {value!r}")
        return value

    @field_validator("partitions", mode="before")
    @classmethod
    def _all_or_list(cls, value: Any) -> Any:
        if value == "all":
            return []
        if not isinstance(value, list):
            raise ValueError(f"must be 'all' or a list of {{capture_day, robot_id}}, got {value!r}")
        return value

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        if not _PROFILE_NAME_RE.match(value):
            raise ValueError(f"must be a robot profile name (lower case, digits, '_'; no '@<version>'), got {value!r}")
        known = available_profiles()
        if value not in known:
            raise ValueError(f"unknown robot profile {value!r}{did_you_mean(value, known)}")
        load_profile(value)  # a ProfileError (a ValueError) names the invalid file
        return value

    @field_validator("cameras", "state_joints", "action_joints")
    @classmethod
    def _names_in_profile(cls, value: list[str], info: ValidationInfo) -> list[str]:
        profile = _profile_of(info)
        if profile is not None:
            check_against_profile(profile, **{info.field_name: value})
        return value


@dataclass(frozen=True)
class ReleaseSpec:
    """A dataset release: see the module docstring for the YAML form.

    Attributes:
        name: release name, the partition key (``[A-Za-z0-9._-]``, ≤ 64 chars).
        repo_id: LeRobot ``<org>/<name>``.
        partitions: ``(capture_day, robot_id)`` pairs, or empty for all available partitions.
        fps: frame rate of the release, Hz (integer, as LeRobot requires).
        cameras: colour camera names of the profile (``observation.images.<camera>`` videos).
        state_joints: joints forming ``observation.state`` (``joint_state`` joints of the profile).
        action_joints: joints forming ``action`` (action joints of the profile).
        heldout_fraction, heldout_seed: each episode is held out on its own with probability
            ``heldout_fraction`` (a salted hash of its id, see :meth:`split`) when
            ``heldout_episode_ids`` is empty.
        heldout_episode_ids: explicit held-out episodes.
        video_codec: LeRobot video codec (``h264`` by default: SVT-AV1 is ~4x slower to encode on 2
            cores, see docs/environment.md).
        robot_type: LeRobot ``robot_type`` (default: the profile's robot model).
        min_quality: episodes with a lower quality score, or a failed QA gate, are left out unless a
            supervisor approved them; rejected episodes are always left out.
        cross_customer_grant: a release may hold data of more than one customer only under a grant
            ``{reference, granted_by, customers: [...]}`` naming every customer it mixes (seed 000:
            data of customer A must not silently flow into customer B's pipeline).
        profile: the robot profile's name (:data:`DEFAULT_PROFILE` by default): the release holds
            episodes of this profile only. The defaults of the fields above are the default
            profile's; :meth:`from_mapping` takes them from the spec's profile and checks every name
            against it (a dataclass built directly is not checked).
        qa: thresholds of the release checks this spec overrides (the ``qa`` block as written,
            only the keys given; ``None`` when none), see :class:`ReleaseQASettings`.
        version: the release version this spec describes (0 for the registered spec; see
            :meth:`with_version`, lib/dataset/versions.py). Not part of the YAML form.
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
    profile: str = DEFAULT_PROFILE
    qa: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    version: int = 0

    @property
    def spec_name(self) -> str:
        """The name of the registered spec; equals ``name`` for version 0, where ``name`` is the
        version id ``<spec_name>.<version>`` of a later version (lib/dataset/versions.py)."""
        return self.name if self.version == 0 else self.name[: -len(f".{self.version}")]

    def robot_profile(self) -> RobotProfile:
        """The release's robot profile as it is today (:func:`~hvla_platform.lib.formats.recording.profile.load_profile`
        of :attr:`profile`; its :attr:`~RobotProfile.key` names the version).

        Raises:
            ProfileError: the profile is unknown (with "did you mean") or its file is invalid.
        """
        return load_profile(self.profile)

    def with_version(self, version: int) -> "ReleaseSpec":
        """This spec as version ``version`` of its release: ``name`` becomes the version id
        (``<spec_name>`` for 0, ``<spec_name>.<version>`` after), which names every artifact
        of that version in the lake.

        Raises:
            ValueError: ``version`` is negative.
        """
        if version < 0:
            raise ValueError(f"release version must be ≥ 0, got {version}")
        name = self.spec_name if version == 0 else f"{self.spec_name}.{version}"
        return replace(self, name=name, version=version)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "release spec") -> "ReleaseSpec":
        """Validate a parsed YAML mapping strictly (:class:`ReleaseSpecDocument`) and build a spec.

        ``source`` names the file in error messages (a path or a lake URI).

        Cameras, joints and robot type left out default to the profile's (module docstring).

        Raises:
            ReleaseSpecError: one line naming ``source`` and each problem: an unknown key (with the
                closest valid key), a missing required field, a value of the wrong type or range, an
                unknown robot profile (with the closest profile name), a camera or joint the profile
                does not have (with the closest name), or a depth camera.
        """
        doc = validate_document(ReleaseSpecDocument, data, source=source, error_cls=ReleaseSpecError)
        heldout = doc.heldout or HeldOut()
        grant = doc.cross_customer_grant
        try:
            profile = load_profile(doc.profile)
            state_joints = default_state_joints(profile) if doc.state_joints is None else tuple(doc.state_joints)
        except ProfileError as exc:  # the file changed between validation and here
            raise ReleaseSpecError(f"{source}: profile: {exc}") from exc
        except ValueError as exc:
            raise ReleaseSpecError(f"{source}: state_joints: {exc}") from exc
        return cls(
            name=doc.name,
            repo_id=doc.repo_id,
            partitions=tuple(sorted((p.capture_day, p.robot_id) for p in doc.partitions)),
            fps=doc.fps,
            cameras=tuple(profile.rgb_cameras if doc.cameras is None else doc.cameras),
            state_joints=state_joints,
            action_joints=tuple(profile.action_names if doc.action_joints is None else doc.action_joints),
            heldout_fraction=float(heldout.fraction),
            heldout_seed=int(heldout.seed),
            heldout_episode_ids=tuple(heldout.episode_ids),
            video_codec=doc.video_codec,
            robot_type=profile.robot.model if doc.robot_type is None else doc.robot_type,
            description=doc.description,
            min_quality=float(doc.min_quality),
            cross_customer_grant=None if grant is None else {
                "reference": grant.reference, "granted_by": grant.granted_by, "customers": sorted(grant.customers)},
            profile=doc.profile,
            qa=(doc.qa.model_dump(exclude_unset=True) or None) if doc.qa is not None else None,
        )

    @classmethod
    def from_yaml(cls, text: str | bytes, *, source: str = "release spec") -> "ReleaseSpec":
        """Parse a YAML release spec (``yaml.safe_load``) and validate it like :meth:`from_mapping`.

        Raises:
            ReleaseSpecError: the text is not YAML, or the document breaks the contract (the
                message names ``source``).
        """
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            what = getattr(exc, "problem", None) or " ".join(str(exc).split())
            raise ReleaseSpecError(f"{source}: not valid YAML: {what}{where}") from exc
        return cls.from_mapping(data, source=source)

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-serialisable form of the spec as registered (round-trips through
        :meth:`from_mapping`; ``name`` is :attr:`spec_name`, the version is not part of it).

        ``profile`` is written (after ``repo_id``) only when it is not :data:`DEFAULT_PROFILE`: the
        form, and so :meth:`digest` and the release fingerprints, of every spec of the default
        profile is what it was before specs named profiles. ``qa`` is written (last) only when the
        spec overrides a release-check threshold, for the same reason."""
        d = asdict(self)
        d.pop("extra")
        d.pop("version")
        profile = d.pop("profile")
        if profile != DEFAULT_PROFILE:
            d = {"name": d.pop("name"), "repo_id": d.pop("repo_id"), "profile": profile, **d}
        d["name"] = self.spec_name  # a version's spec is its registered spec, as written
        if d["cross_customer_grant"] is None:
            d.pop("cross_customer_grant")
        else:
            d["cross_customer_grant"] = dict(d["cross_customer_grant"])
        d["partitions"] = [{"capture_day": c, "robot_id": r} for c, r in self.partitions] or "all"
        d["heldout"] = {"fraction": d.pop("heldout_fraction"), "seed": d.pop("heldout_seed"),
                        "episode_ids": list(d.pop("heldout_episode_ids"))}
        for k in ("cameras", "state_joints", "action_joints"):
            d[k] = list(d[k])
        qa = d.pop("qa")
        if qa:
            d["qa"] = dict(qa)
        return d

    def split(self, episode_ids: list[str]) -> tuple[list[str], list[str]]:
        """Split episodes into (train, heldout), each sorted by id.

        Explicit ``heldout_episode_ids`` win. Otherwise each episode is assigned **on its own**:
        it is held out when :func:`heldout_draw` of ``(heldout_seed, episode_id)`` — a number in
        [0, 1) taken from a sha256 of the seed and the id — is below ``heldout_fraction``. The
        assignment of an episode never depends on the other episodes, so adding, removing or
        rejecting episodes (a QA decision, a nightly snapshot, a new version of the release) never
        moves an episode between train and held-out; releases that share episodes must share the
        seed (docs/decisions.md, "Held-out split"). The held-out share of a small release varies
        around ``heldout_fraction`` (a binomial draw), and may be empty.
        """
        ids = sorted(set(episode_ids))
        if self.heldout_episode_ids:
            held_set = set(self.heldout_episode_ids)
        else:
            held_set = {e for e in ids if heldout_draw(self.heldout_seed, e) < self.heldout_fraction}
        return [e for e in ids if e not in held_set], [e for e in ids if e in held_set]

    def digest(self) -> str:
        """sha256 of the spec's canonical form (part of the release's fingerprint)."""
        return hashlib.sha256(yaml.safe_dump(self.to_dict(), sort_keys=True).encode()).hexdigest()
