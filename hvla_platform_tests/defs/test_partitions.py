"""Raw partitions are the capture day × robot combinations that have data, one dynamic dimension
keyed ``day|robot``; an instance made with the old two-dimension multi-partitioning moves over with
its history (issue 13 §5)."""

import dagster as dg
import pytest

from hvla_platform.defs.partitions import (
    RAW_PARTITIONS_NAME, migrate_raw_partitions, raw_partitions, register_raw_partitions, split_raw_partition_key)

REAL = [("2026-11-10", "g1-001"), ("2026-11-10", "g1-002"), ("2026-11-11", "g1-001")]


def test_only_combinations_with_data_are_partitions():
    with dg.instance_for_test() as inst:
        assert register_raw_partitions(inst, REAL + REAL[:1]) == sorted(f"{d}|{r}" for d, r in REAL)
        assert register_raw_partitions(inst, REAL) == []  # idempotent
        # 3 real combinations over 2 days × 2 robots: 3 partitions, not the 4 of a cross product
        assert sorted(raw_partitions.get_partition_keys(dynamic_partitions_store=inst)) == \
            ["2026-11-10|g1-001", "2026-11-10|g1-002", "2026-11-11|g1-001"]


def test_keys_split_back_and_malformed_keys_are_refused():
    assert split_raw_partition_key("2026-11-10|g1-001") == ("2026-11-10", "g1-001")
    assert split_raw_partition_key(dg.MultiPartitionKey({"capture_day": "2026-11-10", "robot": "g1-001"})) == \
        ("2026-11-10", "g1-001")
    for bad in ("2026-11-10", "|g1", "a|b|c"):
        with pytest.raises(ValueError, match="is not <capture day>|<robot id>"):
            split_raw_partition_key(bad)


def test_an_instance_of_the_old_partitioning_moves_with_its_history():
    with dg.instance_for_test() as inst:
        # the old layout: two dimensions, 2 days × 2 robots registered, 2 combinations materialized
        inst.add_dynamic_partitions("capture_day", ["2026-11-10", "2026-11-11"])
        inst.add_dynamic_partitions("robot", ["g1-001", "g1-002"])
        for asset, key in (("raw_mcap", "2026-11-10|g1-001"), ("episodes_hdf5", "2026-11-10|g1-001"),
                           ("raw_mcap", "2026-11-11|g1-002")):
            inst.report_runless_asset_event(dg.AssetMaterialization(asset, partition=key))
        said = []
        assert migrate_raw_partitions(inst, said.append) == ["2026-11-10|g1-001", "2026-11-11|g1-002"]
        assert sorted(inst.get_dynamic_partitions(RAW_PARTITIONS_NAME)) == ["2026-11-10|g1-001", "2026-11-11|g1-002"]
        assert inst.get_dynamic_partitions("capture_day") == [] and inst.get_dynamic_partitions("robot") == []
        assert "2 day|robot partition(s)" in said[0] and "4 legacy" in said[0]
        # the history stays attached: the materialization is found under the new partition
        ev = inst.get_latest_materialization_event(dg.AssetKey("raw_mcap"))
        assert ev.dagster_event.partition in inst.get_dynamic_partitions(RAW_PARTITIONS_NAME)
        assert inst.get_materialized_partitions(dg.AssetKey("episodes_hdf5")) == {"2026-11-10|g1-001"}
        # done once: a second call finds no legacy keys and changes nothing
        assert migrate_raw_partitions(inst, said.append) == [] and len(said) == 1
