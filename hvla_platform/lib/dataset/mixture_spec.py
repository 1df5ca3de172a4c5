"""Mixture specs: which published releases a training mixture samples, with what weights, and how
their features meet (docs/mixtures.md).

A mixture spec is a small YAML file a person writes (``releases/mixtures/<name>.yaml`` in the repo;
stored in the lake under ``mixture-specs/<name>.yaml`` once registered)::

    name: demo-cotrain
    repo_id: hvla/demo-cotrain
    kind: mixture
    intended_uses: [internal_training]     # every source must allow each (default: internal_training)
    within_source: frames                   # frames (default) | episodes: how a source's share is spread
    seed: 0                                 # the sampler's default seed
    target: {action_dim: 14, state_dim: 17} # optional: pad to these (default: the widest source)
    mixed_fps: refuse                       # refuse (default) | per_source: action sources keep their own rates
    sources:
      - release: g1-reach-v1                # latest published version, resolved and recorded
        weight: 0.6
        role: robot_teleop                  # robot_teleop | simulation | human_video | rollout
      - release: ur5e-pick@2                # version 2 pinned (also: ur5e-pick.2, ur5e-pick@latest)
        weight: 0.2
        feature_map: {action: action, observation.state: observation.state,
                      observation.images.wrist: observation.images.wrist}
      - release: ego-manipulation
        weight: 0.2                         # an action-free source: role human_video by default
    cross_customer_grant: {reference: ..., granted_by: ..., customers: [...]}   # only when mixing customers

**Weights** are any positive finite numbers; they are normalised to shares summing to 1 and both
are recorded. **Feature maps** map ``<source feature>: <mixture feature>``; a source without one
takes its features under their own names. The mixture features are ``action``,
``observation.state``, ``observation.locomotion_command`` and ``observation.images.<slot>``
(:data:`MIXTURE_FEATURES`); a source feature left out of a given map is not used (listed on the
card). Whether the sources' features are compatible is decided against the lake by
:func:`hvla_platform.lib.dataset.mixture.resolve_mixture`; this module checks the file alone.

Validated strictly by :class:`MixtureSpecDocument` (:class:`~hvla_platform.lib.core.contracts.StrictModel`):
a misspelled key is a :class:`MixtureSpecError` naming the file, the key and the closest valid
key, e.g. ``releases/mixtures/x.yaml: sources[1]: unknown key 'wieght' (did you mean 'weight'?)``.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import Field, field_validator, model_validator

from hvla_platform.lib.core import features
from hvla_platform.lib.core.contracts import StrictModel, validate_document
from hvla_platform.lib.core.rights import KNOWN_USES
from hvla_platform.lib.core.suggest import did_you_mean
from hvla_platform.lib.dataset.spec import _NAME_RE, CrossCustomerGrant, ReleaseSpecDocument

#: What a source is (seed 000's lifecycle: robot teleop, simulation, human video, rollouts).
ROLES = ("robot_teleop", "simulation", "human_video", "rollout")
#: Roles whose data are robot actions: such a source must have an action feature.
ACTION_ROLES = ("robot_teleop", "simulation", "rollout")
#: Losses a source can supervise: ``action`` needs its action feature (behaviour cloning / flow
#: matching on action chunks); ``latent_action`` needs a camera only (a latent-action model learns
#: actions from consecutive frames: LAPA, EgoHumanoid's human-video co-training). A trainer uses an
#: action-free source only for the losses it supports.
LOSSES = ("action", "latent_action")
#: How a source's share is spread over its episodes: ``frames`` — every frame of the source equally
#: likely (the usual uniform sampling within one LeRobot dataset); ``episodes`` — every episode
#: equally likely, its frames uniformly within it.
WITHIN_SOURCE = ("frames", "episodes")
#: What to do when action sources differ in fps: ``refuse`` (default), or ``per_source`` — each
#: source keeps its own control rate, so an action chunk of H steps spans H / fps seconds of that
#: source (Octo/OXE mix datasets recorded at 3–30 Hz this way); the trainer must know it.
MIXED_FPS = ("refuse", "per_source")
#: Non-image features a mixture can carry (images: :data:`~hvla_platform.lib.core.features.IMAGE_PREFIX` + a slot).
MIXTURE_FEATURES = (features.ACTION, features.STATE, features.LOCOMOTION_COMMAND)
_SLOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: A source's ``release``: ``<spec name>``, ``<spec name>@latest``, ``<spec name>@<n>`` or a version id ``<spec name>.<n>``.
_RELEASE_REF_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]{0,127}?)(?:@(?P<at>latest|[0-9]+))?$")


class MixtureSpecError(ValueError):
    """A mixture spec is malformed (one line naming the file and the problem)."""


def check_mixture_feature(name: str) -> str:
    """``name`` if it is a mixture feature: one of :data:`MIXTURE_FEATURES` or
    ``observation.images.<slot>`` (slot: letters, digits, ``_``, ``-``).

    Raises:
        ValueError: another name (with the closest mixture feature).
    """
    if name in MIXTURE_FEATURES:
        return name
    if name.startswith(features.IMAGE_PREFIX) and _SLOT_RE.match(name[len(features.IMAGE_PREFIX):]):
        return name
    known = [*MIXTURE_FEATURES, f"{features.IMAGE_PREFIX}<camera slot>"]
    raise ValueError(f"{name!r} is not a mixture feature{did_you_mean(name, known)}; mixture features are "
                     f"{', '.join(known)}")


class TargetDoc(StrictModel):
    """The ``target`` block: widths the mixture pads its vector features to (default: the widest
    source's). A source wider than the target is refused."""

    action_dim: Annotated[int, Field(strict=True, ge=1, le=4096)] = Field(default=None)
    state_dim: Annotated[int, Field(strict=True, ge=1, le=4096)] = Field(default=None)


class MixtureSourceDoc(StrictModel):
    """One ``sources`` entry: a published release, its weight and how its features enter."""

    release: str = Field(description="<name> (latest), <name>@latest, <name>@<n> or <name>.<n>")
    name: str = Field(default=None, description="the source's name in the mixture (default: the release's name)")
    weight: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    role: Literal[ROLES] = Field(default=None, description="default: the release manifest's (source_kind), else "
                                 "human_video when action-free, else robot_teleop")
    split: Literal["train", "all"] = "train"
    feature_map: dict[str, str] = Field(default=None, description="<source feature>: <mixture feature>")
    losses: list[Literal[LOSSES]] = Field(default=None, description="default: every loss the source supports")

    @field_validator("release")
    @classmethod
    def _release_ref(cls, value: str) -> str:
        if not _RELEASE_REF_RE.match(value):
            raise ValueError(f"must be <release>, <release>@latest, <release>@<version> or <release>.<version>, "
                             f"got {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"must be 1-64 letters, digits, '.', '_' or '-', got {value!r}")
        return value

    @field_validator("weight", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected a positive number, got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"expected a finite positive number, got {value!r}")
        return value

    @field_validator("feature_map")
    @classmethod
    def _targets(cls, value: dict[str, str]) -> dict[str, str]:
        for target in value.values():
            check_mixture_feature(target)
        seen: dict[str, str] = {}
        for src, target in value.items():
            if target in seen:
                raise ValueError(f"{seen[target]!r} and {src!r} both map to {target!r}; a mixture feature takes one "
                                 "source feature")
            seen[target] = src
        return value

    @field_validator("losses")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one loss (or be left out: every loss the source supports)")
        if len(set(value)) != len(value):
            raise ValueError(f"lists a loss twice: {value}")
        return value


class MixtureSpecDocument(StrictModel):
    """The contract of a mixture spec file, as a person writes it (module docstring).

    ``name``, ``repo_id``, ``kind: mixture`` and ``sources`` are required.
    """

    name: str = Field(description="mixture name, the partition key: [A-Za-z0-9._-], at most 64 characters")
    repo_id: str = Field(description="'<org>/<name>' a trainer logs the mixture under")
    kind: Literal["mixture"]
    description: str = ""
    intended_uses: list[str] = Field(default_factory=lambda: ["internal_training"])
    within_source: Literal[WITHIN_SOURCE] = "frames"
    mixed_fps: Literal[MIXED_FPS] = "refuse"
    seed: Annotated[int, Field(strict=True, ge=0)] = 0
    target: TargetDoc | None = None
    sources: Annotated[list[MixtureSourceDoc], Field(min_length=1)]
    cross_customer_grant: CrossCustomerGrant | None = None

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # a release spec's rule: mixture versions are named like release versions (<name>.<n>)
        return ReleaseSpecDocument._safe_name(value)

    @field_validator("repo_id")
    @classmethod
    def _org_slash_name(cls, value: str) -> str:
        return ReleaseSpecDocument._org_slash_name(value)

    @field_validator("intended_uses")
    @classmethod
    def _known_uses(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one use (e.g. internal_training)")
        bad = [u for u in value if u not in KNOWN_USES]
        if bad:
            raise ValueError("unknown use(s) " + ", ".join(f"{u!r}{did_you_mean(u, KNOWN_USES)}" for u in bad))
        return value

    @model_validator(mode="after")
    def _distinct_sources(self) -> "MixtureSpecDocument":
        names = [s.name or _RELEASE_REF_RE.match(s.release)["name"] for s in self.sources]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"sources: source name(s) {twice} given twice; name each source (`name:`) to mix two "
                             "versions of one release")
        return self


@dataclass(frozen=True)
class MixtureSource:
    """One source of a :class:`MixtureSpec` as written (unresolved).

    Attributes:
        name: the source's name in the mixture (the ``name`` key, else the release's spec name).
        release: the release reference as written (``g1-reach-v1``, ``g1-reach-v1@2``, ``…@latest``,
            ``g1-reach-v1.2``).
        weight: its positive weight (not normalised).
        role: one of :data:`ROLES`, or None (the release manifest's, else by whether it has an action).
        split: ``train`` (the release's train split: held-out episodes stay for evaluation) or ``all``.
        feature_map: ``{source feature: mixture feature}``, or None (every feature under its own name).
        losses: the losses the source supervises, or None (every loss it supports).
    """

    name: str
    release: str
    weight: float
    role: str | None = None
    split: str = "train"
    feature_map: Mapping[str, str] | None = None
    losses: tuple[str, ...] | None = None

    @property
    def release_name(self) -> str:
        """The release reference without ``@…`` (a spec name, or a version id ``<name>.<n>``)."""
        return _RELEASE_REF_RE.match(self.release)["name"]

    @property
    def release_at(self) -> str | None:
        """What follows ``@`` (``latest`` or a version number), or None."""
        return _RELEASE_REF_RE.match(self.release)["at"]

    def to_dict(self) -> dict[str, Any]:
        """The entry as the canonical spec writes it (keys left out when not given)."""
        d: dict[str, Any] = {"name": self.name, "release": self.release, "weight": self.weight, "split": self.split}
        if self.role is not None:
            d["role"] = self.role
        if self.feature_map is not None:
            d["feature_map"] = dict(self.feature_map)
        if self.losses is not None:
            d["losses"] = list(self.losses)
        return d


@dataclass(frozen=True)
class MixtureSpec:
    """A validated mixture spec (module docstring for the YAML form).

    Attributes:
        name, repo_id, description: from the file.
        sources: the sources in file order.
        intended_uses: uses the mixture is built for; every source must allow each.
        within_source: :data:`WITHIN_SOURCE`.
        mixed_fps: :data:`MIXED_FPS`.
        seed: the sampler's default seed.
        action_dim, state_dim: widths to pad to, or None (the widest source's).
        cross_customer_grant: ``{reference, granted_by, customers}`` or None.
    """

    name: str
    repo_id: str
    sources: tuple[MixtureSource, ...]
    intended_uses: tuple[str, ...] = ("internal_training",)
    within_source: str = "frames"
    mixed_fps: str = "refuse"
    seed: int = 0
    action_dim: int | None = None
    state_dim: int | None = None
    description: str = ""
    cross_customer_grant: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "mixture spec") -> "MixtureSpec":
        """Validate a parsed YAML mapping strictly (:class:`MixtureSpecDocument`).

        Raises:
            MixtureSpecError: one line naming ``source`` and each problem: an unknown key (with the
                closest valid key), a missing field, a weight ≤ 0 or not finite, an unknown role,
                use or loss, a feature map onto something that is not a mixture feature, two
                sources of one name.
        """
        doc = validate_document(MixtureSpecDocument, data, source=source, error_cls=MixtureSpecError)
        grant = doc.cross_customer_grant
        target = doc.target or TargetDoc()
        return cls(
            name=doc.name, repo_id=doc.repo_id, description=doc.description,
            sources=tuple(MixtureSource(
                name=s.name or _RELEASE_REF_RE.match(s.release)["name"], release=s.release, weight=float(s.weight),
                role=s.role, split=s.split, feature_map=None if s.feature_map is None else dict(s.feature_map),
                losses=None if s.losses is None else tuple(s.losses)) for s in doc.sources),
            intended_uses=tuple(dict.fromkeys(doc.intended_uses)), within_source=doc.within_source, seed=doc.seed,
            mixed_fps=doc.mixed_fps,
            action_dim=target.action_dim, state_dim=target.state_dim,
            cross_customer_grant=None if grant is None else {
                "reference": grant.reference, "granted_by": grant.granted_by, "customers": sorted(grant.customers)},
        )

    @classmethod
    def from_yaml(cls, text: str | bytes, *, source: str = "mixture spec") -> "MixtureSpec":
        """Parse YAML (``yaml.safe_load``) and validate like :meth:`from_mapping`.

        Raises:
            MixtureSpecError: not YAML, or the document breaks the contract.
        """
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise MixtureSpecError(f"{source}: not valid YAML: {getattr(exc, 'problem', None) or exc}{where}") from exc
        return cls.from_mapping(data, source=source)

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON/YAML form (round-trips through :meth:`from_mapping`)."""
        d: dict[str, Any] = {"name": self.name, "repo_id": self.repo_id, "kind": "mixture",
                             "description": self.description, "intended_uses": list(self.intended_uses),
                             "within_source": self.within_source, "seed": self.seed,
                             "sources": [s.to_dict() for s in self.sources]}
        target = {k: v for k, v in (("action_dim", self.action_dim), ("state_dim", self.state_dim)) if v is not None}
        if target:
            d["target"] = target
        if self.mixed_fps != "refuse":  # written only when stated: specs without it keep their digest
            d["mixed_fps"] = self.mixed_fps
        if self.cross_customer_grant is not None:
            d["cross_customer_grant"] = dict(self.cross_customer_grant)
        return d

    def digest(self) -> str:
        """sha256 of the canonical form (part of the mixture's fingerprint)."""
        return hashlib.sha256(yaml.safe_dump(self.to_dict(), sort_keys=True).encode()).hexdigest()
