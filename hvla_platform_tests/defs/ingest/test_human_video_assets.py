"""The ``raw_human_video`` and ``human_video_release`` assets: loaded by the defs folder under their
own keys and partitions; a partition publishes its clips and reports the raw and video-QA checks (a
planted frozen span fails its gate, named); a bucket partition builds the video-only release."""

from __future__ import annotations

import dagster as dg
import numpy as np

from hvla_platform.defs.dataset.video_release import human_video_release
from hvla_platform.defs.ingest.human_video import HUMAN_VIDEO_PARTITIONS_NAME, human_video_landing_sensor, raw_human_video
from hvla_platform.defs.resources import LakeResource
from hvla_platform.definitions import defs
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.ingest.human_video import land_clip
from hvla_platform.lib.sim.human_video import clip_metadata, write_clip
from hvla_platform_tests.fixtures.human_video_clips import FPS, frozen_span, sim_frames

DAY, DEVICE = "2026-11-10", "headcam-sim-01"


def test_defs_folder_registers_the_human_video_assets():
    graph = defs().resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"raw_human_video", "human_video_release", "raw_mcap", "lerobot_dataset"} <= keys
    node = graph.get(dg.AssetKey("raw_human_video"))
    assert node.partitions_def.name == HUMAN_VIDEO_PARTITIONS_NAME
    assert node.partitions_def.name != graph.get(dg.AssetKey("raw_mcap")).partitions_def.name
    assert graph.get(dg.AssetKey("human_video_release")).partitions_def.get_partition_keys() == ["manipulation",
                                                                                                 "locomotion"]


def test_partition_checks_and_bucket_release(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    loco, task = sim_frames("locomotion")
    for clip_id, frames in (("hv-loco-000", loco), ("hv-loco-frozen", frozen_span(loco, 10, 20))):
        meta = clip_metadata(clip_id=clip_id, device_id=DEVICE, capture_date=DAY, role="locomotion", task=task, seed=0)
        assert land_clip(lake, write_clip(tmp_path / "src", np.asarray(frames), meta, FPS).folder).status == "landed"
    resources = {"lake": LakeResource(root=str(lake.root))}
    with dg.DagsterInstance.ephemeral() as inst:
        ctx = dg.build_sensor_context(instance=inst, resources=resources)
        tick = human_video_landing_sensor(ctx)
        assert [r.partition_key for r in tick.run_requests] == [f"{DAY}|{DEVICE}"]
        inst.add_dynamic_partitions(HUMAN_VIDEO_PARTITIONS_NAME, [f"{DAY}|{DEVICE}"])
        result = dg.materialize([raw_human_video], instance=inst, partition_key=f"{DAY}|{DEVICE}", resources=resources)
        assert result.success
        md = result.asset_materializations_for_node("raw_human_video")[0].metadata
        assert md["hvla/num_clips"].value == 2 and md["hvla/contains_human_video"].value is True
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["clip_rights"].passed and checks["clip_readable"].passed
        assert not checks["video_frozen"].passed and checks["video_frozen"].severity == dg.AssetCheckSeverity.ERROR
        assert "hv-loco-frozen" in checks["video_frozen"].metadata["hvla/failing_episodes"].value
        assert checks["bucket_motion"].passed and checks["video_cuts"].passed

        rel = dg.materialize([human_video_release], instance=inst, partition_key="locomotion", resources=resources)
        assert rel.success
        md = rel.asset_materializations_for_node("human_video_release")[0].metadata
        assert md["hvla/num_episodes"].value == 1 and "hv-loco-frozen" in md["hvla/excluded"].value
        assert md["dagster/uri"].value.endswith("lerobot/hvla/human-video-locomotion/human-video-locomotion")
        assert "1 human video clip(s) from 1 device(s)" in md["hvla/lineage_upstream"].value
        assert all(e.passed for e in rel.get_asset_check_evaluations())
