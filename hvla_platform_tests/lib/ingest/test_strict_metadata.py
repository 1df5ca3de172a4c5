"""A recording whose metadata.yaml breaks its contract is quarantined by ingest with a reason naming
the key, the file and the closest valid key; the raw layer never sees it and no file is changed."""

from __future__ import annotations

import hashlib

import pytest

from hvla_platform.lib.core.keys import landing_prefix, quarantine_prefix, raw_prefix
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ingest.landing import land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform_tests.fixtures.recordings import default_rights, write_recording

DAY, ROBOT = "2026-11-10", "g1-001"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("strict-meta")
    lake, src = LocalLake(tmp / "lake"), tmp / "src"
    rights = default_rights()
    del rights["contains_customer_environment"]
    rights["contains_customer_enviroment"] = True  # the operator meant to flag a customer's premises
    folders = {
        "ep-good": write_recording(src, episode_id="ep-good", seed=1, duration_s=1.0),
        "ep-typo": write_recording(src, episode_id="ep-typo", seed=2, duration_s=1.0, rights=rights),
    }
    before = {p: _sha(p) for p in src.rglob("*") if p.is_file()}
    landed = {ep: land_recording(lake, f) for ep, f in folders.items()}
    result = ingest_partition(lake, DAY, ROBOT)
    return {"lake": lake, "src": src, "before": before, "landed": landed,
            "by": {e.episode_id: e for e in result.episodes}}


def test_a_misspelled_rights_key_quarantines_the_episode_with_that_reason(ingested):
    lake = ingested["lake"]
    assert ingested["landed"]["ep-typo"].status == "landed"  # landing only reads the identity
    meta_key = f"{landing_prefix(DAY, ROBOT, 'ep-typo')}/metadata.yaml"  # the lake key: no absolute path is stored
    expected = (f"rights: {meta_key}: rights: unknown key 'contains_customer_enviroment' "
                "(did you mean 'contains_customer_environment'?)")
    outcome = ingested["by"]["ep-typo"]
    assert outcome.status == "quarantined" and not outcome.convertible
    assert outcome.reasons == [expected]
    reason = lake.read_json(f"{quarantine_prefix(DAY, ROBOT, 'ep-typo')}/reason.json")
    assert reason["reasons"] == [expected] and reason["stage"] == "raw_mcap"
    # not published: the raw layer holds no trace of it, the quarantine keeps copies of the files
    assert lake.read_manifest(raw_prefix(DAY, ROBOT, "ep-typo")) is None
    assert lake.list_keys(raw_prefix(DAY, ROBOT, "ep-typo")) == []
    kept = lake.read_bytes(f"{quarantine_prefix(DAY, ROBOT, 'ep-typo')}/files/metadata.yaml")
    assert b"contains_customer_enviroment: true" in kept


def test_the_rest_of_the_partition_goes_through_and_no_file_is_changed(ingested):
    lake = ingested["lake"]
    good = ingested["by"]["ep-good"]
    assert good.status == "published" and good.convertible
    assert not lake.exists(f"{quarantine_prefix(DAY, ROBOT, 'ep-good')}/reason.json")
    assert {p: _sha(p) for p in ingested["src"].rglob("*") if p.is_file()} == ingested["before"]
    landed = ingested["src"] / "ep-typo" / "metadata.yaml"
    assert lake.read_bytes(f"{landing_prefix(DAY, ROBOT, 'ep-typo')}/metadata.yaml") == landed.read_bytes()
