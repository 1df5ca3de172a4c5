"""Partitions (DESIGN.md "Partitioning"): raw/episodes by capture day × robot, dataset-side
assets by release, training-side assets by experiment. Episodes are rows inside a partition."""


import dagster as dg

capture_day_partitions = dg.DynamicPartitionsDefinition(name="capture_day")
robot_partitions = dg.DynamicPartitionsDefinition(name="robot")
#: Keys look like ``2026-11-10|g1-001`` (dimensions in name order: capture_day, robot).
raw_partitions = dg.MultiPartitionsDefinition({"capture_day": capture_day_partitions, "robot": robot_partitions})
release_partitions = dg.DynamicPartitionsDefinition(name="release")
experiment_partitions = dg.DynamicPartitionsDefinition(name="experiment")


def day_robot(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """(capture_day, robot_id) of the partition being materialized."""
    key = context.partition_key
    if not isinstance(key, dg.MultiPartitionKey):
        key = raw_partitions.get_partition_key_from_str(key)
    dims = key.keys_by_dimension
    return dims["capture_day"], dims["robot"]
