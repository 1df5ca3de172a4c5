"""Video-only LeRobot v3 releases per learning bucket, written by LeRobot's writer and read back
with ``LeRobotDataset``: no action feature, gated clips left out, faces blurred unless the rights
allow identifiable people, lineage from the release to the raw clips."""

import cv2
import numpy as np
import pytest
import skimage.data

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.manifest import LeRobotDatasetManifest
from hvla_platform.lib.dataset.lerobot_release import DEFAULT_VIDEO_BACKEND
from hvla_platform.lib.dataset.video_release import VideoReleaseError, build_video_release, parse_video_release_spec
from hvla_platform.lib.ingest.human_video import ingest_clip_partition, land_clip
from hvla_platform.lib.lineage.graph import upstream
from hvla_platform.lib.sim.human_video import clip_metadata, write_clip
from hvla_platform_tests.fixtures.human_video_clips import FPS, frozen_span, sim_frames

DAY, DEVICE = "2026-11-10", "headcam-sim-01"


def _land(lake, tmp_path, clip_id, frames, role, task, **kw):
    meta = clip_metadata(clip_id=clip_id, device_id=DEVICE, capture_date=DAY, role=role, task=task, seed=0, **kw)
    clip = write_clip(tmp_path / "src", np.asarray(frames), meta, FPS)
    assert land_clip(lake, clip.folder).status == "landed"


def _face_clip(seed: int) -> list[np.ndarray]:
    """2 s of a still camera on the astronaut's portrait (256 x 256) with σ = 2 sensor noise."""
    img = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA).astype(np.int16)
    rng = np.random.default_rng(seed)
    return [np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8) for _ in range(20)]


def _lap(img: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def _decoded(root, repo_id, key, index):
    ds = import_lerobot_dataset()(repo_id, root=root, video_backend=DEFAULT_VIDEO_BACKEND)
    return ds, (ds[index][key].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)


def test_locomotion_bucket_release(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    loco, task = sim_frames("locomotion", 0)
    _land(lake, tmp_path, "hv-loco-000", loco, "locomotion", task)
    _land(lake, tmp_path, "hv-loco-001", loco[::-1], "locomotion", task)  # the same walk played backwards
    _land(lake, tmp_path, "hv-loco-frozen", frozen_span(loco, 10, 20), "locomotion", task)
    mani, mani_task = sim_frames("manipulation", 0)
    _land(lake, tmp_path, "hv-mani-000", mani, "manipulation", mani_task)
    assert all(c.usable for c in ingest_clip_partition(lake, DAY, DEVICE).clips)

    spec = parse_video_release_spec({"name": "hv-loco-v1", "repo_id": "hvla/human-video-locomotion",
                                     "bucket": "locomotion", "fps": 10})
    pub = build_video_release(lake, spec)
    m = pub.manifest
    assert isinstance(m, LeRobotDatasetManifest) and pub.status == "materialized"
    assert (m.bucket, m.has_action, m.source_kind) == ("locomotion", False, "human_video")
    assert m.train_episode_ids == ["hv-loco-000", "hv-loco-001"] and m.num_frames == 60
    assert "video_frozen" in m.excluded["hv-loco-frozen"]
    assert "hv-mani-000" not in m.excluded and "hv-mani-000" not in m.episode_ids  # the other bucket
    assert "action" not in m.feature_schema["features"] and "observation.state" not in m.feature_schema["features"]
    assert m.face_blur["blurred_clips"] == {"hv-loco-000": 0, "hv-loco-001": 0}  # rights require blurring
    assert m.rights_obj.contains_human_video

    root = tmp_path / "lake" / pub.prefix
    ds, frame = _decoded(root, spec.repo_id, spec.image_key, 0)
    assert ds.num_episodes == 2 and len(ds) == 60 and "action" not in ds.meta.features
    assert ds.meta.tasks.index.tolist() == [task]
    assert frame.shape == (96, 128, 3)
    assert np.abs(frame.astype(int) - loco[0].astype(int)).mean() < 6  # the clip's first frame, re-encoded

    assert build_video_release(lake, spec).status == "cached"
    # a new clip of the bucket: the next version, the published one unchanged
    _land(lake, tmp_path, "hv-loco-mirror", loco[:, :, ::-1], "locomotion", task)  # the walk mirrored
    ingest_clip_partition(lake, DAY, DEVICE)
    v1 = build_video_release(lake, spec)
    assert (v1.status, v1.manifest.release, v1.manifest.version) == ("materialized", "hv-loco-v1.1", 1)
    assert v1.prefix == "lerobot/hvla/human-video-locomotion/hv-loco-v1.1" and v1.manifest.num_episodes == 3
    assert lake.read_manifest(pub.prefix) == m.to_dict()
    assert build_video_release(lake, spec).manifest.release == "hv-loco-v1.1"
    tree = upstream(lake, pub.prefix)
    assert sorted((c.key, c.type) for c in tree.children) == [
        (f"raw-human-video/{DAY}/{DEVICE}/hv-loco-000", "raw_human_video_clip"),
        (f"raw-human-video/{DAY}/{DEVICE}/hv-loco-001", "raw_human_video_clip")]


def test_faces_are_blurred_unless_the_rights_allow_identifiable_people(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    _land(lake, tmp_path, "hv-face-blur", _face_clip(0), "manipulation", "hand the cup to the person")
    _land(lake, tmp_path, "hv-face-keep", _face_clip(1), "manipulation", "hand the cup to the person",
          identifiable_people=True)
    ingest_clip_partition(lake, DAY, DEVICE)
    spec = parse_video_release_spec({"name": "hv-mani-v1", "repo_id": "hvla/human-video-manipulation",
                                     "bucket": "manipulation"})
    pub = build_video_release(lake, spec)
    m = pub.manifest
    assert m.face_blur["kept_clips"] == ["hv-face-keep"]
    assert m.face_blur["blurred_clips"]["hv-face-blur"] >= 20  # a face in every frame
    root = tmp_path / "lake" / pub.prefix
    face = (slice(33, 80), slice(88, 135))  # the astronaut's face at 256 x 256
    original = cv2.resize(skimage.data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    _, blurred = _decoded(root, spec.repo_id, spec.image_key, m.episode_index["hv-face-blur"] * 20)
    _, kept = _decoded(root, spec.repo_id, spec.image_key, m.episode_index["hv-face-keep"] * 20)
    assert _lap(blurred[face]) < 0.1 * _lap(kept[face])
    assert np.abs(kept[face].astype(int) - original[face].astype(int)).mean() < 8
    assert np.abs(blurred[face].astype(int) - original[face].astype(int)).mean() > 8
    # away from the face the two releases' frames agree with the photograph
    assert np.abs(blurred[200:].astype(int) - original[200:].astype(int)).mean() < 10


def test_spec_is_strict_and_an_empty_bucket_is_refused(tmp_path):
    with pytest.raises(VideoReleaseError, match="unknown key 'buckt' \\(did you mean 'bucket'\\?\\)"):
        parse_video_release_spec({"name": "x", "repo_id": "hvla/x", "buckt": "locomotion"}, source="x.yaml")
    with pytest.raises(VideoReleaseError, match="max_jiter"):
        parse_video_release_spec({"name": "x", "repo_id": "hvla/x", "bucket": "locomotion", "qa": {"max_jiter": 1}})
    spec = parse_video_release_spec({"name": "x", "repo_id": "hvla/x", "bucket": "locomotion"})
    with pytest.raises(VideoReleaseError, match="no usable locomotion clip"):
        build_video_release(LocalLake(tmp_path / "lake"), spec)
