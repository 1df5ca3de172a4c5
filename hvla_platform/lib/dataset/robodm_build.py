"""Build a release's Robo-DM ``.vla`` training cache from its LeRobot dataset and publish it."""

from __future__ import annotations

import random
from pathlib import Path

from hvla_platform import __version__
from hvla_platform.lib.core.manifest import (
    Content, InputRef, LeRobotDatasetManifest, Published, publish_if_changed, require_manifest)
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.dataset.lerobot_release import read_hvla_episodes
from hvla_platform.lib.dataset.releases import lerobot_prefix
from hvla_platform.lib.dataset.robodm_cache import (
    DEFAULT_IMAGE_ATOL,
    DEFAULT_VIDEO_CODEC,
    build_robodm_cache,
    check_cache,
    roundtrip_check,
)
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.keys import robodm_prefix

#: v2: QA status, quality score and outcome columns; bit-exact muxing; content-derived created_at.
CONVERTER_VERSION = f"hvla-platform {__version__} lerobot→robodm v2"


def _created_at(root: Path, src: LeRobotDatasetManifest) -> str | None:
    """``None`` (derive it from the episodes' recording times) unless the release predates
    ``start_time_ns`` in ``meta/hvla_episodes.parquet``: then the release's own ``created_at``."""
    rows = read_hvla_episodes(root)
    return None if all(r.get("start_time_ns") is not None for r in rows) else src.created_at


def build_cache(lake: Lake, spec: ReleaseSpec, *, video_codec: str = DEFAULT_VIDEO_CODEC,
                image_atol: float = DEFAULT_IMAGE_ATOL, roundtrip_seed: int = 0) -> Published:
    """One ``.vla`` per episode of the release + ``manifest.parquet``, published under
    ``robodm-cache/<release>/`` (:class:`~hvla_platform.lib.core.manifest.RoboDMCacheManifest`):
    structural checks on the written files (count, sizes, codec actually written) land in its
    ``problems``, the round trip of one sampled episode against LeRobot in its ``roundtrip``.
    ``manifest.parquet`` carries each episode's QA status, quality score and outcome from the
    release's ``meta/hvla_episodes.parquet``, and a ``created_at`` the data fixes
    (:func:`~hvla_platform.lib.dataset.robodm_cache.data_created_at`): two builds of the same
    release give byte-identical files.

    Raises:
        ArtifactNotFoundError: the release's LeRobot dataset is not materialized.
        RoboDMCacheError / RoboDMCodecError: see :func:`~hvla_platform.lib.dataset.robodm_cache.build_robodm_cache`.
    """
    src_prefix = lerobot_prefix(spec)
    src = require_manifest(lake, src_prefix, LeRobotDatasetManifest)
    config = {"video_codec": video_codec, "image_atol": image_atol, "converter_version": CONVERTER_VERSION,
              "roundtrip_seed": roundtrip_seed}
    inputs = [InputRef(key=src_prefix, sha256=src.sha256(), kind="lerobot_dataset",
                       episode_ids=list(src.episode_ids))]
    indices = sorted(src.episode_index.values())

    def write(out: Path) -> Content:
        sample = random.Random(roundtrip_seed).choice(indices)
        with lake.local_artifact(src_prefix) as root:
            res = build_robodm_cache(Path(root), spec.repo_id, out, release=spec.name, video_codec=video_codec,
                                     converter_version=CONVERTER_VERSION, created_at=_created_at(Path(root), src))
            problems = check_cache(out, video_codec=video_codec, expected_episode_indices=indices)
            rt = roundtrip_check(out / f"episode_{sample:06d}.vla", Path(root), spec.repo_id, sample,
                                 image_atol=image_atol)
        return Content(episode_ids=list(src.episode_ids), extra={
            "release": spec.name, "repo_id": spec.repo_id, "num_episodes": res.num_episodes, "num_frames": res.frames,
            "bytes": res.bytes, "codecs": res.codecs, "problems": problems, "roundtrip": rt,
            "probe_fix_applied": res.probe_fix_applied, "train_episode_ids": list(src.train_episode_ids),
            "heldout_episode_ids": list(src.heldout_episode_ids)})

    return publish_if_changed(lake, robodm_prefix(spec.name), artifact_type="robodm_cache", inputs=inputs,
                              config=config, rights=src.rights_obj, write=write)
