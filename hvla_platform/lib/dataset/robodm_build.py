"""Build a release's Robo-DM ``.vla`` training cache from its source HDF5 episodes and publish it."""

from __future__ import annotations

import contextlib
import random
from pathlib import Path

from hvla_platform import __version__
from hvla_platform.lib.core.keys import robodm_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import (
    Content, InputRef, LeRobotDatasetManifest, Published, publish_if_changed, require_manifest)
from hvla_platform.lib.dataset.codec_log import codec_log_path, codec_output_to
from hvla_platform.lib.dataset.lerobot_release import read_hvla_episodes
from hvla_platform.lib.dataset.releases import lerobot_prefix
from hvla_platform.lib.dataset.robodm_cache import (
    DEFAULT_IMAGE_ATOL,
    DEFAULT_SOURCE_ATOL,
    DEFAULT_VIDEO_CODEC,
    build_robodm_cache,
    check_cache,
    roundtrip_check,
    source_check,
)
from hvla_platform.lib.dataset.spec import ReleaseSpec

#: v2: QA status, quality score and outcome columns; bit-exact muxing; content-derived created_at.
#: v3: images from the release's source HDF5 frames (not its MP4s); libx264 by default.
CONVERTER_VERSION = f"hvla-platform {__version__} hdf5→robodm v3"


def _created_at(root: Path, src: LeRobotDatasetManifest) -> str | None:
    """``None`` (derive it from the episodes' recording times) unless the release predates
    ``start_time_ns`` in ``meta/hvla_episodes.parquet``: then the release's own ``created_at``."""
    rows = read_hvla_episodes(root)
    return None if all(r.get("start_time_ns") is not None for r in rows) else src.created_at


def build_cache(lake: Lake, spec: ReleaseSpec, *, video_codec: str = DEFAULT_VIDEO_CODEC,
                image_atol: float = DEFAULT_IMAGE_ATOL, source_atol: float = DEFAULT_SOURCE_ATOL,
                roundtrip_seed: int = 0) -> Published:
    """One ``.vla`` per episode of the release + ``manifest.parquet``, published under
    ``robodm-cache/<release>/`` (:class:`~hvla_platform.lib.core.manifest.RoboDMCacheManifest`).

    The images come from the HDF5 episodes the release was written from: the release manifest's
    inputs name each episode's HDF5 (key and sha256; the key's directory is its partition
    ``episodes-hdf5/<day>/<robot>``), ``meta/hvla_episodes.parquet`` which ``episode_index`` it
    became; each partition is opened with ``lake.local_artifact`` (on S3: downloaded to scratch for
    the build). Structural checks on the written files (count, sizes, codec actually written) land
    in the manifest's ``problems``; the round trip of one sampled episode in ``roundtrip``: against
    LeRobot's reading of the release (state/action exact, images within ``image_atol``) and, under
    ``roundtrip["source"]``, against its HDF5 frames (within ``source_atol``, frames in order);
    ``roundtrip["ok"]`` needs both. ``bytes_ratio`` is the cache's size over the release's.
    ``manifest.parquet`` carries each episode's QA status, quality score and outcome from the
    release's ``meta/hvla_episodes.parquet``, and a ``created_at`` the data fixes
    (:func:`~hvla_platform.lib.dataset.robodm_cache.data_created_at`): two builds of the same
    release give byte-identical files.

    Raises:
        ArtifactNotFoundError: the release's LeRobot dataset or one of its HDF5 partitions is not
            materialized.
        RoboDMCacheError / RoboDMCodecError: see :func:`~hvla_platform.lib.dataset.robodm_cache.build_robodm_cache`.
    """
    src_prefix = lerobot_prefix(spec)
    src = require_manifest(lake, src_prefix, LeRobotDatasetManifest)
    config = {"video_codec": video_codec, "image_atol": image_atol, "source_atol": source_atol,
              "converter_version": CONVERTER_VERSION, "roundtrip_seed": roundtrip_seed}
    inputs = [InputRef(key=src_prefix, sha256=src.sha256(), kind="lerobot_dataset",
                       episode_ids=list(src.episode_ids))]
    indices = sorted(src.episode_index.values())
    # each HDF5 input's partition artifact: its key's directory, episodes-hdf5/<day>/<robot>
    partitions = sorted({i.key.rsplit("/", 1)[0] for i in src.inputs if i.kind == "episodes_hdf5"})

    def write(out: Path) -> Content:
        sample = random.Random(roundtrip_seed).choice(indices)
        with contextlib.ExitStack() as stack:
            root = Path(stack.enter_context(lake.local_artifact(src_prefix)))
            dirs = {part: Path(stack.enter_context(lake.local_artifact(part))) for part in partitions}
            hdf5_files = {}
            for row in read_hvla_episodes(root):
                key = str(row["hdf5_key"])
                part = next((p for p in dirs if key.startswith(p + "/")), None)
                if part is not None:  # else build_robodm_cache names the episode without a file
                    hdf5_files[key] = dirs[part] / key[len(part) + 1:]
            with codec_output_to(codec_log_path(f"{spec.name}-robodm")):  # libx264's statistics
                res = build_robodm_cache(root, spec.repo_id, out, release=spec.name, hdf5_files=hdf5_files,
                                         video_codec=video_codec, converter_version=CONVERTER_VERSION,
                                         created_at=_created_at(root, src))
            problems = check_cache(out, video_codec=video_codec, expected_episode_indices=indices)
            vla = out / f"episode_{sample:06d}.vla"
            rt = roundtrip_check(vla, root, spec.repo_id, sample, image_atol=image_atol)
            rt["source"] = source_check(vla, hdf5_files[res.sources[vla.name]["hdf5_key"]], image_atol=source_atol)
            rt["ok"] = bool(rt["ok"] and rt["source"]["ok"])
        return Content(episode_ids=list(src.episode_ids), extra={
            "release": spec.name, "repo_id": spec.repo_id, "num_episodes": res.num_episodes, "num_frames": res.frames,
            "bytes": res.bytes, "release_bytes": res.release_bytes, "bytes_ratio": round(res.bytes_ratio, 4),
            "codecs": res.codecs, "problems": problems, "roundtrip": rt,
            "probe_fix_applied": res.probe_fix_applied, "train_episode_ids": list(src.train_episode_ids),
            "heldout_episode_ids": list(src.heldout_episode_ids)})

    return publish_if_changed(lake, robodm_prefix(spec.name), artifact_type="robodm_cache", inputs=inputs,
                              config=config, rights=src.rights_obj, write=write)
