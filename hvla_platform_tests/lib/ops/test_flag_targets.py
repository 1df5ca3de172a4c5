"""Which Dagster asset partition a flagged artifact is: the release-spec assets by spec name, and
issue 17's sources by their own assets (teleop targets by target, RLDS by target, human-video
releases by bucket, mixtures by name)."""

from hvla_platform.lib.ops.flag_targets import asset_partition


def test_release_spec_artifacts_are_partitioned_by_spec_name():
    assert asset_partition({"artifact_type": "lerobot_dataset", "release": "g1-reach-v1.3"}) == (
        "lerobot_dataset", "g1-reach-v1")
    assert asset_partition({"artifact_type": "checkpoint", "experiment": "exp-1"}) == ("checkpoint", "exp-1")


def test_other_sources_map_to_their_own_assets():
    teleop = {"artifact_type": "lerobot_dataset", "release": "teleop-planner",
              "derivation": {"source": "teleop", "target": "planner"}}
    assert asset_partition(teleop) == ("teleop_target_lerobot", "planner")
    video = {"artifact_type": "lerobot_dataset", "release": "human-video-locomotion.1", "source_kind": "human_video",
             "bucket": "locomotion"}
    assert asset_partition(video) == ("human_video_release", "locomotion")
    assert asset_partition({"artifact_type": "rlds_dataset", "target": "planner"}) == ("teleop_target_rlds", "planner")
    assert asset_partition({"artifact_type": "mixture_release", "name": "demo-cotrain", "mixture": "demo-cotrain.2"}) == (
        "mixture_release", "demo-cotrain")
