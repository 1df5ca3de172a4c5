"""Data rights of raw episodes and of everything derived from them.

Every raw episode declares its rights in ``metadata.yaml`` (DESIGN.md "Rights, ownership,
lineage"; seed 000's ownership by artifact, seed 001's consent and retention). A derived
artifact's rights are computed from its inputs by :func:`combine_rights`:

* allowed uses: the **intersection** of the inputs' allowed uses;
* data owners, sites, customers, consent references, licenses: the **union**;
* retention: the **earliest** ``retention_until`` date;
* ``contains_human_video`` / ``contains_customer_environment``: true if any input is.

The keys of the ``rights`` block are checked strictly (:class:`RightsBlock`): a misspelled key such
as ``contains_customer_enviroment`` is refused with the closest valid key, instead of the flag it
meant silently defaulting to false.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pydantic import Field

from hvla_platform.lib.core.contracts import StrictModel, validate_document

#: Uses a piece of data may be put to (seed 000: "separate the right to train, serve, log and
#: retrain"). Training and serving targets are both named here so a checkpoint's serving
#: allowance can be derived from its data.
KNOWN_USES = (
    "internal_training",
    "lab_robot",
    "staging_demo",
    "public_api",
    "third_party_resale",
    # human video (docs/human_video.md): identifiable people (unblurred faces) may be used for
    # training; without it every release blurs faces first. Robot recordings never list it.
    "identifiable_people_training",
)
#: The allowed use that lets a release keep identifiable people (faces unblurred) in its frames.
IDENTIFIABLE_PEOPLE_USE = "identifiable_people_training"
#: Uses that are deployment (serving) targets, as opposed to training.
SERVING_USES = ("lab_robot", "staging_demo", "public_api", "third_party_resale")


class RightsError(ValueError):
    """A rights block is missing, malformed or does not allow what was asked."""


class RightsBlock(StrictModel):
    """The contract of the ``rights`` block of a recording's ``metadata.yaml``: its keys.

    Unknown keys are refused and the six fields without a default are required. The values are
    typed ``Any`` here on purpose: :meth:`Rights.from_episode_metadata` checks each of them and
    raises a :class:`RightsError` naming the field and the expected form (the descriptions below).
    """

    data_owner: Any = Field(description="a string or a list of strings, not empty")
    license: Any = Field(description="a string or a list of strings, not empty")
    consent_refs: Any = Field(description="a string or a list of strings")
    allowed_uses: Any = Field(description=f"a non-empty list of {KNOWN_USES}")
    retention_until: Any = Field(description="an ISO date (YYYY-MM-DD)")
    contains_human_video: Any = Field(description="true or false")
    contains_customer_environment: Any = Field(default=False, description="true or false (default false)")
    site: Any = Field(default=None, description="a string or a list (default: the metadata's top-level 'site')")
    customer: Any = Field(default=None,
                          description="a string or a list (default: the metadata's top-level 'customer')")


def _as_list(value: Any, field_name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v for v in value if v.strip()]
    raise RightsError(f"'{field_name}' must be a string or a list of strings, got {value!r}")


def _as_date(value: Any, field_name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError as exc:
            raise RightsError(f"'{field_name}' must be an ISO date (YYYY-MM-DD), got {value!r}") from exc
    raise RightsError(f"'{field_name}' must be an ISO date (YYYY-MM-DD), got {value!r}")


def _as_bool(value: Any, field_name: str) -> bool:
    if isinstance(value, bool):
        return value
    raise RightsError(f"'{field_name}' must be true or false, got {value!r}")


@dataclass(frozen=True)
class Rights:
    """Rights attached to a raw episode or a derived artifact.

    Attributes:
        data_owners: who owns the data (union over inputs).
        sites: collection sites.
        customers: customers whose data or environment is involved.
        consent_refs: consent record ids of demonstrators/operators.
        licenses: license identifiers (e.g. ``"proprietary"``, ``"CC-BY-NC-4.0"``).
        allowed_uses: subset of :data:`KNOWN_USES`.
        retention_until: the date after which the data must not enter new artifacts.
        contains_human_video: any input contains video of people.
        contains_customer_environment: any input shows a customer's premises or assets.
    """

    data_owners: frozenset[str]
    sites: frozenset[str]
    customers: frozenset[str]
    consent_refs: frozenset[str]
    licenses: frozenset[str]
    allowed_uses: frozenset[str]
    retention_until: dt.date
    contains_human_video: bool = False
    contains_customer_environment: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_episode_metadata(cls, metadata: Mapping[str, Any]) -> "Rights":
        """Validate and parse the rights of one raw episode from its ``metadata.yaml`` mapping.

        ``site`` and ``customer`` are read from the top level of the metadata (they describe the
        capture), everything else from its ``rights`` block, whose keys must be those of
        :class:`RightsBlock`.

        Raises:
            RightsError: the rights block is missing, has an unknown key (the message names it and
                the closest valid key), a required field is missing or malformed, or an allowed
                use is not one of :data:`KNOWN_USES`.
        """
        if not isinstance(metadata, Mapping):
            raise RightsError("metadata.yaml must be a mapping")
        block = metadata.get("rights")
        if block is None:
            raise RightsError("metadata.yaml has no 'rights' block: the episode declares no rights")
        if not isinstance(block, Mapping):
            raise RightsError("'rights' must be a mapping")
        validate_document(RightsBlock, block, source="rights", error_cls=RightsError)
        required = ("data_owner", "license", "consent_refs", "allowed_uses", "retention_until",
                    "contains_human_video")
        missing = [k for k in required if k not in block]
        for k in ("site", "customer"):
            if not metadata.get(k) and not block.get(k):
                missing.append(k)
        if missing:
            raise RightsError(f"rights block is missing required field(s): {', '.join(missing)}")
        uses = _as_list(block["allowed_uses"], "allowed_uses")
        if not uses:
            raise RightsError("'allowed_uses' is empty: the episode may not be used for anything")
        unknown = sorted(set(uses) - set(KNOWN_USES))
        if unknown:
            raise RightsError(f"unknown allowed use(s) {unknown}; known: {list(KNOWN_USES)}")
        owners = _as_list(block["data_owner"], "data_owner")
        licenses = _as_list(block["license"], "license")
        if not owners:
            raise RightsError("'data_owner' is empty")
        if not licenses:
            raise RightsError("'license' is empty")
        return cls(
            data_owners=frozenset(owners),
            sites=frozenset(_as_list(block.get("site") or metadata.get("site"), "site")),
            customers=frozenset(_as_list(block.get("customer") or metadata.get("customer"), "customer")),
            consent_refs=frozenset(_as_list(block["consent_refs"], "consent_refs")),
            licenses=frozenset(licenses),
            allowed_uses=frozenset(uses),
            retention_until=_as_date(block["retention_until"], "retention_until"),
            contains_human_video=_as_bool(block["contains_human_video"], "contains_human_video"),
            contains_customer_environment=_as_bool(
                block.get("contains_customer_environment", False), "contains_customer_environment"
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (sorted lists, ISO date), as stored in manifests."""
        return {
            "data_owners": sorted(self.data_owners),
            "sites": sorted(self.sites),
            "customers": sorted(self.customers),
            "consent_refs": sorted(self.consent_refs),
            "licenses": sorted(self.licenses),
            "allowed_uses": sorted(self.allowed_uses),
            "retention_until": self.retention_until.isoformat(),
            "contains_human_video": self.contains_human_video,
            "contains_customer_environment": self.contains_customer_environment,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Rights":
        """Inverse of :meth:`to_dict`.

        Raises:
            RightsError: a field is missing or malformed.
        """
        try:
            return cls(
                data_owners=frozenset(data["data_owners"]),
                sites=frozenset(data["sites"]),
                customers=frozenset(data["customers"]),
                consent_refs=frozenset(data["consent_refs"]),
                licenses=frozenset(data["licenses"]),
                allowed_uses=frozenset(data["allowed_uses"]),
                retention_until=_as_date(data["retention_until"], "retention_until"),
                contains_human_video=bool(data["contains_human_video"]),
                contains_customer_environment=bool(data["contains_customer_environment"]),
            )
        except KeyError as exc:
            raise RightsError(f"rights record is missing {exc.args[0]!r}") from exc

    def to_metadata(self) -> dict[str, str | list[str] | bool]:
        """Dagster metadata entries under the ``hvla/`` namespace (DESIGN.md conventions)."""
        d = self.to_dict()
        return {
            "hvla/data_owners": ", ".join(d["data_owners"]),
            "hvla/sites": ", ".join(d["sites"]),
            "hvla/customers": ", ".join(d["customers"]),
            "hvla/consent_refs": ", ".join(d["consent_refs"]),
            "hvla/license": ", ".join(d["licenses"]),
            "hvla/allowed_uses": ", ".join(d["allowed_uses"]) or "(none)",
            "hvla/retention_until": d["retention_until"],
            "hvla/contains_human_video": d["contains_human_video"],
            "hvla/contains_customer_environment": d["contains_customer_environment"],
        }

    def serving_allowed(self) -> list[str]:
        """Deployment targets (:data:`SERVING_USES`) this data allows, sorted."""
        return sorted(u for u in self.allowed_uses if u in SERVING_USES)

    def serving_blocked(self) -> list[str]:
        """Deployment targets this data does not allow, sorted."""
        return sorted(u for u in SERVING_USES if u not in self.allowed_uses)

    def is_expired(self, on: dt.date) -> bool:
        """True if ``on`` is after :attr:`retention_until`."""
        return on > self.retention_until

    @property
    def identifiable_people_allowed(self) -> bool:
        """True if the data may be used for training with identifiable people in it
        (:data:`IDENTIFIABLE_PEOPLE_USE` among the allowed uses)."""
        return IDENTIFIABLE_PEOPLE_USE in self.allowed_uses

    @property
    def requires_face_blur(self) -> bool:
        """True if frames of this data must have faces blurred before any release: it contains
        human video and does not allow identifiable people (docs/human_video.md)."""
        return self.contains_human_video and not self.identifiable_people_allowed


def combine_rights(inputs: Iterable[Rights]) -> Rights:
    """Rights of an artifact derived from ``inputs`` (intersection / union / earliest).

    Raises:
        RightsError: ``inputs`` is empty (an artifact built from nothing has no rights).
    """
    items = list(inputs)
    if not items:
        raise RightsError("cannot derive rights from no inputs")
    allowed = frozenset.intersection(*(r.allowed_uses for r in items))
    return Rights(
        data_owners=frozenset().union(*(r.data_owners for r in items)),
        sites=frozenset().union(*(r.sites for r in items)),
        customers=frozenset().union(*(r.customers for r in items)),
        consent_refs=frozenset().union(*(r.consent_refs for r in items)),
        licenses=frozenset().union(*(r.licenses for r in items)),
        allowed_uses=allowed,
        retention_until=min(r.retention_until for r in items),
        contains_human_video=any(r.contains_human_video for r in items),
        contains_customer_environment=any(r.contains_customer_environment for r in items),
    )


def uses_blocked(named: Mapping[str, Rights], uses: Iterable[str]) -> dict[str, list[str]]:
    """Which of ``named`` (name → rights, e.g. the sources of a mixture) do not allow every use of
    ``uses``: ``{name: [uses it does not allow, sorted]}``, only names that block something, in
    the order of ``named``. Empty when every input allows every use (then
    ``combine_rights(named.values()).allowed_uses`` holds ``uses``: the intersection).

    Raises:
        RightsError: a use in ``uses`` is not one of :data:`KNOWN_USES`.
    """
    wanted = list(dict.fromkeys(uses))
    unknown = [u for u in wanted if u not in KNOWN_USES]
    if unknown:
        raise RightsError(f"unknown use(s) {unknown}; known: {list(KNOWN_USES)}")
    out: dict[str, list[str]] = {}
    for name, r in named.items():
        missing = sorted(u for u in wanted if u not in r.allowed_uses)
        if missing:
            out[name] = missing
    return out
