"""Consent withdrawal of the raw sources beside robot MCAP episodes: a consent held by a human video
clip or a seed-003 teleop episode is planned and carried out like a robot episode's — the revocation
record names the leaf, its raw and landing objects are restricted (or deleted), the releases and the
mixture built from it are flagged ``do_not_use`` (not rebuilt: no release spec builds them), lineage
counts the withdrawn leaf, and the leaf can neither land again nor enter the next build."""

from __future__ import annotations

import pytest

from hvla_platform.lib.core.keys import RESTRICTED
from hvla_platform.lib.core.withdrawals import (artifact_flags, audit_log, partition_withdrawals,
                                                withdrawn_episode_records)
from hvla_platform.lib.dataset.video_release import VideoReleaseError, build_video_release, parse_video_release_spec
from hvla_platform.lib.ingest.human_video import land_clip
from hvla_platform.lib.ingest.teleop import land_teleop_episode, load_raw_teleop_episodes
from hvla_platform.lib.lineage import graph as lin
from hvla_platform.lib.lineage.standing import annotate_tree
from hvla_platform.lib.ops.flag_targets import flag_targets
from hvla_platform.lib.ops.revocation import RevocationError, plan_revocation, revoke_consent
from hvla_platform_tests.lib.lineage.test_other_sources_lineage import (HV_CLIP, HV_CONSENT, HV_DAY, HV_DEVICE, HV_RAW,
                                                                        TP_CONSENT, TP_DAY, TP_EP, TP_RAW, TP_ROBOT,
                                                                        build_other_sources_lake)

HV_LANDING = f"landing-human-video/{HV_DAY}/{HV_DEVICE}/{HV_CLIP}"
TP_LANDING = f"landing/_teleop/{TP_DAY}/{TP_ROBOT}/{TP_EP}"


@pytest.fixture(scope="module")
def lake_info(tmp_path_factory) -> dict:
    return build_other_sources_lake(tmp_path_factory.mktemp("revoke-other"))


def _objects(lake, *prefixes) -> dict[str, str]:
    return {k: lake.sha256(k) for p in prefixes for k in lake.list_keys(p)}


def _check_plan(plan, leaf: str, info: dict, partition: str, objects: dict, flags: dict) -> None:
    """The plan withdraws exactly ``leaf`` (with ``info`` kept in the record), handles exactly its
    ``objects``, flags ``flags`` and rebuilds nothing (no release spec builds these releases)."""
    assert plan.episodes == [leaf] and plan.episode_info == {leaf: info}
    assert plan.raw_partitions == {partition: [leaf]}
    assert sorted(plan.raw_objects[leaf]) == sorted(objects)
    assert plan.flags == flags
    assert plan.partitions == {} and plan.releases == {}


def test_withdrawing_a_clips_consent(lake_info):
    lake, video, mixture = lake_info["lake"], lake_info["video"], lake_info["mixture"]
    before = _objects(lake, HV_RAW, HV_LANDING)
    assert f"{HV_RAW}/{HV_CLIP}.mp4" in before and f"{HV_LANDING}/metadata.yaml" in before

    plan = plan_revocation(lake, HV_CONSENT, reason="demonstrator withdrew consent", by="dpo")
    _check_plan(plan, HV_CLIP, {"capture_day": HV_DAY, "device_id": HV_DEVICE, "raw_type": "raw_human_video_clip",
                                "raw_key": HV_RAW}, f"raw-human-video:{HV_DAY}|{HV_DEVICE}", before,
                {video: ("lerobot_dataset", "do_not_use"), mixture: ("mixture_release", "do_not_use")})
    assert not lake.list_keys("flags") and not lake.list_keys("rights-revocations")  # planning changed nothing

    res = revoke_consent(lake, HV_CONSENT, reason="demonstrator withdrew consent", by="dpo")
    assert res.episodes == [HV_CLIP] and res.rebuilt_releases == {}
    assert res.flagged == {video: "do_not_use", mixture: "do_not_use"}
    record = lake.read_json(res.record_key)
    assert record["episode_info"] == plan.episode_info
    assert [i["key"] for i in record["impacted"]] == [video, mixture]
    # raw and landed objects moved to restricted/, byte for byte
    assert sorted(res.raw_handled[HV_CLIP]) == sorted(before)
    assert not lake.list_keys(HV_RAW) and not lake.list_keys(HV_LANDING)
    assert {k[len(RESTRICTED) + 1:]: s for k, s in _objects(lake, f"{RESTRICTED}/{HV_RAW}",
                                                               f"{RESTRICTED}/{HV_LANDING}").items()} == before
    assert artifact_flags(lake, video)["consent"] == HV_CONSENT
    assert any(e["event"] == "raw_restrict" and e["episode"] == HV_CLIP for e in audit_log(lake))
    assert {(t.asset, t.partition) for t in flag_targets(lake, [video, mixture])} == {
        ("human_video_release", "manipulation"), ("mixture_release", "lin-cotrain")}
    w = withdrawn_episode_records(lake)[HV_CLIP]
    assert (w["raw_type"], w["device_id"], w["robot_id"], w["capture_day"]) == (
        "raw_human_video_clip", HV_DEVICE, None, HV_DAY)

    # lineage still counts the clip, as withdrawn, and shows the flags
    tree = lin.upstream(lake, mixture)
    summary = annotate_tree(lake, tree)
    assert summary.clip_ids == [HV_CLIP] and summary.devices == [HV_DEVICE] and list(summary.withdrawn) == [HV_CLIP]
    assert summary.line() == ("= 1 raw episode(s) from 1 robot(s), 2 capture day(s), 1 human video clip(s) from "
                              f"1 device(s) (1 withdrawn: consent {HV_CONSENT}); flagged: 2 do_not_use")
    text = lin.render_tree(tree, summary=summary)
    assert f"WITHDRAWN input {HV_RAW}: episode(s) {HV_CLIP} (consent {HV_CONSENT} withdrawn" in text
    hits = lin.downstream(lake, f"consent:{HV_CONSENT}")
    # the restricted copy's manifest is indexed too, as for robot episodes
    assert [h.key for h in hits] == [f"{RESTRICTED}/{HV_RAW}", video, mixture]

    # refused again; the clip cannot land again; the bucket's next build has no clip left
    with pytest.raises(RevocationError, match="already withdrawn"):
        plan_revocation(lake, HV_CONSENT, reason="again")
    again = land_clip(lake, lake_info["clip_folder"])
    assert again.status == "withdrawn" and HV_CONSENT in again.reason
    with pytest.raises(VideoReleaseError, match="no usable manipulation clip"):
        build_video_release(lake, parse_video_release_spec(
            {"name": "hv-mani-lin", "repo_id": "hvla/human-video-manipulation", "bucket": "manipulation", "fps": 10}))


def test_withdrawing_a_teleop_episodes_consent_deletes_its_raw_objects(lake_info):
    lake, planner, mixture = lake_info["lake"], lake_info["planner"], lake_info["mixture"]
    before = _objects(lake, TP_RAW, TP_LANDING)
    assert f"{TP_RAW}/frame_0000.pkl" in before and f"{TP_LANDING}/metadata.yaml" in before

    plan = plan_revocation(lake, TP_CONSENT, reason="operator left the lab", raw_policy="delete")
    _check_plan(plan, TP_EP, {"capture_day": TP_DAY, "robot_id": TP_ROBOT, "raw_type": "raw_teleop_episode",
                              "raw_key": TP_RAW}, f"raw-teleop:{TP_DAY}|{TP_ROBOT}", before,
                {planner: ("lerobot_dataset", "do_not_use"), mixture: ("mixture_release", "do_not_use")})

    res = revoke_consent(lake, TP_CONSENT, reason="operator left the lab", raw_policy="delete")
    assert res.flagged == {planner: "do_not_use", mixture: "do_not_use"}
    assert not lake.list_keys(TP_RAW) and not lake.list_keys(TP_LANDING)
    assert not lake.list_keys(f"{RESTRICTED}/{TP_RAW}")  # deleted, not moved
    assert artifact_flags(lake, planner)["consent"] == TP_CONSENT
    assert [(t.asset, t.partition) for t in flag_targets(lake, [planner])] == [("teleop_target_lerobot", "planner")]
    # a robot MCAP partition of the same robot and day is not said to hold the withdrawn teleop episode
    assert partition_withdrawals(lake, TP_DAY, TP_ROBOT) is None

    summary = annotate_tree(lake, lin.upstream(lake, planner))
    assert summary.episode_ids == [TP_EP] and summary.robots == [TP_ROBOT] and list(summary.withdrawn) == [TP_EP]
    assert summary.line() == (f"= 1 raw episode(s) from 1 robot(s), 1 capture day(s) (1 withdrawn: consent "
                              f"{TP_CONSENT}); flagged: 1 do_not_use")
    assert land_teleop_episode(lake, lake_info["teleop_folder"]).status == "withdrawn"
    with pytest.raises(FileNotFoundError, match="no raw teleop episodes"):  # what the next target build reads
        load_raw_teleop_episodes(lake, [f"{TP_DAY}|{TP_ROBOT}"])
