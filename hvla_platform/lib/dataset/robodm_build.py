"""Build a release's Robo-DM ``.vla`` training cache from its LeRobot dataset and publish it."""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvla_platform import __version__
from hvla_platform.lib.core.manifest import InputRef, build_manifest, fingerprint, manifest_sha256
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.dataset.releases import lerobot_prefix
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.dataset.robodm_cache import (
    DEFAULT_IMAGE_ATOL,
    DEFAULT_VIDEO_CODEC,
    build_robodm_cache,
    check_cache,
    roundtrip_check,
)
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.keys import robodm_prefix

CONVERTER_VERSION = f"hvla-platform {__version__} lerobot→robodm v1"


@dataclass
class RoboDMBuild:
    """Outcome of :func:`build_cache` (``status``: ``materialized`` or ``cached``)."""

    status: str
    uri: str
    manifest: dict[str, Any]
    problems: list[str]
    roundtrip: dict[str, Any]
    rights: Rights


def build_cache(lake: Lake, spec: ReleaseSpec, *, video_codec: str = DEFAULT_VIDEO_CODEC,
                image_atol: float = DEFAULT_IMAGE_ATOL, roundtrip_seed: int = 0) -> RoboDMBuild:
    """One ``.vla`` per episode of the release + ``manifest.parquet``; structural checks on the
    written files (count, sizes, codec actually written) and a round-trip of one sampled episode
    against LeRobot.

    Raises:
        ArtifactNotFoundError: the release's LeRobot dataset is not materialized.
        RoboDMCacheError / RoboDMCodecError: see :func:`~hvla_platform.lib.dataset.robodm_cache.build_robodm_cache`.
    """
    src_prefix = lerobot_prefix(spec)
    src = lake.require_manifest(src_prefix)
    config = {"video_codec": video_codec, "image_atol": image_atol, "converter_version": CONVERTER_VERSION,
              "roundtrip_seed": roundtrip_seed}
    inputs = [InputRef(uri=lake.uri(src_prefix), sha256=manifest_sha256(src), kind="lerobot_dataset",
                       episode_ids=list(src["episode_ids"]))]
    fp = fingerprint([i.to_dict() for i in inputs], config)
    prefix = robodm_prefix(spec.name)
    rights = Rights.from_dict(src["rights"])
    existing = lake.read_manifest(prefix)
    if existing is not None and existing.get("fingerprint") == fp:
        return RoboDMBuild("cached", lake.uri(prefix), existing, existing.get("problems", []),
                           existing.get("roundtrip", {}), rights)
    indices = sorted(src["episode_index"].values())
    sample = random.Random(roundtrip_seed).choice(indices)
    with lake.local_artifact(src_prefix) as root, tempfile.TemporaryDirectory(prefix="hvla-vla-") as tmp:
        out = Path(tmp) / "cache"
        res = build_robodm_cache(Path(root), spec.repo_id, out, release=spec.name, video_codec=video_codec,
                                 converter_version=CONVERTER_VERSION)
        problems = check_cache(out, video_codec=video_codec, expected_episode_indices=indices)
        rt = roundtrip_check(out / f"episode_{sample:06d}.vla", Path(root), spec.repo_id, sample, image_atol=image_atol)
        manifest = build_manifest(
            artifact_type="robodm_cache", artifact_uri=lake.uri(prefix), inputs=inputs, config=config, rights=rights,
            local_dir=out, episode_ids=list(src["episode_ids"]),
            extra={"release": spec.name, "repo_id": spec.repo_id, "num_episodes": res.num_episodes,
                   "num_frames": res.frames, "bytes": res.bytes, "codecs": res.codecs, "problems": problems,
                   "roundtrip": rt, "probe_fix_applied": res.probe_fix_applied,
                   "train_episode_ids": src["train_episode_ids"], "heldout_episode_ids": src["heldout_episode_ids"]},
        )
        lake.publish_artifact(prefix, out, manifest)
    return RoboDMBuild("materialized", lake.uri(prefix), manifest, problems, rt, rights)
