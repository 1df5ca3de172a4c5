"""Rights parsing and propagation (intersection / union / earliest)."""

import datetime as dt

import pytest

from hvla_platform.lib.core.rights import Rights, RightsError, combine_rights


def meta(**rights_overrides):
    rights = {
        "data_owner": "hvla-lab", "license": "proprietary", "consent_refs": ["consent-1"],
        "allowed_uses": ["internal_training", "lab_robot"], "retention_until": "2030-01-01",
        "contains_human_video": False,
    }
    rights.update(rights_overrides)
    return {"site": "site-a", "customer": "cust-a", "rights": {k: v for k, v in rights.items() if v is not None}}


def test_parse_valid_block():
    r = Rights.from_episode_metadata(meta())
    assert r.allowed_uses == {"internal_training", "lab_robot"}
    assert r.retention_until == dt.date(2030, 1, 1)
    assert r.customers == {"cust-a"} and r.sites == {"site-a"}
    assert r.serving_allowed() == ["lab_robot"]
    assert "public_api" in r.serving_blocked()
    assert Rights.from_dict(r.to_dict()) == r


@pytest.mark.parametrize("override,needle", [
    ({"allowed_uses": ["resell_everything"]}, "unknown allowed use"),
    ({"allowed_uses": []}, "empty"),
    ({"retention_until": "next year"}, "ISO date"),
    ({"contains_human_video": "no"}, "true or false"),
    ({"license": None}, "license"),
])
def test_invalid_blocks_are_rejected_with_reason(override, needle):
    with pytest.raises(RightsError, match=needle):
        Rights.from_episode_metadata(meta(**override))


def test_missing_rights_block():
    with pytest.raises(RightsError, match="no 'rights' block"):
        Rights.from_episode_metadata({"site": "s", "customer": "c"})


def test_combine_intersects_uses_unions_parties_and_takes_earliest_retention():
    a = Rights.from_episode_metadata(meta())
    b = Rights.from_episode_metadata({**meta(allowed_uses=["internal_training", "staging_demo"], retention_until="2028-06-30",
                                            contains_human_video=True, consent_refs=["consent-2"]), "customer": "cust-b"})
    c = combine_rights([a, b])
    assert c.allowed_uses == {"internal_training"}
    assert c.customers == {"cust-a", "cust-b"}
    assert c.consent_refs == {"consent-1", "consent-2"}
    assert c.retention_until == dt.date(2028, 6, 30)
    assert c.contains_human_video is True
    assert c.to_metadata()["hvla/allowed_uses"] == "internal_training"
    with pytest.raises(RightsError):
        combine_rights([])
