"""Artifact manifests: what every artifact was built from, with what code and config.

Every artifact the platform publishes carries a JSON manifest (the lake's
:data:`~hvla_platform.lib.core.lake.MANIFEST_NAME`, written last as the commit marker) that names
its exact inputs (URIs + sha256 + episode ids), its files (path + sha256 + bytes), its config, the
code version and its rights. Lineage queries walk these manifests.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from hvla_platform import __version__
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.core.settings import REPO_ROOT
from hvla_platform.lib.core.lake import MANIFEST_NAME, sha256_file

MANIFEST_SCHEMA_VERSION = 1


@lru_cache(maxsize=1)
def code_version() -> str:
    """``hvla-platform <version>`` plus the git commit (and ``+dirty``) when run from a checkout."""
    root = REPO_ROOT
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return f"{__version__}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


@dataclass
class InputRef:
    """One input of an artifact.

    Attributes:
        uri: where the input lives (lake URI).
        sha256: content hash of the input (of its manifest, for a directory artifact).
        kind: what it is (``raw_mcap``, ``episodes_hdf5``, ``lerobot_dataset``...).
        episode_ids: raw episode ids contained in the input.
    """

    uri: str
    sha256: str
    kind: str
    episode_ids: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form as stored in manifests (episode ids sorted)."""
        d = {"uri": self.uri, "sha256": self.sha256, "kind": self.kind, "episode_ids": sorted(self.episode_ids)}
        if self.extra:
            d["extra"] = self.extra
        return d


def file_entries(local_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """``[{path, sha256, bytes}]`` for every file under ``local_dir`` (relative POSIX paths, sorted)."""
    root = Path(local_dir)
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            out.append({"path": p.relative_to(root).as_posix(), "sha256": sha256_file(p), "bytes": p.stat().st_size})
    return out


def build_manifest(
    *,
    artifact_type: str,
    artifact_uri: str,
    inputs: list[InputRef],
    config: dict[str, Any],
    rights: Rights,
    local_dir: str | os.PathLike[str] | None = None,
    episode_ids: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble an artifact manifest (a JSON-serialisable dict).

    ``files`` lists every file of ``local_dir`` with its sha256, so a copy of the lake can be
    verified; ``fingerprint`` is the sha256 of the inputs + config + code version and is what makes
    assets idempotent (same fingerprint → ``status: cached``).
    """
    inputs_d = [i.to_dict() for i in inputs]
    manifest: dict[str, Any] = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "artifact_type": artifact_type,
        "artifact_uri": artifact_uri,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "config": config,
        "inputs": inputs_d,
        "episode_ids": sorted(episode_ids or sorted({e for i in inputs for e in i.episode_ids})),
        "rights": rights.to_dict(),
        "fingerprint": fingerprint(inputs_d, config),
    }
    if local_dir is not None:
        manifest["files"] = file_entries(local_dir)
    if extra:
        manifest.update(extra)
    return manifest


def fingerprint(inputs: list[dict[str, Any]], config: dict[str, Any]) -> str:
    """sha256 over the inputs' hashes, the config and the platform version (not the git commit,
    so that a docs-only commit does not invalidate every artifact)."""
    payload = json.dumps(
        {"inputs": sorted((i["uri"], i["sha256"]) for i in inputs), "config": config, "version": __version__},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """Content hash identifying a directory artifact: sha256 of its canonical manifest JSON."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode()).hexdigest()
