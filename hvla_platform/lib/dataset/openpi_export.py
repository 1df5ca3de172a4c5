"""openpi-ready export of a release: LeRobot **v2.1** datasets (train split; held-out split apart)
and openpi ``norm_stats.json`` files where openpi looks for them, published under
``openpi-exports/<release>/`` (:func:`~hvla_platform.lib.core.keys.openpi_export_prefix`).

openpi loads ``LeRobotDataset(repo_id, delta_timestamps=...)`` with no ``root`` (so from
``$HF_LEROBOT_HOME/<repo_id>``) and no episode filter, with a LeRobot that reads format v2.1, and
reads its norm stats from ``<assets_base_dir>/<config name>/<asset_id = repo_id>/norm_stats.json``
(openpi ``training/config.py``, ``shared/normalize.py``). The export is laid out for exactly that::

    openpi-exports/<release>/
      lerobot/<org>/<release>/               HF_LEROBOT_HOME=<export>/lerobot, repo_id <org>/<release>:
                                             the release's TRAIN episodes only, renumbered 0..N-1
      lerobot/<org>/<release>_heldout/       the held-out episodes as their own dataset (absent
                                             when the release holds none out)
      assets/<config>/<org>/<release>/norm_stats.json        absolute actions
      assets/<config>_delta/<org>/<release>/norm_stats.json  delta actions (DeltaActions(mask))
      openpi_export.json                     the layout: repo ids, episode mapping to the release,
                                             state order, delta mask, horizon
      _hvla_manifest.json

``<org>`` is the release's ``repo_id`` namespace (``hvla`` of ``hvla/g1-reach``) and the dataset is
named after the release **version** id, so two versions never share a repo_id, even copied into one
``HF_LEROBOT_HOME``. openpi reads one norm-stats file per (config, repo_id); the delta variant
therefore sits under a second config name, ``<config>_delta``: a user names the TrainConfig that
uses delta actions so (docs/training.md, "openpi: training on a release").

The v2.1 writer is :mod:`~hvla_platform.lib.dataset.openpi_v21` (videos:
:mod:`~hvla_platform.lib.dataset.openpi_video`); the statistics are
:mod:`~hvla_platform.lib.dataset.openpi_norm_stats`. :func:`check_export` re-reads a written export
and lists what is wrong with it (the ``openpi_export`` asset's checks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from hvla_platform.lib.core import features
from hvla_platform.lib.core.keys import check_id, norm_stats_prefix, openpi_export_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import (
    Content, InputRef, LeRobotDatasetManifest, NormStatsManifest, OpenpiExportManifest, Published,
    publish_if_changed, require_manifest)
from hvla_platform.lib.dataset.codec_log import codec_log_path, codec_output_to
from hvla_platform.lib.dataset.norm_stats_build import NORM_STATS_FILE
from hvla_platform.lib.dataset.openpi_norm_stats import ABSOLUTE, DELTA, delta_layout, openpi_chunk_stats
from hvla_platform.lib.dataset.openpi_v21 import V21, write_v21_dataset
from hvla_platform.lib.dataset.releases import lerobot_prefix
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.formats.norm_stats import check_norm_stats, read_norm_stats_json, write_norm_stats_json

#: openpi config name the norm stats are filed under by default (a user's TrainConfig ``name``).
DEFAULT_CONFIG_NAME = "pi05_hvla"
#: openpi ``Pi0Config.action_horizon`` default (pi0 and pi0.5): actions per chunk.
DEFAULT_ACTION_HORIZON = 50
#: Suffix of the config name under which the delta-action norm stats are filed.
DELTA_SUFFIX = "_delta"
#: Suffix of the held-out dataset's repo_id.
HELDOUT_SUFFIX = "_heldout"
LEROBOT_HOME_DIR = "lerobot"
ASSETS_DIR = "assets"
LAYOUT_FILE = "openpi_export.json"
ARTIFACT_TYPE = "openpi_export"




def openpi_repo_id(repo_id: str, release: str) -> str:
    """``<org>/<release>`` (``hvla/g1-reach`` + ``g1-reach-v1.2`` → ``hvla/g1-reach-v1.2``); just
    ``<release>`` for a repo_id without a namespace. Release version ids are unique in a lake."""
    org = repo_id.split("/", 1)[0] if "/" in repo_id else ""
    return f"{org}/{release}" if org else release


def norm_stats_path(config_name: str, repo_id: str) -> str:
    """``assets/<config_name>/<repo_id>/norm_stats.json``: where openpi reads a config's norm stats
    (``TrainConfig.assets_dirs / asset_id``, asset_id defaulting to the repo_id) relative to the
    export, with ``assets_base_dir = <export>/assets``."""
    return f"{ASSETS_DIR}/{config_name}/{repo_id}/{NORM_STATS_FILE}"


def _names(info: dict[str, Any], key: str) -> list[str]:
    names = info["features"][key].get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"feature {key!r} has no joint names in meta/info.json; delta actions need them")
    return names


def build_openpi_export(lake: Lake, spec: ReleaseSpec, *, config_name: str = DEFAULT_CONFIG_NAME,
                        action_horizon: int = DEFAULT_ACTION_HORIZON) -> Published:
    """Export the committed release ``spec`` (a version: ``spec.name`` is its id) for openpi and
    publish it under ``openpi-exports/<release>/`` (module docstring), idempotently: inputs are the
    release's and its norm stats' manifests, the config is ``config_name`` + ``action_horizon``.

    Args:
        config_name: openpi TrainConfig name the absolute-action norm stats are filed under; the
            delta ones go under ``<config_name>_delta``. A safe id (letters, digits, ``._-``).
        action_horizon: openpi's ``model.action_horizon`` (actions per chunk, ≥ 1): the norm
            stats' actions are over chunks of this length.

    Raises:
        ArtifactNotFoundError: the release or its norm stats are not materialized.
        UnsafeIdError: ``config_name`` is not a safe id.
        ValueError: ``action_horizon`` < 1, or the release's joints cannot be lined up for delta
            actions (:func:`~hvla_platform.lib.dataset.openpi_norm_stats.delta_layout`).
        V21ExportError, VideoCutError, NormStatsError: the release's files do not match its metadata.
    """
    check_id(config_name, "openpi config name")
    if action_horizon < 1:
        raise ValueError(f"action_horizon must be >= 1, got {action_horizon}")
    src_prefix = lerobot_prefix(spec)
    src = require_manifest(lake, src_prefix, LeRobotDatasetManifest)
    ns_key = f"{norm_stats_prefix(spec.name)}/{NORM_STATS_FILE}"
    ns = require_manifest(lake, norm_stats_prefix(spec.name), NormStatsManifest)
    repo = openpi_repo_id(spec.repo_id, spec.name)
    heldout_repo = repo + HELDOUT_SUFFIX if src.heldout_episode_indices else None
    delta_config = config_name + DELTA_SUFFIX
    id_of = {i: e for e, i in src.episode_index.items()}
    config = {"config_name": config_name, "action_horizon": action_horizon, "codebase_version": V21,
              "layout": "lerobot/<org>/<release>[_heldout], assets/<config>[_delta]/<repo_id>/norm_stats.json"}
    inputs = [InputRef(key=src_prefix, sha256=src.sha256(), kind="lerobot_dataset", episode_ids=list(src.episode_index)),
              InputRef(key=ns_key, sha256=ns.sha256(), kind="norm_stats", episode_ids=list(ns.episode_ids))]

    def write(out: Path) -> Content:
        home = out / LEROBOT_HOME_DIR
        # libx264's statistics go to $HVLA_HOME/logs/codec/<release>-openpi.log (as the release build's)
        with lake.local_artifact(src_prefix) as root, codec_output_to(codec_log_path(f"{spec.name}-openpi")):
            root = Path(root)
            info = json.loads((root / "meta" / "info.json").read_text())
            train = write_v21_dataset(root, home / repo, list(src.train_episode_indices), split="train",
                                      vcodec=src.video_codec or "")
            held = (write_v21_dataset(root, home / heldout_repo, list(src.heldout_episode_indices), split="test",
                                      vcodec=src.video_codec or "") if heldout_repo else None)
        state_names, action_names = _names(info, features.STATE), _names(info, features.ACTION)
        layout = delta_layout(state_names, action_names)
        cs = openpi_chunk_stats(train.root, horizon=action_horizon, layout=layout, scratch=lake.scratch_root())
        paths = {ABSOLUTE: norm_stats_path(config_name, repo), DELTA: norm_stats_path(delta_config, repo)}
        for variant, rel in paths.items():
            write_norm_stats_json(cs.stats[variant], out / rel)

        def eps(ds: Any) -> list[dict[str, Any]]:
            return [{**e, "episode_id": id_of[e["release_episode_index"]]} for e in ds.episodes] if ds else []

        doc = {"format": 1, "release": spec.name, "release_repo_id": spec.repo_id, "codebase_version": V21,
               "hf_lerobot_home": LEROBOT_HOME_DIR, "repo_id": repo, "heldout_repo_id": heldout_repo,
               "assets_base_dir": ASSETS_DIR, "config_name": config_name, "delta_config_name": delta_config,
               "norm_stats": paths, "action_horizon": action_horizon, "fps": int(info["fps"]),
               "state_order": layout.state_order, "state_names": layout.state_names, "action_names": action_names,
               "delta_mask": layout.mask, "train_episodes": eps(train), "heldout_episodes": eps(held)}
        (out / LAYOUT_FILE).write_text(json.dumps(doc, indent=2))
        problems = check_export(out, src, lake.read_json(ns_key))
        return Content(episode_ids=list(src.episode_index), extra={
            "release": spec.name, "repo_id": spec.repo_id, "codebase_version": V21, "openpi_repo_id": repo,
            "heldout_repo_id": heldout_repo, "config_name": config_name, "delta_config_name": delta_config,
            "action_horizon": action_horizon, "fps": int(info["fps"]), "train_episodes": doc["train_episodes"],
            "heldout_episodes": doc["heldout_episodes"], "tasks": train.tasks, "num_frames": train.num_frames,
            "num_heldout_frames": held.num_frames if held else 0, "num_action_vectors": cs.num_action_vectors,
            "state_order": layout.state_order, "state_names": layout.state_names, "action_names": action_names,
            "delta_mask": layout.mask, "norm_stats": paths, "problems": problems})

    return publish_if_changed(lake, openpi_export_prefix(spec.name), artifact_type=ARTIFACT_TYPE, inputs=inputs,
                              config=config, rights=src.rights_obj, write=write)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _dataset_problems(ds: Path, want_ids: list[str], id_of: dict[int, str], listed: list[dict[str, Any]],
                      what: str) -> list[str]:
    """Problems of one exported v2.1 dataset against the episode ids it must hold, in order."""
    info_path = ds / "meta" / "info.json"
    if not info_path.exists():
        return [f"{what}: {info_path.name} missing at {ds}"]
    info = json.loads(info_path.read_text())
    out = []
    if info.get("codebase_version") != V21:
        out.append(f"{what}: codebase_version is {info.get('codebase_version')!r}, not {V21!r}")
    eps = _jsonl(ds / "meta" / "episodes.jsonl")
    if [e["episode_index"] for e in eps] != list(range(len(eps))):
        out.append(f"{what}: episodes.jsonl indices are not 0..{len(eps) - 1}")
    got_ids = [id_of.get(e["release_episode_index"], "?") for e in listed]
    if got_ids != want_ids or len(eps) != len(want_ids):
        out.append(f"{what}: holds episodes {got_ids} ({len(eps)} in episodes.jsonl), the release's are {want_ids}")
    if [e["length"] for e in eps] != [e["length"] for e in listed]:
        out.append(f"{what}: episode lengths in episodes.jsonl differ from {LAYOUT_FILE}")
    for key in ("total_episodes", "total_frames"):
        want = len(eps) if key == "total_episodes" else sum(e["length"] for e in eps)
        if info.get(key) != want:
            out.append(f"{what}: info.json {key} is {info.get(key)}, episodes.jsonl says {want}")
    tasks = _jsonl(ds / "meta" / "tasks.jsonl")
    if info.get("total_tasks") != len(tasks) or {t for e in eps for t in e["tasks"]} != {t["task"] for t in tasks}:
        out.append(f"{what}: tasks.jsonl does not list exactly the episodes' tasks")
    n_stats = len(_jsonl(ds / "meta" / "episodes_stats.jsonl"))
    if n_stats != len(eps):
        out.append(f"{what}: episodes_stats.jsonl has {n_stats} lines for {len(eps)} episodes")
    videos = [k for k, ft in info.get("features", {}).items() if ft.get("dtype") == "video"]
    for e in eps:
        chunk = e["episode_index"] // info["chunks_size"]
        rel = [info["data_path"].format(episode_chunk=chunk, episode_index=e["episode_index"])]
        rel += [info["video_path"].format(episode_chunk=chunk, video_key=k, episode_index=e["episode_index"])
                for k in videos]
        out += [f"{what}: {r} missing" for r in rel if not (ds / r).is_file()]
    return out


def check_export(export_root: str | Path, release: LeRobotDatasetManifest, release_norm_stats: dict[str, Any]) -> list[str]:
    """What is wrong with a written export, read back from its files; empty = consistent.

    Checked: both datasets are ``codebase_version`` v2.1; the train dataset holds exactly the
    release's train episodes and the held-out one exactly its held-out episodes, in release order
    (``openpi_export.json`` mapping), with ``episodes.jsonl``, ``tasks.jsonl``,
    ``episodes_stats.jsonl``, ``info.json`` totals and every data and video file agreeing; both
    ``norm_stats.json`` files exist at their openpi paths with finite statistics
    (:func:`~hvla_platform.lib.formats.norm_stats.check_norm_stats`, ``min_std`` 0); their
    ``state`` statistics, put back in release order, equal the release's norm stats (the same train
    frames: q01/q99 exactly, mean/std within 1e-9 relative).

    Args:
        export_root: the export directory (``openpi-exports/<release>/`` as a local path).
        release: the exported release's manifest.
        release_norm_stats: the release's ``norm_stats.json`` document.
    """
    root = Path(export_root)
    if not (root / LAYOUT_FILE).exists():
        return [f"{LAYOUT_FILE} missing at {root}"]
    doc = json.loads((root / LAYOUT_FILE).read_text())
    id_of = {i: e for e, i in release.episode_index.items()}
    home = root / doc["hf_lerobot_home"]
    problems = _dataset_problems(home / doc["repo_id"], list(release.train_episode_ids), id_of,
                                 doc["train_episodes"], "train dataset")
    if release.heldout_episode_ids:
        if not doc.get("heldout_repo_id"):
            problems.append(f"the release holds out {release.heldout_episode_ids} but the export has no held-out dataset")
        else:
            problems += _dataset_problems(home / doc["heldout_repo_id"], list(release.heldout_episode_ids), id_of,
                                          doc["heldout_episodes"], "held-out dataset")
    ref = release_norm_stats.get("norm_stats", release_norm_stats).get("state", {})
    inverse = np.argsort(np.asarray(doc["state_order"]))
    for variant in (ABSOLUTE, DELTA):
        path = root / doc["norm_stats"][variant]
        if not path.is_file():
            problems.append(f"{variant} norm stats missing at {doc['norm_stats'][variant]}")
            continue
        stats = read_norm_stats_json(path)
        problems += [f"{variant} norm stats: {p}" for p in check_norm_stats(stats, min_std=0.0)]
        state = stats.get("state")
        if state is None or not ref:
            continue
        for f in ("q01", "q99"):
            if f in state and f in ref and not np.array_equal(state[f][inverse], np.asarray(ref[f])):
                problems.append(f"{variant} norm stats: state {f} differs from the release's norm stats")
        for f in ("mean", "std"):
            if f in ref and (state[f].shape != np.asarray(ref[f]).shape
                             or not np.allclose(state[f][inverse], ref[f], rtol=1e-9, atol=1e-12)):
                problems.append(f"{variant} norm stats: state {f} differs from the release's norm stats")
    return problems


def load_export_manifest(lake: Lake, release: str) -> OpenpiExportManifest:
    """The committed export manifest of ``release``.

    Raises:
        ArtifactNotFoundError: not materialized.
    """
    return require_manifest(lake, openpi_export_prefix(release), OpenpiExportManifest)


__all__ = ["ASSETS_DIR", "DEFAULT_ACTION_HORIZON", "DEFAULT_CONFIG_NAME", "DELTA_SUFFIX", "HELDOUT_SUFFIX",
           "LAYOUT_FILE", "LEROBOT_HOME_DIR", "OpenpiExportManifest", "build_openpi_export", "check_export",
           "load_export_manifest", "norm_stats_path", "openpi_repo_id"]
