"""Dataset stage, seed 003's teleop training targets: ``e2e`` / ``planner`` / ``correction`` derived from
every raw teleop episode (phase filter → no-op removal → stop signal → delta joints → resize;
lib/dataset/teleop_targets.py, docs/teleop_targets.md), exported as a LeRobot v3.0 release
(``teleop_target_lerobot``) and as RLDS through TensorFlow Datasets (``teleop_target_rlds``),
each partitioned by target.

Both read all partitions of ``raw_teleop`` (``AllPartitionMapping``: a target mixes every capture
day × robot). The RLDS build runs TensorFlow in ``.venv-rlds`` as a subprocess
(lib/dataset/rlds_export.py): nothing here imports TensorFlow, LeRobot or the builders at module
level.
"""

import dagster as dg

from hvla_platform.defs.automation.rights_flags import rights_check_result, rights_check_specs
from hvla_platform.defs.metadata import lineage_metadata, md_mapping, rights_metadata
from hvla_platform.defs.resources import LakeResource
from hvla_platform.defs.stages import RELEASE
from hvla_platform.lib.core.keys import rlds_prefix
from hvla_platform.lib.dataset.rlds_export import (
    RldsExportError, dataset_name, publish_teleop_rlds, verify_published_rlds)
from hvla_platform.lib.dataset.teleop_lerobot import (
    DEFAULT_VCODEC, publish_teleop_lerobot, teleop_lerobot_prefix, verify_published_lerobot)
from hvla_platform.lib.dataset.teleop_targets import (
    DEFAULT_IMAGE_SIZE, NOOP_THRESHOLD_RAD, TARGETS, TargetOptions, load_teleop_sources)

#: One partition per seed-003 target.
teleop_target_partitions = dg.StaticPartitionsDefinition(list(TARGETS))
#: Every raw teleop partition feeds every target.
RAW_TELEOP_DEP = dg.AssetDep(dg.AssetKey("raw_teleop"), partition_mapping=dg.AllPartitionMapping())


class TeleopTargetConfig(dg.Config):
    """Options of a target build (defaults: seed 003's).

    Attributes:
        task: language instruction for every episode ("" = each raw episode's recorded task).
        image_size: square image side, pixels (256; 224 for base OpenVLA).
        noop_threshold_rad: no-op threshold, radians (L∞ over the joints vs. the previous kept frame).
        keep_noops: skip no-op removal.
        partitions: raw ``day|robot`` partitions to read (empty = every one in the lake).
    """

    task: str = ""
    image_size: int = DEFAULT_IMAGE_SIZE
    noop_threshold_rad: float = NOOP_THRESHOLD_RAD
    keep_noops: bool = False
    partitions: list[str] = []

    def options(self) -> TargetOptions:
        """The :class:`TargetOptions` of this config."""
        return TargetOptions(image_size=self.image_size, noop_threshold_rad=self.noop_threshold_rad,
                             keep_noops=self.keep_noops)


def _derivation_metadata(derivation: dict) -> dict:
    c = derivation["counts"]
    return {
        "hvla/target": derivation["target"],
        "hvla/phases": ", ".join(derivation["phases"]),
        "hvla/noop_rule": derivation["noop_rule"],
        "hvla/stop_signal_rule": derivation["stop_signal_rule"],
        "hvla/frames_outside_phases": c["outside_phases"],
        "hvla/noops_removed": c["noops_removed"],
        "hvla/stop_frames_added": c["stop_frames"],
        "hvla/source_episodes": c["source_episodes"],
        "hvla/dropped": md_mapping({d.split(": ", 1)[0]: d.split(": ", 1)[1] for d in c["dropped"]},
                                   "raw episode", "why no training episode"),
    }


@dg.asset(
    partitions_def=teleop_target_partitions,
    deps=[RAW_TELEOP_DEP],
    group_name="dataset",
    owners=["team:ml-training"],
    kinds={"lerobot", "parquet", "mp4"},
    pool=RELEASE,
    description="Seed 003's teleop training target (e2e: all phases; planner: teleop + 3 stop frames; correction: "
                "correction + 3 stop frames) as a LeRobot v3.0 dataset written by LeRobot's own writer: state (7,) "
                "[q, gripper/255], action (7,) the next frame's, base/wrist video, task.",
    check_specs=[
        dg.AssetCheckSpec("lerobot_readback", asset="teleop_target_lerobot", partitions_def=teleop_target_partitions,
                          blocking=True,
                          description="Loaded with LeRobot's LeRobotDataset, the published release holds exactly the "
                                      "target's episodes, and every frame's state and action equal a fresh "
                                      "derivation from the raw episodes."),
        *rights_check_specs("teleop_target_lerobot", teleop_target_partitions),
    ],
    metadata={"hvla/layer": "derived", "hvla/canonical": "derived, disposable", "hvla/source": "seed003_teleop"},
)
def teleop_target_lerobot(context: dg.AssetExecutionContext, config: TeleopTargetConfig,
                          lake: LakeResource) -> dg.MaterializeResult:
    """Publish (or find ``cached``) ``lerobot/hvla/ur5e_<target>/teleop-<target>`` from every raw
    teleop episode, then re-read it with LeRobot for the check."""
    lk = lake.get_lake()
    target = context.partition_key
    sources, parts = load_teleop_sources(lk, config.partitions or None)
    options = config.options()
    pub = publish_teleop_lerobot(lk, sources, target, options=options, task=config.task or None, vcodec=DEFAULT_VCODEC,
                                 partitions=parts, progress=context.log.info)
    m = pub.manifest
    problems = verify_published_lerobot(lk, sources, target, options=options, repo_id=m.repo_id)
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": pub.uri,
            "dagster/row_count": m.num_frames,
            "hvla/repo_id": m.repo_id,
            "hvla/num_episodes": m.num_episodes,
            "hvla/tasks": "; ".join(m.tasks),
            "hvla/partitions": ", ".join(parts),
            **_derivation_metadata(m.derivation),
            "status": pub.status,
            **lineage_metadata(lk, teleop_lerobot_prefix(target, m.repo_id)),
            **rights_metadata(pub.rights),
        },
        check_results=[
            dg.AssetCheckResult(check_name="lerobot_readback", passed=not problems,
                                metadata={"hvla/problems": "\n".join(problems) or "(none)",
                                          "hvla/probe": dg.MetadataValue.json(m.probe)}),
            rights_check_result(lk, "teleop_target_lerobot", pub.prefix),
        ],
    )


@dg.asset(
    partitions_def=teleop_target_partitions,
    deps=[RAW_TELEOP_DEP],
    group_name="dataset",
    owners=["team:ml-training"],
    kinds={"tensorflow", "tfrecord"},
    pool=RELEASE,
    description="Seed 003's teleop training target as RLDS (ur5e_vla_<target>, a TFDS GeneratorBasedBuilder run in "
                ".venv-rlds): 256×256 JPEG base/wrist images, state (8,) [q, 0, gripper 0-1], delta-joint action (6,), "
                "action_gripper (1,), language instruction; language_embedding is NaN (USE not computed here).",
    check_specs=[
        dg.AssetCheckSpec("rlds_readback", asset="teleop_target_rlds", partitions_def=teleop_target_partitions,
                          blocking=True,
                          description="Read back with tfds.builder(name, data_dir).as_dataset() in a process that "
                                      "never imports the builder: every step equals a fresh derivation from the raw "
                                      "episodes (images within JPEG error), embeddings are the documented NaN. A new "
                                      "build is read back before it is published; a cached one is read again."),
        *rights_check_specs("teleop_target_rlds", teleop_target_partitions),
    ],
    metadata={"hvla/layer": "derived", "hvla/canonical": "derived, disposable", "hvla/source": "seed003_teleop"},
)
def teleop_target_rlds(context: dg.AssetExecutionContext, config: TeleopTargetConfig,
                       lake: LakeResource) -> dg.MaterializeResult:
    """Publish (or find ``cached``) ``rlds/ur5e_vla_<target>`` (a TFDS data_dir) from every raw
    teleop episode, then read it back with TFDS for the check."""
    lk = lake.get_lake()
    target = context.partition_key
    sources, parts = load_teleop_sources(lk, config.partitions or None)
    options = config.options()
    pub = publish_teleop_rlds(lk, sources, target, options=options, task=config.task or None,
                              progress=context.log.info)
    m = pub.manifest
    if pub.status == "materialized":
        # just read back in a fresh TFDS process and compared value by value before publishing
        problems = list(m.readback.get("problems", []))
    else:  # cached: the published files are read again now (they may have changed since)
        try:
            problems = verify_published_rlds(lk, sources, target, options=options, task=config.task or None)
        except RldsExportError as exc:  # TFDS could not read the published files: the check fails with why
            problems = [str(exc)]
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": pub.uri,
            "dagster/row_count": m.num_steps,
            "hvla/dataset_name": m.dataset_name,
            "hvla/load_with": f'tfds.builder("{m.dataset_name}", data_dir="{pub.uri}")',
            "hvla/num_episodes": m.num_episodes,
            "hvla/tasks": "; ".join(m.tasks),
            "hvla/language_embedding": m.language_embedding,
            "hvla/build_seconds": m.build_seconds,
            "hvla/packages": dg.MetadataValue.json(m.packages),
            "hvla/partitions": ", ".join(parts),
            **_derivation_metadata(m.derivation),
            "status": pub.status,
            **lineage_metadata(lk, rlds_prefix(dataset_name(target))),
            **rights_metadata(pub.rights),
        },
        check_results=[
            dg.AssetCheckResult(check_name="rlds_readback", passed=not problems,
                                metadata={"hvla/problems": "\n".join(problems) or "(none)",
                                          "hvla/worst_image_mae": m.readback.get("worst_image_mae")}),
            rights_check_result(lk, "teleop_target_rlds", pub.prefix),
        ],
    )
