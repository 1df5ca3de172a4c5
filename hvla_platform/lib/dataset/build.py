"""Build a dataset release (LeRobot v3.0) from the lake and publish it, idempotently."""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hvla_platform.lib.core.keys import EPISODES
from hvla_platform.lib.dataset.lerobot_release import build_lerobot_dataset, feature_schema, load_and_probe, read_info
from hvla_platform.lib.core.manifest import InputRef, build_manifest, fingerprint
from hvla_platform.lib.dataset.timestamps import check_lerobot_timestamps
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.dataset.releases import Selection, lerobot_prefix, select_episodes
from hvla_platform.lib.core.rights import Rights, combine_rights
from hvla_platform.lib.core.lake import Lake


@dataclass
class ReleaseBuild:
    """Outcome of :func:`build_release`: ``status`` is ``materialized`` or ``cached``."""

    status: str
    uri: str
    manifest: dict[str, Any]
    selection: Selection | None
    rights: Rights
    probe: dict[str, Any]


def _inputs(lake: Lake, sel: Selection) -> list[InputRef]:
    return [InputRef(uri=lake.uri(e.hdf5_key), sha256=e.hdf5_sha256, kind="episodes_hdf5", episode_ids=[e.episode_id],
                     extra={"raw_mcap_uri": e.raw_mcap_uri, "raw_sha256": e.raw_sha256, "capture_day": e.capture_day,
                            "robot_id": e.robot_id, "operator": e.operator, "site": e.site})
            for e in sel.episodes]


def build_release(lake: Lake, spec: ReleaseSpec, *, progress: Callable[[str], None] | None = None) -> ReleaseBuild:
    """Select the spec's episodes, write the LeRobot dataset with LeRobot's writer, reload it with
    LeRobot (decoding a video frame) and publish it under ``lerobot/<repo_id>/<release>/``.

    Raises:
        FileNotFoundError, ValueError: see :func:`~hvla_platform.lib.dataset.releases.select_episodes`.
        LeRobotReleaseError: see :func:`~hvla_platform.lib.dataset.lerobot_release.build_lerobot_dataset`.
    """
    sel = select_episodes(lake, spec)
    inputs = _inputs(lake, sel)
    config = {"spec": spec.to_dict(), "spec_sha256": spec.digest(),
              "excluded": sel.excluded, "approved": sel.approved}  # decisions change the fingerprint
    fp = fingerprint([i.to_dict() for i in inputs], config)
    prefix = lerobot_prefix(spec)
    existing = lake.read_manifest(prefix)
    if existing is not None and existing.get("fingerprint") == fp:
        return ReleaseBuild("cached", lake.uri(prefix), existing, sel, Rights.from_dict(existing["rights"]),
                            existing.get("probe", {}))
    rights = combine_rights(e.rights for e in sel.episodes)
    by_key = {e.hdf5_key: e for e in sel.episodes}
    with tempfile.TemporaryDirectory(prefix="hvla-release-") as tmp, contextlib.ExitStack() as stack:
        local_paths: list[Path] = []
        source_uris: dict[str, str] = {}
        dirs: dict[str, Path] = {}
        for e in sel.episodes:
            part = f"{EPISODES}/{e.capture_day}/{e.robot_id}"
            if part not in dirs:
                dirs[part] = stack.enter_context(lake.local_artifact(part))
            p = dirs[part] / e.hdf5_key[len(part) + 1:]
            local_paths.append(p)
            source_uris[str(p)] = lake.uri(e.hdf5_key)
        root = Path(tmp) / "dataset"
        result = build_lerobot_dataset(spec, local_paths, root, rights=rights.to_dict(), progress=progress,
                                       source_uris=source_uris)
        probe = load_and_probe(root, spec.repo_id)
        ts = check_lerobot_timestamps(root)
        timestamp_problems = {str(ep_idx): r["detail"] for ep_idx, r in ts.items() if not r["passed"]}
        info = read_info(root)
        manifest = build_manifest(
            artifact_type="lerobot_dataset", artifact_uri=lake.uri(prefix), inputs=inputs, config=config,
            rights=rights, local_dir=root, episode_ids=result.episode_ids,
            extra={
                "release": spec.name, "repo_id": spec.repo_id, "codebase_version": info.get("codebase_version"),
                "num_episodes": result.num_episodes, "num_frames": result.num_frames, "fps": result.fps,
                "episode_index": {ep: i for i, ep in enumerate(result.episode_ids)},
                "train_episode_ids": result.train_episode_ids, "heldout_episode_ids": result.heldout_episode_ids,
                "train_episode_indices": result.train_episode_indices,
                "heldout_episode_indices": result.heldout_episode_indices,
                "excluded": sel.excluded, "approved": sel.approved,
                "quality_scores": {e.episode_id: e.quality_score for e in sel.episodes}, "partitions": [f"{d}|{r}" for d, r in sel.partitions],
                "feature_schema": feature_schema(info), "tasks": sorted({by_key[k].task for k in by_key}),
                "probe": probe, "video_codec": result.video_codec, "timestamp_problems": timestamp_problems,
                "partition_inputs": sel.inputs,
            },
        )
        lake.publish_artifact(prefix, root, manifest)
    return ReleaseBuild("materialized", lake.uri(prefix), manifest, sel, rights, probe)
