"""The runtime-data policy a person writes for a deployment: strict keys, consistent permission and
uses, and the rollout rights block it gives (not the training data's)."""

import copy

import pytest
import yaml

from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.formats.recording.runtime_policy import (
    RuntimePolicyError,
    load_runtime_policy,
    parse_runtime_policy,
    rollout_rights_block,
)

POLICY = {
    "policy_id": "acme-line3-2026", "customer": "acme", "site": "acme-plant-3", "data_owner": "acme",
    "license": "acme-msa-2026",
    "retrain_permission": {"granted": True, "reference": "MSA-2026-17 section 4.2", "granted_by": "J. Doe"},
    "allowed_uses": ["internal_training"], "retention_days": 365,
    "deletion": {"contact": "privacy@acme.example", "process": "ticket, carried out within 30 days"},
    "redaction": {"rule": "blackout", "cameras": ["head"], "windows_s": [[0.0, 0.3]]},
}


def policy(**changes) -> dict:
    """A copy of :data:`POLICY` with top-level keys replaced (the other tests' policies too)."""
    doc = copy.deepcopy(POLICY)
    doc.update(changes)
    return doc


#: A deployment whose customer does not permit retraining (its rollouts are incident evidence only).
NO_PERMISSION = policy(policy_id="acme-no-retrain", retrain_permission={"granted": False}, allowed_uses=["lab_robot"])


def test_a_valid_policy_gives_the_rollout_its_own_rights():
    pol = parse_runtime_policy(policy())
    block = rollout_rights_block(pol, "2026-12-01")
    assert block["retention_until"] == "2027-12-01" and block["customer"] == "acme"
    assert block["consent_refs"] == ["MSA-2026-17 section 4.2"] and block["contains_customer_environment"] is True
    rights = Rights.from_episode_metadata({"rights": block, "site": "x", "customer": "acme"})
    assert rights.allowed_uses == frozenset({"internal_training"}) and rights.data_owners == frozenset({"acme"})
    assert pol.redaction.is_private("head", 0.2) and not pol.redaction.is_private("head", 0.3)
    assert not pol.redaction.is_private("wrist_right", 0.2)


def test_a_misspelled_key_is_refused_naming_it_and_the_closest_key(tmp_path):
    doc = policy()
    doc["retension_days"] = doc.pop("retention_days")
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(RuntimePolicyError) as exc:
        load_runtime_policy(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg
    assert "'retension_days'" in msg and "did you mean 'retention_days'" in msg


@pytest.mark.parametrize("changes, needle", [
    ({"retrain_permission": {"granted": True}}, "needs its 'reference'"),
    ({"allowed_uses": ["lab_robot"]}, "lacks 'internal_training' but retrain_permission.granted is true"),
    ({"retrain_permission": {"granted": False}}, "names 'internal_training' but retrain_permission.granted is false"),
    ({"allowed_uses": ["internal_training", "resale"]}, "not known uses"),
    ({"redaction": {"rule": "blur", "cameras": ["head"]}}, "redaction.rule"),
    ({"redaction": {"rule": "drop", "cameras": ["head"], "windows_s": [[1.0, 0.5]]}}, "must end after it starts"),
    ({"retention_days": "365"}, "retention_days"),
])
def test_inconsistent_or_mistyped_policies_are_refused(changes, needle):
    with pytest.raises(RuntimePolicyError, match=needle):
        parse_runtime_policy(policy(**changes), source="p.yaml")


def test_without_permission_the_rollout_may_not_be_trained_on():
    pol = parse_runtime_policy(NO_PERMISSION)
    block = rollout_rights_block(pol, "2026-12-01")
    assert block["allowed_uses"] == ["lab_robot"] and block["consent_refs"] == []


def test_an_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("policy_id: [unclosed\n")
    with pytest.raises(RuntimePolicyError, match=r"policy.yaml: cannot read the runtime-data policy") as exc:
        load_runtime_policy(path)
    assert "\n" not in str(exc.value)
