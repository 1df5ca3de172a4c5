"""The runtime-data policy of a deployment: what the customer allows the telemetry of its robots to
become (seed 000, "Separate the right to train, serve, log, and retrain"; checklist
``before_retraining_from_runtime``).

A person writes one YAML file per deployment; ``hvla deploy --record-rollout DIR --runtime-policy
FILE`` validates it strictly (:func:`load_runtime_policy`: a misspelled key is refused naming the
file, the key and the closest valid key) and copies it into every rollout recording's
``metadata.yaml`` (``rollout.runtime_policy``). The rollout's **rights block is computed from this
policy** (:func:`rollout_rights_block`), never from the training data's rights: the checkpoint's
data belongs to whoever demonstrated it, the rollout's observations to the customer whose site
the robot works in. Example::

    policy_id: acme-line3-2026
    customer: acme
    site: acme-plant-3
    data_owner: acme
    license: acme-msa-2026
    retrain_permission: {granted: true, reference: "MSA-2026-17 section 4.2", granted_by: "J. Doe (acme legal)"}
    allowed_uses: [internal_training]       # what rollouts may be used for; internal_training = retraining
    retention_days: 365                     # rollouts are kept this many days after capture
    deletion: {contact: privacy@acme.example, process: "ticket to privacy@, executed with hvla rights revoke within 30 days"}
    redaction:
      rule: blackout                         # or drop: private frames are never stored
      cameras: [head]                        # cameras that can see private scenes
      windows_s: [[0.0, 0.5]]                # seconds from rollout start (e.g. the operator arms the robot in view)
    contains_people: false                   # the cameras can see people (rights: contains_human_video)

This module is in ``formats`` (not ``serving``) because the robot side (``serving``) writes it and
ingest (``ingest.rollouts``, below ``serving``) checks it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, model_validator

from hvla_platform.lib.core.contracts import StrictModel, validate_document
from hvla_platform.lib.core.rights import KNOWN_USES, RightsError

#: The use a rollout needs to be trained on (retraining from runtime data).
RETRAIN_USE = "internal_training"


class RuntimePolicyError(RightsError):
    """A runtime-data policy file breaks its contract (one line naming the file and the problem)."""


class RetrainPermission(StrictModel):
    """``retrain_permission``: the customer's permission to train on the deployment's telemetry."""

    granted: Annotated[bool, Field(strict=True)]
    reference: str | None = Field(default=None, description="the contract clause / consent record granting it")
    granted_by: str | None = Field(default=None, description="who granted it for the customer")

    @model_validator(mode="after")
    def _reference_when_granted(self) -> RetrainPermission:
        if self.granted and not (self.reference and self.reference.strip()):
            raise ValueError("a granted permission needs its 'reference' (the clause or consent record)")
        return self


class DeletionProcess(StrictModel):
    """``deletion``: how the customer asks for its rollout data to be deleted, and who carries it out."""

    contact: str = Field(min_length=1, description="where deletion requests go (address, team)")
    process: str = Field(min_length=1, description="what happens to a request (steps, deadline)")


class Redaction(StrictModel):
    """``redaction``: which camera frames are private and what happens to them on the robot.

    A frame is private when its camera is in ``cameras`` and its stamp, in seconds from the
    rollout's start, lies in one of ``windows_s`` (``[start, end)``). ``blackout`` stores it with
    every pixel 0; ``drop`` does not store it. Private pixels never leave the robot either way.
    """

    rule: Literal["blackout", "drop"]
    cameras: list[str] = Field(default_factory=list, description="camera names (the robot profile's)")
    windows_s: list[tuple[Annotated[float, Field(ge=0.0)], Annotated[float, Field(ge=0.0)]]] = Field(
        default_factory=list, description="[start, end) seconds from rollout start")
    reason: str | None = None

    @model_validator(mode="after")
    def _windows_ordered(self) -> Redaction:
        for a, b in self.windows_s:
            if not b > a:
                raise ValueError(f"redaction window [{a}, {b}] must end after it starts")
        return self

    def is_private(self, camera: str, t_s: float) -> bool:
        """True when a frame of ``camera`` at ``t_s`` seconds from the rollout's start is private."""
        return camera in self.cameras and any(a <= t_s < b for a, b in self.windows_s)


class RuntimeDataPolicy(StrictModel):
    """The contract of a deployment's runtime-data policy file (see the module docstring).

    ``deletion`` may be absent (the checklist's ``deletion_request_process_defined`` then fails and
    the rollout cannot be trained on); ``allowed_uses`` must name ``internal_training`` exactly when
    ``retrain_permission.granted`` is true.
    """

    policy_id: str = Field(min_length=1)
    customer: str = Field(min_length=1)
    site: str = Field(min_length=1)
    data_owner: str = Field(min_length=1)
    license: str = Field(min_length=1)
    retrain_permission: RetrainPermission
    allowed_uses: list[str] = Field(min_length=1, description=f"uses of the rollout data, of {KNOWN_USES}")
    retention_days: Annotated[int, Field(strict=True, gt=0)] = Field(description="days kept after capture")
    deletion: DeletionProcess | None = None
    redaction: Redaction | None = None
    contains_people: Annotated[bool, Field(strict=True)] = False

    @model_validator(mode="after")
    def _uses_match_permission(self) -> RuntimeDataPolicy:
        unknown = [u for u in self.allowed_uses if u not in KNOWN_USES]
        if unknown:
            raise ValueError(f"allowed_uses {unknown} are not known uses {list(KNOWN_USES)}")
        if self.retrain_permission.granted != (RETRAIN_USE in self.allowed_uses):
            raise ValueError(f"allowed_uses {'lacks' if self.retrain_permission.granted else 'names'} "
                             f"{RETRAIN_USE!r} but retrain_permission.granted is "
                             f"{str(self.retrain_permission.granted).lower()}")
        return self


def parse_runtime_policy(data: Any, *, source: str = "runtime policy") -> RuntimeDataPolicy:
    """Validate a parsed policy (``yaml.safe_load``) strictly.

    Raises:
        RuntimePolicyError: one line naming ``source`` and the problem (unknown key with the closest
            valid key, missing field, wrong type, inconsistent permission and uses).
    """
    return validate_document(RuntimeDataPolicy, data, source=source, error_cls=RuntimePolicyError)


def load_runtime_policy(path: str | Path) -> RuntimeDataPolicy:
    """Read and validate a runtime-data policy YAML file.

    Raises:
        RuntimePolicyError: unreadable file, not YAML, or see :func:`parse_runtime_policy`.
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RuntimePolicyError(f"{path}: cannot read the runtime-data policy: {' '.join(str(exc).split())}") from None
    return parse_runtime_policy(data, source=str(path))


def rollout_rights_block(policy: RuntimeDataPolicy, capture_day: str) -> dict[str, Any]:
    """The ``rights`` block of a rollout recording (:class:`~hvla_platform.lib.core.rights.RightsBlock`
    keys), from the deployment's policy: owner, license, uses and customer/site are the policy's;
    ``consent_refs`` is the permission's reference (empty without permission); retention ends
    ``retention_days`` after ``capture_day`` (YYYY-MM-DD); the customer's environment is always in
    view; ``contains_human_video`` is ``contains_people``.

    Raises:
        ValueError: ``capture_day`` is not an ISO date.
    """
    day = dt.date.fromisoformat(capture_day)
    ref = policy.retrain_permission.reference
    return {
        "data_owner": policy.data_owner,
        "license": policy.license,
        "consent_refs": [ref] if ref and policy.retrain_permission.granted else [],
        "allowed_uses": list(policy.allowed_uses),
        "retention_until": (day + dt.timedelta(days=policy.retention_days)).isoformat(),
        "contains_human_video": bool(policy.contains_people),
        "contains_customer_environment": True,
        "site": policy.site,
        "customer": policy.customer,
    }
