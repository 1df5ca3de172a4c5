"""Partitions (DESIGN.md "Partitioning"): raw/episodes by capture day × robot, dataset-side
assets by release, training-side assets by experiment. Episodes are rows inside a partition.

Raw and processed assets have ONE dynamic dimension, ``capture_day_robot``, keyed ``day|robot``
(e.g. ``2026-11-10|g1-001``), holding only the combinations that have data. It replaced a
``MultiPartitionsDefinition`` of two dynamic dimensions (``capture_day`` × ``robot``), whose cross
product showed combinations that will never have data (6 real partitions over 3 days and 2 robots
made 12 in the UI, and "Missing"/"% filled" counted the phantoms). A multi-partition key's string
form is the same ``day|robot``, so the history of an existing instance (materializations, check
results, observations, runs' ``dagster/partition`` tags) stays attached to its partitions; only
the partition list moves: :func:`migrate_raw_partitions` (docs/automation.md, "Partitions").
"""

from __future__ import annotations

from typing import Callable, Iterable

import dagster as dg
import sqlalchemy.exc

#: The dynamic partitions definition of raw_mcap and episodes_hdf5.
RAW_PARTITIONS_NAME = "capture_day_robot"
raw_partitions = dg.DynamicPartitionsDefinition(name=RAW_PARTITIONS_NAME)
release_partitions = dg.DynamicPartitionsDefinition(name="release")
experiment_partitions = dg.DynamicPartitionsDefinition(name="experiment")
#: The two dynamic dimensions of the replaced multi-partitioning (emptied by the migration).
LEGACY_DIMENSIONS = ("capture_day", "robot")
#: The assets partitioned by capture day × robot.
RAW_ASSETS = ("raw_mcap", "episodes_hdf5")


def raw_partition_key(day: str, robot: str) -> str:
    """The partition key of a capture day and robot: ``"day|robot"``."""
    return f"{day}|{robot}"


def split_raw_partition_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """``(capture_day, robot_id)`` of a ``day|robot`` key (a legacy ``MultiPartitionKey`` too).

    Raises:
        ValueError: the key is not ``day|robot``.
    """
    day, sep, robot = str(key).partition("|")
    if not sep or not day or not robot or "|" in robot:
        raise ValueError(f"partition key {str(key)!r} is not <capture day>|<robot id>")
    return day, robot


def day_robot(context: dg.AssetExecutionContext) -> tuple[str, str]:
    """(capture_day, robot_id) of the partition being materialized."""
    return split_raw_partition_key(context.partition_key)


def add_dynamic_partitions(instance: dg.DagsterInstance, name: str, keys: Iterable[str]) -> list[str]:
    """Add the keys of dynamic partitions ``name`` the instance does not know yet, also when another
    process adds some of them at the same moment (two ``hvla ingest`` of one partition on a fresh
    home: the storage's unique constraint refused the second insert); the keys this call added, sorted.
    """
    new = sorted(set(keys) - set(instance.get_dynamic_partitions(name)))
    if not new:
        return []
    try:
        instance.add_dynamic_partitions(name, new)
        return new
    except sqlalchemy.exc.IntegrityError:  # another process added some of them in between: one by one
        added = []
        for key in new:
            if instance.has_dynamic_partition(name, key):
                continue
            try:
                instance.add_dynamic_partitions(name, [key])
                added.append(key)
            except sqlalchemy.exc.IntegrityError:
                pass  # added by the other process meanwhile: known now, which is all that is asked
        return added


def register_raw_partitions(instance: dg.DagsterInstance, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Add the ``day|robot`` partitions of ``pairs`` the instance does not know yet (idempotent, safe
    against a concurrent add); the keys added, sorted."""
    return add_dynamic_partitions(instance, RAW_PARTITIONS_NAME, (raw_partition_key(d, r) for d, r in pairs))


def migrate_raw_partitions(instance: dg.DagsterInstance, log: Callable[[str], None] = lambda _: None) -> list[str]:
    """Move an instance from the ``capture_day`` × ``robot`` multi-partitioning to ``capture_day_robot``.

    Only runs while a legacy dimension still has keys (a cheap query otherwise): every ``day|robot``
    key that raw_mcap or episodes_hdf5 has a materialization for becomes a ``capture_day_robot``
    partition (its history attaches by key), then the legacy keys are deleted, which marks the
    migration done. Partitions that were registered but never materialized are not carried over:
    the landing sensor and ``hvla ingest`` register them again from the lake when they have data.

    Returns:
        The ``capture_day_robot`` keys added.
    """
    legacy = {dim: instance.get_dynamic_partitions(dim) for dim in LEGACY_DIMENSIONS}
    if not any(legacy.values()):
        return []
    keys: set[str] = set()
    for asset in RAW_ASSETS:
        keys |= {k for k in instance.get_materialized_partitions(dg.AssetKey(asset)) if k.count("|") == 1}
    added = register_raw_partitions(instance, (split_raw_partition_key(k) for k in keys))
    for dim, old in legacy.items():
        for key in old:
            instance.delete_dynamic_partition(dim, key)
    log(f"partitions: moved to one {RAW_PARTITIONS_NAME} dimension ({len(added)} day|robot partition(s) with "
        f"materializations; {sum(map(len, legacy.values()))} legacy capture_day/robot keys removed)")
    return added
