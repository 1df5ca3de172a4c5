"""Incremental conversion: which episodes of a partition's previously published HDF5 artifact can be
carried into its next version unchanged, and carrying them.

A partition artifact ``episodes-hdf5/<day>/<robot>/`` is rebuilt whenever its inputs change (one more
raw episode landed, one withdrawn) or its config does. An episode's conversion is a function of its raw
MCAP (sha256), its robot profile (``name@version``), the conversion config (fps, skew and coverage
bounds, QA thresholds, HDF5 format version) and the platform version; when all of these equal what
the previous version was built from, its ``conversions`` row and files (``<episode>.h5``, QA
thumbnails ``qa/<episode>/…``) are reused instead of converting it again
(:func:`reusable_episodes`, :func:`carry_files`). So landing one episode converts only that episode.

What is **not** reused: the lake-wide QA checks (``duplicate``, ``recording_complete``:
:mod:`hvla_platform.lib.processing.qa.duplicates`), which depend on the rest of the lake. The partition
build re-applies them to every episode, reused or new, in partition order, exactly as a full rebuild
would (they read only the row's metrics and the lake's indexes, never frames), so a reused episode
whose near-duplicate original was converted since is flagged now. The partition's QA report is
rewritten over all episodes.

Reuse requires the previous version's files to be listed in its manifest (``files``) with the size
the episode's row expects; anything missing or different makes the episode convert again. Files are
carried by **hard link** on a local lake (the previous version's inode, no bytes copied; a copy when
the filesystem refuses links) and downloaded on any other lake (S3: the publish then uploads them,
i.e. get + put, :meth:`~hvla_platform.lib.core.lake.Lake.publish_artifact`).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvla_platform import __version__
from hvla_platform.lib.core.lake import Lake, LocalLake
from hvla_platform.lib.core.manifest import EpisodesManifest

#: Config keys that are per partition, not per episode (compared per episode instead).
PER_EPISODE_CONFIG = ("profiles",)


@dataclass(frozen=True)
class Candidate:
    """A raw episode about to be converted: id, lake key and sha256 of its MCAP, and the
    ``name@version`` of the robot profile it will be read with."""

    episode_id: str
    mcap_key: str
    sha256: str
    profile: str


def conversion_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a partition's conversion config that every episode's conversion depends on."""
    return {k: v for k, v in config.items() if k not in PER_EPISODE_CONFIG}


def _platform_version(code_version: str) -> str:
    """``0.1.0`` of ``0.1.0+gabc.dirty`` (:func:`~hvla_platform.lib.core.manifest.code_version`)."""
    return code_version.split("+", 1)[0]


def episode_files(row: dict[str, Any]) -> list[str]:
    """The artifact files (paths relative to the partition prefix) a conversions row owns: its
    HDF5 file (converted episodes) and its QA thumbnails."""
    files = [row["file"]] if row.get("file") else []
    return files + [t["path"] for t in row.get("thumbnails") or []]


def reusable_episodes(previous: EpisodesManifest | None, config: dict[str, Any],
                      candidates: list[Candidate]) -> dict[str, dict[str, Any]]:
    """Episode id → the previous version's ``conversions`` row, for each candidate whose conversion
    the previous version already holds (module docstring); empty without a previous version, or
    when it was built with another conversion config or platform version.

    ``config`` is the new version's config (as written to its manifest).
    """
    if previous is None or _platform_version(previous.code_version) != __version__:
        return {}
    if conversion_config(previous.config) != conversion_config(config):
        return {}
    inputs = {(i.key, i.sha256): i for i in previous.inputs}
    rows = {r.get("episode_id"): r for r in previous.conversions}
    sizes = {f.path: f.bytes for f in previous.files or []}
    out: dict[str, dict[str, Any]] = {}
    for c in candidates:
        ref = inputs.get((c.mcap_key, c.sha256))
        row = rows.get(c.episode_id)
        if ref is None or c.episode_id not in ref.episode_ids or row is None or row.get("profile") != c.profile:
            continue
        if row.get("status") == "converted" and not row.get("file"):
            continue
        if all(f in sizes for f in episode_files(row)):
            out[c.episode_id] = row
    return out


def carry_files(lake: Lake, prefix: str, row: dict[str, Any], out_dir: Path, *,
                sizes: dict[str, int]) -> bool:
    """Put the files of a reused episode (:func:`episode_files`) from the published artifact at
    ``prefix`` into the staging directory ``out_dir``: hard links on a local lake (a copy if the
    filesystem refuses), downloads elsewhere.

    Returns:
        False (and nothing left in ``out_dir`` for this episode) when a file is missing or its size
        differs from ``sizes`` (the previous manifest's ``files``): the episode must be converted.
    """
    placed: list[Path] = []
    for rel in episode_files(row):
        dest = out_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        key = f"{prefix.rstrip('/')}/{rel}"
        try:
            if isinstance(lake, LocalLake):
                src = lake.path(key)
                try:
                    os.link(src, dest)
                except OSError:
                    if not src.is_file():
                        raise
                    shutil.copy2(src, dest)
            elif lake.exists(key):
                lake.get_file(key, dest)
            else:
                break
        except OSError:  # the local file vanished or cannot be linked or read
            dest.unlink(missing_ok=True)
            break
        placed.append(dest)
        if dest.stat().st_size != sizes.get(rel):
            break
    else:
        return True
    for p in placed:
        p.unlink(missing_ok=True)
    return False
