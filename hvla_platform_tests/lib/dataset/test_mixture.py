"""Dataset mixtures over published releases (issue 17 §4, docs/mixtures.md).

A real lake: G1 recordings (``write_recording``) and UR5e recordings (``write_profile_recording`` of
the shipped ``ur5e_robotiq_2f85`` profile) landed, ingested, converted and released by the release
builder; plus LeRobot v3 datasets written here with LeRobot's own writer and published with a
``LeRobotDatasetManifest`` and rights: a video-only one (no action feature: the stand-in for
human video) and a 30 fps arm with actions (a stand-in for a rollout release at another rate).
Mixtures of them are specified, refused or built, sampled and read back with LeRobot.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from hvla_platform.lib.core import features
from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.keys import flag_key, lerobot_release_prefix
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import (
    Content,
    LeRobotDatasetManifest,
    MixtureManifest,
    load_manifest,
    publish_if_changed,
    require_manifest,
)
from hvla_platform.lib.core.rights import Rights, RightsError
from hvla_platform.lib.core.suggest import UnknownIdError
from hvla_platform.lib.core.tables import (
    MIXTURE_ROLES,
    TableError,
    check_mixture_weights,
    read_mixture_weights,
)
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.lerobot_release import feature_schema, read_info
from hvla_platform.lib.dataset.mixture import (
    MixtureError,
    MixtureSampler,
    build_mixture,
    latest_mixture,
    load_mixture_spec,
    open_mixture,
    register_mixture,
    resolve_mixture,
    weights_consistent,
)
from hvla_platform.lib.dataset.mixture_spec import ROLES, MixtureSpec, MixtureSpecError
from hvla_platform.lib.dataset.releases import register_release
from hvla_platform.lib.formats.recording.profile import load_profile
from hvla_platform.lib.lineage.graph import downstream, render_tree, upstream
from hvla_platform.lib.processing.convert import SyncConfig
from hvla_platform_tests.fixtures.lakes import land_and_convert
from hvla_platform_tests.fixtures.profile_recordings import ProfileSignals, write_profile_recording
from hvla_platform_tests.fixtures.recordings import write_recording

DAY = "2026-11-10"
UR5E = "ur5e_robotiq_2f85"
VIDEO_H, VIDEO_W = 32, 40
G1_ACTION, UR5E_ACTION = 14, 7


def _rights(**kw) -> Rights:
    base = {"data_owners": ["hvla-lab"], "sites": ["lab-hanoi"], "customers": ["internal"],
            "consent_refs": ["consent-video-0007"], "licenses": ["CC-BY-NC-4.0"],
            "allowed_uses": ["internal_training"], "retention_until": "2030-06-30",
            "contains_human_video": True, "contains_customer_environment": False}
    base.update(kw)
    return Rights.from_dict(base)


def write_lerobot(root: Path, repo_id: str, *, fps: int, episodes: list[int], video: bool, action_dim: int = 0,
                  task: str = "pick up the cup") -> Path:
    """A small LeRobot v3 dataset written with LeRobot's writer (``create`` → ``add_frame`` →
    ``save_episode`` → ``finalize``): ``observation.images.ego`` video (VIDEO_H × VIDEO_W) when
    ``video``, ``observation.state`` and ``action`` (``action_dim``,) float32 when ``action_dim``."""
    LeRobotDataset = import_lerobot_dataset()
    feats: dict = {}
    if video:
        feats["observation.images.ego"] = {"dtype": "video", "shape": (VIDEO_H, VIDEO_W, 3),
                                           "names": ["height", "width", "channels"]}
    if action_dim:
        names = [f"j{i}" for i in range(action_dim)]
        feats[features.STATE] = {"dtype": "float32", "shape": (action_dim,), "names": names}
        feats[features.ACTION] = {"dtype": "float32", "shape": (action_dim,), "names": names}
    ds = LeRobotDataset.create(repo_id, fps=fps, features=feats, root=root, use_videos=video, robot_type="test")
    rng = np.random.default_rng(7)
    for n in episodes:
        for i in range(n):
            frame = {"task": task}
            if video:
                frame["observation.images.ego"] = rng.integers(0, 255, (VIDEO_H, VIDEO_W, 3), dtype=np.uint8)
            if action_dim:
                frame[features.STATE] = rng.normal(size=action_dim).astype(np.float32)
                frame[features.ACTION] = rng.normal(size=action_dim).astype(np.float32)
            ds.add_frame(frame)
        ds.save_episode()
    ds.finalize()
    return root


def publish_lerobot(lake, local: Path, repo_id: str, release: str, rights: Rights,
                    **fields) -> LeRobotDatasetManifest:
    """Publish a LeRobot dataset folder as release ``release`` (version 0) with a
    ``LeRobotDatasetManifest`` (plus ``fields``) and ``rights``, as a source builder does."""
    info = read_info(local)
    n = int(info["total_episodes"])
    ids = [f"{release}-clip-{i:03d}" for i in range(n)]

    def write(root: Path) -> Content:
        for p in local.rglob("*"):
            if p.is_file():
                dst = root / p.relative_to(local)
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(p.read_bytes())
        return Content(rights=rights, episode_ids=ids, extra={
            "release": release, "repo_id": repo_id, "spec_name": release, "version": 0,
            "codebase_version": info["codebase_version"], "num_episodes": n, "num_frames": int(info["total_frames"]),
            "fps": float(info["fps"]), "episode_index": {e: i for i, e in enumerate(ids)},
            "train_episode_ids": ids, "heldout_episode_ids": [], "train_episode_indices": list(range(n)),
            "heldout_episode_indices": [], "excluded": {}, "approved": {}, "quality_scores": {e: None for e in ids},
            "partitions": [], "feature_schema": feature_schema(info), "tasks": ["pick up the cup"], "probe": {},
            "video_codec": None, "timestamp_problems": {}, "partition_inputs": [], "robot_type": "test", **fields})

    prefix = lerobot_release_prefix(repo_id, release)
    return publish_if_changed(lake, prefix, artifact_type="lerobot_dataset", inputs=[], config={"stand_in": release},
                              write=write, rights=rights).manifest


def build_mixture_lake(root: Path) -> dict:
    """The lake: releases ``mix-g1`` (2 G1 episodes, 20 fps, head camera, actions (14,)) and ``mix-ur5e`` (2 UR5e
    episodes converted at 20 fps, actions (7,)) built by the release builder, plus
    :func:`add_stand_ins`."""
    lake = LocalLake(root / "lake")
    for i, ep in enumerate(("g1-a", "g1-b")):
        write_recording(root / "g1", episode_id=ep, seed=i + 1, duration_s=1.5)
    land_and_convert(lake, root / "g1", DAY, "g1-001")
    prof = load_profile(UR5E)
    for i, ep in enumerate(("ur5e-a", "ur5e-b")):
        write_profile_recording(root / "ur5e", prof, ProfileSignals(prof, seed=i + 3), episode_id=ep, duration_s=1.5,
                                robot_id="ur5e-001", capture_day=DAY, task="pick the part")
    land_and_convert(lake, root / "ur5e", DAY, "ur5e-001", SyncConfig(fps=20.0))  # the profile's is 30
    releases = {}
    for name, robot, profile in (("mix-g1", "g1-001", None), ("mix-ur5e", "ur5e-001", UR5E)):
        doc = {"name": name, "repo_id": f"hvla/{name}", "partitions": [{"capture_day": DAY, "robot_id": robot}],
               "fps": 20, "min_quality": 0.0, "heldout": {"fraction": 0.0}}
        if profile:
            doc["profile"] = profile
        else:
            doc["cameras"] = ["head"]  # one camera of the G1's three: less to encode
        releases[name] = build_release(lake, register_release(lake, yaml.safe_dump(doc))).manifest
    releases.update(add_stand_ins(lake, root))
    return {"lake": lake, "releases": releases}


def add_stand_ins(lake, root: Path) -> dict[str, LeRobotDatasetManifest]:
    """Publish the LeRobot datasets written here: ``ego-manip`` (video only, 3 clips of 12/20/28
    frames at 10 fps, human video, customer internal), ``ego-acme`` (the same clips, customer
    acme), ``ego-flagged`` (flagged do_not_use by a withdrawal) and ``arm-30fps`` (state and
    action (7,) at 30 fps, 2 episodes of 15 frames, no camera)."""
    releases = {}
    video = write_lerobot(root / "video", "hvla/ego", fps=10, episodes=[12, 20, 28], video=True)
    human = {"source_kind": "human_video", "has_action": False, "bucket": "manipulation"}  # as video_release.py says
    releases["ego-manip"] = publish_lerobot(lake, video, "hvla/ego", "ego-manip", _rights(), **human)
    releases["ego-acme"] = publish_lerobot(lake, video, "hvla/ego", "ego-acme", _rights(customers=["acme"]), **human)
    releases["ego-flagged"] = publish_lerobot(lake, video, "hvla/ego", "ego-flagged", _rights(), **human)
    lake.write_json(flag_key(releases["ego-flagged"].artifact_key),
                    {"status": "do_not_use", "consent": "consent-video-0007", "reason": "demonstrator withdrew",
                     "by": "dpo", "at": "2026-11-30T10:00:00+00:00", "episode_ids": [],
                     "revocation": "rights-revocations/consent-video-0007/x.json"})
    arm = write_lerobot(root / "arm30", "hvla/arm30", fps=30, episodes=[15, 15], video=False, action_dim=7)
    releases["arm-30fps"] = publish_lerobot(lake, arm, "hvla/arm30", "arm-30fps",
                                            _rights(contains_human_video=False, allowed_uses=["internal_training"]))
    return releases


@pytest.fixture(scope="module")
def mlake(tmp_path_factory) -> dict:
    return build_mixture_lake(tmp_path_factory.mktemp("mixture"))


MAPPED = """\
name: cotrain
repo_id: hvla/cotrain
kind: mixture
description: G1 + UR5e teleop with egocentric human video
sources:
  - release: mix-g1
    weight: 5
    role: robot_teleop
    feature_map: {action: action, observation.state: observation.state, observation.images.head: observation.images.head}
  - release: mix-ur5e@0
    weight: 3
    role: simulation
    feature_map: {action: action, observation.state: observation.state, observation.images.wrist: observation.images.wrist}
  - release: ego-manip
    weight: 2
    feature_map: {observation.images.ego: observation.images.head}
"""


#: A mixture of the stand-ins alone: the 30 fps arm as a rollout and the action-free video.
ARM_EGO = """\
name: arm-ego
repo_id: hvla/arm-ego
kind: mixture
sources:
  - {release: arm-30fps, weight: 3, role: rollout}
  - {release: ego-manip, weight: 1}
"""


def spec_of(text: str, **changes) -> MixtureSpec:
    doc = yaml.safe_load(text)
    doc.update(changes)
    return MixtureSpec.from_mapping(doc, source="releases/mixtures/cotrain.yaml")


@pytest.fixture(scope="module")
def built(mlake):
    lake = mlake["lake"]
    spec = register_mixture(lake, MAPPED, source="releases/mixtures/cotrain.yaml")
    return build_mixture(lake, spec)


# ---- the file ------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, expected", [
    ({"sources": [{"release": "mix-g1", "wieght": 1}]}, "sources[0]: unknown key 'wieght' (did you mean 'weight'?)"),
    ({"sourcse": []}, "unknown key 'sourcse' (did you mean 'sources'?)"),
    ({"sources": [{"release": "mix-g1", "weight": 0}]}, "sources[0].weight: expected a value > 0.0, got 0"),
    ({"sources": [{"release": "mix-g1", "weight": -1.5}]}, "sources[0].weight: expected a value > 0.0, got -1.5"),
    ({"sources": [{"release": "mix-g1", "weight": ".nan"}]}, "sources[0].weight: expected a positive number"),
    ({"sources": [{"release": "mix-g1", "weight": 1, "role": "teleop"}]}, "sources[0].role: expected one of"),
    ({"intended_uses": ["internal_trainng"]}, "unknown use(s) 'internal_trainng' (did you mean 'internal_training'?)"),
    ({"sources": [{"release": "mix-g1", "weight": 1, "feature_map": {"action": "actions"}}]},
     "'actions' is not a mixture feature (did you mean 'action'?)"),
    ({"sources": [{"release": "mix-g1", "weight": 1}, {"release": "mix-g1@0", "weight": 1}]},
     "source name(s) ['mix-g1'] given twice"),
    ({"kind": "release"}, "kind: expected one of 'mixture'"),
])
def test_the_spec_is_validated_strictly_in_one_line(change, expected):
    doc = yaml.safe_load(MAPPED)
    doc.update(change)
    with pytest.raises(MixtureSpecError) as exc:
        MixtureSpec.from_mapping(doc, source="releases/mixtures/cotrain.yaml")
    msg = str(exc.value)
    assert msg.startswith("releases/mixtures/cotrain.yaml: ") and "\n" not in msg
    assert expected in msg


def test_roles_agree_with_the_weights_table_schema():
    assert ROLES == MIXTURE_ROLES


def test_the_example_spec_in_the_repo_is_valid():
    path = Path(__file__).resolve().parents[3] / "releases" / "mixtures" / "demo-cotrain.yaml"
    spec = MixtureSpec.from_yaml(path.read_text(), source=str(path))
    assert spec.name == "demo-cotrain" and len(spec.sources) >= 2


# ---- resolving against the lake -----------------------------------------------------------------
def test_an_unknown_release_is_refused_with_did_you_mean(mlake):
    spec = spec_of(MAPPED, sources=[{"release": "mix-g2", "weight": 1}])
    with pytest.raises(UnknownIdError, match=r"source mix-g2: unknown release 'mix-g2' \(did you mean 'mix-g1'\?\)"):
        resolve_mixture(mlake["lake"], spec)


def test_an_unpublished_version_is_refused_listing_the_published_ones(mlake):
    for ref in ("mix-g1@3", "mix-g1.3"):
        spec = spec_of(MAPPED, sources=[{"release": ref, "weight": 1}])
        with pytest.raises(UnknownIdError, match=r"release mix-g1 has no published version 3 \(published: mix-g1\)"):
            resolve_mixture(mlake["lake"], spec)


def test_embodiments_with_different_actions_are_refused_without_a_feature_map(mlake):
    spec = spec_of(MAPPED, sources=[{"release": "mix-g1", "weight": 1}, {"release": "mix-ur5e", "weight": 1}])
    with pytest.raises(MixtureError) as exc:
        resolve_mixture(mlake["lake"], spec)
    assert str(exc.value).startswith(
        f"mixture cotrain: mix-g1 action ({G1_ACTION},) and mix-ur5e action ({UR5E_ACTION},) differ and no feature_map "
        "maps them (not stated by: mix-g1, mix-ur5e)")
    # stating it for one source is not enough: the other still mixes silently
    spec = spec_of(MAPPED, sources=[{"release": "mix-g1", "weight": 1, "feature_map": {"action": "action"}},
                                    {"release": "mix-ur5e", "weight": 1}])
    with pytest.raises(MixtureError, match=r"not stated by: mix-ur5e\)"):
        resolve_mixture(mlake["lake"], spec)


def test_a_feature_map_naming_a_missing_feature_or_a_narrow_target_is_refused(mlake):
    lake = mlake["lake"]
    spec = spec_of(MAPPED, sources=[{"release": "mix-ur5e", "weight": 1, "feature_map": {"actoin": "action"}}])
    with pytest.raises(MixtureError, match=r"feature_map names 'actoin' \(did you mean 'action'\?\), not a feature of "
                                           r"release mix-ur5e"):
        resolve_mixture(lake, spec)
    spec = spec_of(MAPPED, target={"action_dim": 10})
    with pytest.raises(MixtureError, match=rf"source mix-g1 action \({G1_ACTION},\) is wider than the target action "
                                           r"\(10,\)"):
        resolve_mixture(lake, spec)
    spec = spec_of(MAPPED, sources=[{"release": "mix-ur5e", "weight": 1,
                                     "feature_map": {"observation.images.wrist": "action"}}])
    with pytest.raises(MixtureError, match=r"maps 'observation.images.wrist' \(a camera\) onto 'action'"):
        resolve_mixture(lake, spec)


def test_action_sources_at_different_fps_are_refused(mlake):
    spec = spec_of(MAPPED, sources=[{"release": "mix-ur5e", "weight": 1},
                                    {"release": "arm-30fps", "weight": 1, "feature_map": {"action": "action"}}])
    with pytest.raises(MixtureError, match=r"mix-ur5e at 20 fps and arm-30fps at 30 fps: an action chunk would span "
                                           "different times"):
        resolve_mixture(mlake["lake"], spec)


def test_an_action_free_source_cannot_take_a_robot_role_or_the_action_loss(mlake):
    lake = mlake["lake"]
    spec = spec_of(MAPPED, sources=[{"release": "arm-30fps", "weight": 1, "role": "robot_teleop",
                                     "feature_map": {"observation.state": "observation.state"}}])
    with pytest.raises(MixtureError, match=r"source arm-30fps: role robot_teleop needs an action feature"):
        resolve_mixture(lake, spec)
    spec = spec_of(MAPPED, sources=[{"release": "ego-manip", "weight": 1, "role": "simulation"}])
    with pytest.raises(MixtureError, match=r"source ego-manip: role simulation contradicts release ego-manip, whose "
                                           r"manifest says human_video"):
        resolve_mixture(lake, spec)
    spec = spec_of(MAPPED, sources=[{"release": "ego-manip", "weight": 1, "losses": ["action"]}])
    with pytest.raises(MixtureError, match=r"source ego-manip: cannot supervise action: it fills no 'action'"):
        resolve_mixture(lake, spec)


def test_a_use_one_source_does_not_allow_is_refused_naming_it(mlake):
    spec = spec_of(MAPPED, intended_uses=["internal_training", "lab_robot"])
    with pytest.raises(RightsError) as exc:
        resolve_mixture(mlake["lake"], spec)
    msg = str(exc.value)
    assert msg.startswith("mixture cotrain: intended use(s) internal_training, lab_robot refused: source ego-manip "
                          "(release ego-manip) does not allow lab_robot (it allows internal_training)")
    assert "mix-g1" not in msg and "\n" not in msg  # the robot releases allow it: only the blocker is named


def test_customers_mix_only_under_a_grant(mlake):
    lake = mlake["lake"]
    sources = [{"release": "mix-g1", "weight": 1}, {"release": "ego-acme", "weight": 1}]
    with pytest.raises(RightsError, match=r"mixture cotrain would mix customers \(mix-g1: internal; ego-acme: acme\) "
                                          r"without a cross-customer grant covering \['acme', 'internal'\]"):
        resolve_mixture(lake, spec_of(MAPPED, sources=sources))
    grant = {"reference": "MSA-2026-17", "granted_by": "legal", "customers": ["acme", "internal"]}
    res = resolve_mixture(lake, spec_of(MAPPED, sources=sources, cross_customer_grant=grant))
    assert res.rights.customers == {"acme", "internal"}


def test_a_flagged_or_expired_source_is_refused(mlake):
    lake = mlake["lake"]
    spec = spec_of(MAPPED, sources=[{"release": "ego-flagged", "weight": 1}])
    with pytest.raises(RightsError, match=r"source ego-flagged \(release ego-flagged\) is flagged do_not_use \(consent "
                                          r"consent-video-0007 withdrawn"):
        resolve_mixture(lake, spec)
    spec = spec_of(MAPPED, sources=[{"release": "ego-manip", "weight": 1}])
    with pytest.raises(RightsError, match=r"source ego-manip \(release ego-manip\) is past its retention date 2030-06-30"):
        resolve_mixture(lake, spec, today=dt.date(2030, 7, 1))


# ---- the published mixture ----------------------------------------------------------------------
def test_the_mixture_records_versions_roles_weights_and_features(built, mlake):
    m = built.manifest
    rel = mlake["releases"]
    assert built.status == "materialized" and isinstance(m, MixtureManifest)
    assert m.artifact_key == "mixtures/cotrain/cotrain" and m.mixture == "cotrain" and m.version == 0
    src = {s["name"]: s for s in m.sources}
    assert list(src) == ["mix-g1", "mix-ur5e", "ego-manip"]
    assert [src[n]["weight"] for n in src] == [5, 3, 2]
    assert [src[n]["share"] for n in src] == pytest.approx([0.5, 0.3, 0.2], abs=1e-15)
    assert src["mix-g1"]["release"] == "mix-g1" and src["mix-g1"]["pinned"] is False  # resolved to the latest
    assert src["mix-ur5e"]["requested"] == "mix-ur5e@0" and src["mix-ur5e"]["pinned"] is True
    assert (src["mix-g1"]["role"], src["mix-ur5e"]["role"], src["ego-manip"]["role"]) == (
        "robot_teleop", "simulation", "human_video")
    assert src["ego-manip"]["role_from"] == "release" and src["ego-manip"]["action_free"] is True
    assert src["ego-manip"]["losses"] == ["latent_action"] and src["mix-g1"]["losses"] == ["action", "latent_action"]
    assert src["mix-g1"]["dims"] == {"action": [G1_ACTION, G1_ACTION], "observation.state": [17, 17]}
    assert src["mix-ur5e"]["dims"]["action"] == [UR5E_ACTION, G1_ACTION]
    assert m.target_features["action"]["shape"] == [G1_ACTION] and m.target_features["action"]["mask"] == "action_mask"
    assert m.target_features["action_mask"] == {"dtype": "bool", "shape": [G1_ACTION], "mask": None,
                                                "padding": "True on the dimensions the source fills in action"}
    assert "observation.images.head_mask" in m.target_features
    assert src["mix-g1"]["unused_features"] == ["observation.locomotion_command"]  # not in its feature_map
    # lineage inputs: exactly the component releases, by key and manifest hash
    assert [(i.key, i.sha256, i.kind) for i in m.inputs] == [
        (rel[n].artifact_key, rel[n].sha256(), "lerobot_dataset") for n in ("mix-g1", "mix-ur5e", "ego-manip")]
    assert m.num_episodes == 2 + 2 + 3 and m.num_frames == sum(s["num_frames"] for s in m.sources)


def test_rights_are_computed_over_every_source(built, mlake):
    r = built.manifest.rights_obj
    rel = mlake["releases"]
    g1, ego = rel["mix-g1"].rights_obj, rel["ego-manip"].rights_obj
    assert r.allowed_uses == g1.allowed_uses & rel["mix-ur5e"].rights_obj.allowed_uses & ego.allowed_uses \
        == {"internal_training"}
    assert r.consent_refs == g1.consent_refs | rel["mix-ur5e"].rights_obj.consent_refs | {"consent-video-0007"}
    assert r.retention_until == dt.date(2030, 6, 30) == min(g1.retention_until, ego.retention_until)
    assert r.contains_human_video is True and g1.contains_human_video is False
    assert r.licenses >= {"CC-BY-NC-4.0", "proprietary"}


def test_the_weights_table_spreads_each_share_over_frames(built, mlake):
    lake = mlake["lake"]
    m = built.manifest
    with lake.local_artifact(m.artifact_key) as root:
        table = read_mixture_weights(Path(root) / m.weights_table)
        card = (Path(root) / "README.md").read_text()
    assert weights_consistent(m, table) == []
    ego = table.filter(table["source"] == "ego-manip").sort("episode_index")
    assert ego["num_frames"].to_list() == [12, 20, 28]
    assert ego["episode_weight"].to_list() == pytest.approx([0.2 * 12 / 60, 0.2 * 20 / 60, 0.2 * 28 / 60], abs=1e-15)
    assert ego["dataset_from_index"].to_list() == [0, 12, 32]
    assert ego["frame_weight"].to_list() == pytest.approx([0.2 / 60] * 3, abs=1e-15)  # every frame equally likely
    # a table that does not sum to one is refused by its schema
    broken = table.with_columns(table["episode_weight"] * 2)
    with pytest.raises(TableError, match=r"episode_weight must sum to 1"):
        check_mixture_weights(broken, where="test")
    # the card states sources, versions, roles, weights, shares, counts, mapping and rights
    for text in ("| mix-g1 | `mix-g1` (`hvla/mix-g1`) | no: latest at build | robot_teleop | 5 | 50.0 % |",
                 "| mix-ur5e | `mix-ur5e` (`hvla/mix-ur5e`) | yes | simulation | 3 | 30.0 % |",
                 "| ego-manip | `ego-manip` (`hvla/ego`) | no: latest at build | human_video (from release) | 2 | 20.0 % |",
                 f"| mix-ur5e | `action` | ({UR5E_ACTION},) | `action` | {UR5E_ACTION} of {G1_ACTION} (zero-padded, "
                 "`action_mask`) |",
                 "| ego-manip | `observation.images.ego` | (32, 40, 3) | `observation.images.head` | camera slot |",
                 "- Allowed uses: internal_training", "- Contains human video: yes", "consent-video-0007"):
        assert text in card, text


def test_building_again_is_cached_and_a_new_weight_is_a_new_version(built, mlake):
    lake = mlake["lake"]
    again = build_mixture(lake, load_mixture_spec(lake, "cotrain"))
    assert again.status == "cached" and again.manifest.fingerprint == built.manifest.fingerprint
    doc = yaml.safe_load(MAPPED)
    doc["sources"][2]["weight"] = 4
    other = build_mixture(lake, register_mixture(lake, yaml.safe_dump(doc)))
    assert other.status == "materialized" and other.manifest.mixture == "cotrain.1" and other.manifest.version == 1
    assert [s["share"] for s in other.manifest.sources] == pytest.approx([5 / 12, 3 / 12, 4 / 12])
    assert require_manifest(lake, built.prefix, MixtureManifest).fingerprint == built.manifest.fingerprint  # kept
    assert latest_mixture(lake, "cotrain").mixture == "cotrain.1"
    register_mixture(lake, MAPPED)  # the registered spec back to the fixture's


def test_lineage_connects_the_mixture_to_every_source_down_to_raw(built, mlake):
    tree = upstream(mlake["lake"], built.prefix)
    assert tree.type == "mixture_release"
    children = {c.key: c for c in tree.children}
    assert set(children) == {r.artifact_key for n, r in mlake["releases"].items() if n in ("mix-g1", "mix-ur5e",
                                                                                         "ego-manip")}
    assert all(c.sha256_matches for c in tree.children)
    text = render_tree(tree, show_config=False)  # what `hvla lineage upstream mixtures/cotrain/cotrain` prints
    assert text.splitlines()[0].startswith("mixture_release mixtures/cotrain/cotrain")
    assert "lerobot_dataset lerobot/hvla/ego/ego-manip" in text

    def raw(node):
        return ({node.info.get("robot_id")} if node.type == "raw_mcap_episode" else set()).union(
            *[raw(c) for c in node.children])
    assert raw(tree) == {"g1-001", "ur5e-001"}
    # and onward: a consent of the G1 recordings reaches the mixture (what a withdrawal flags)
    consent = sorted(mlake["releases"]["mix-g1"].rights_obj.consent_refs)[0]
    hits = {h.key: h for h in downstream(mlake["lake"], f"consent:{consent}")}
    assert hits[built.prefix].type == "mixture_release"
    assert set(hits[built.prefix].episode_ids) >= {"g1-a", "g1-b"}


# ---- sampling and reading -----------------------------------------------------------------------
def test_the_sampler_draws_sources_by_weight_and_frames_uniformly(built, mlake):
    sampler = MixtureSampler.from_lake(mlake["lake"], built.manifest, seed=11)
    n = 40_000
    draws = sampler.draw(n)
    src = draws.sources()
    shares = {s["name"]: s["share"] for s in built.manifest.sources}
    for name, p in shares.items():
        k = int((src == name).sum())
        assert abs(k / n - p) < 4 * math.sqrt(p * (1 - p) / n), (name, k / n, p)  # 4 sigma of a binomial
    # within the action-free source, episodes are drawn in proportion to their frames (12:20:28)
    table = sampler.table
    ep = np.asarray(table["episode_index"].to_list())[draws.row[src == "ego-manip"]]
    counts = np.bincount(ep, minlength=3)
    for i, frames in enumerate((12, 20, 28)):
        p = frames / 60
        assert abs(counts[i] / counts.sum() - p) < 4 * math.sqrt(p * (1 - p) / counts.sum())
    frames = np.asarray(table["num_frames"].to_list())[draws.row]
    assert (draws.frame_index >= 0).all() and (draws.frame_index < frames).all()
    # seeded: the same seed draws the same, another seed not
    assert (MixtureSampler(table, 11).draw(500).row == MixtureSampler(table, 11).draw(500).row).all()
    assert not (MixtureSampler(table, 11).draw(500).row == MixtureSampler(table, 12).draw(500).row).all()


def test_within_source_episodes_spreads_a_share_evenly_over_episodes(mlake):
    lake = mlake["lake"]
    spec = spec_of(MAPPED, name="cotrain-episodes", within_source="episodes")
    b = build_mixture(lake, spec)
    with lake.local_artifact(b.prefix) as root:
        table = read_mixture_weights(Path(root) / "sampling_weights.parquet")
    ego = table.filter(table["source"] == "ego-manip")["episode_weight"].to_list()
    assert ego == pytest.approx([0.2 / 3] * 3, abs=1e-15)


def test_the_reader_pads_actions_masks_them_and_marks_action_free_items(built, mlake):
    lake = mlake["lake"]
    with open_mixture(lake, "cotrain", mixture_id="cotrain") as reader:
        draws = reader.sampler(seed=3).draw(200).records()
        first = {}
        for d in draws:
            first.setdefault(d.source, d)
        assert set(first) == {"mix-g1", "mix-ur5e", "ego-manip"}
        items = {s: reader.item(d) for s, d in first.items()}
        ur5e_raw = reader._datasets["mix-ur5e"][first["mix-ur5e"].dataset_index]
    g1, ur5e, ego = items["mix-g1"], items["mix-ur5e"], items["ego-manip"]
    for it in items.values():
        assert it["action"].shape == (G1_ACTION,) and it["action"].dtype == np.float32
        assert it["action_mask"].shape == (G1_ACTION,) and it["action_mask"].dtype == np.bool_
    assert g1["action_mask"].all() and not g1["action_free"] and g1["observation.images.head_mask"]
    assert ur5e["action_mask"].tolist() == [True] * UR5E_ACTION + [False] * (G1_ACTION - UR5E_ACTION)
    assert np.array_equal(ur5e["action"][:UR5E_ACTION], ur5e_raw["action"].numpy())
    assert (ur5e["action"][UR5E_ACTION:] == 0).all()
    assert not ur5e["observation.images.head_mask"] and "observation.images.head" not in ur5e
    assert ur5e["observation.images.wrist"].shape == (3, 240, 320)
    assert ego["action_free"] and ego["losses"] == ["latent_action"] and not ego["action_mask"].any()
    assert (ego["action"] == 0).all() and not ego["observation.state_mask"].any()
    assert ego["observation.images.head"].shape == (3, VIDEO_H, VIDEO_W) and ego["observation.images.head_mask"]
    assert ego["role"] == "human_video" and ego["task"] == "pick up the cup"


def test_an_unknown_mixture_is_refused_with_did_you_mean(built, mlake):
    with pytest.raises(UnknownIdError, match=r"unknown mixture 'cotrian' \(did you mean 'cotrain'\?\)"):
        load_mixture_spec(mlake["lake"], "cotrian")
    assert load_manifest(mlake["lake"], "mixtures/cotrain/cotrain", MixtureManifest) is not None


def test_mixed_fps_is_kept_per_source_only_when_stated(mlake):
    spec = spec_of(MAPPED, mixed_fps="per_source",
                   sources=[{"release": "mix-ur5e", "weight": 1, "feature_map": {"action": "action"}},
                            {"release": "arm-30fps", "weight": 1, "feature_map": {"action": "action"}}])
    res = resolve_mixture(mlake["lake"], spec)
    assert res.fps is None and [float(s.manifest.fps) for s in res.sources] == [20.0, 30.0]
    assert [(s.role, s.role_from) for s in res.sources] == [("robot_teleop", "default"), ("robot_teleop", "default")]


def test_a_bare_release_name_resolves_to_the_latest_version_and_a_pin_holds(mlake, tmp_path):
    lake = mlake["lake"]
    video = write_lerobot(tmp_path / "loco", "hvla/ego-loco", fps=10, episodes=[10, 14], video=True)
    human = {"source_kind": "human_video", "has_action": False}
    for version in (0, 1):
        release = "ego-loco" if version == 0 else f"ego-loco.{version}"
        publish_lerobot(lake, video, "hvla/ego-loco", release, _rights(), spec_name="ego-loco", version=version,
                        **human)
    for ref, expected, pinned in (("ego-loco", "ego-loco.1", False), ("ego-loco@latest", "ego-loco.1", False),
                                  ("ego-loco@0", "ego-loco", True), ("ego-loco.1", "ego-loco.1", True)):
        res = resolve_mixture(lake, spec_of(MAPPED, sources=[{"release": ref, "weight": 1}]))
        assert (res.sources[0].manifest.release, res.sources[0].pinned) == (expected, pinned), ref
    with pytest.raises(UnknownIdError, match=r"names a version twice; write ego-loco@1 or ego-loco.1"):
        resolve_mixture(lake, spec_of(MAPPED, sources=[{"release": "ego-loco.1@0", "weight": 1}]))
