"""The drop area: where robots and uploaders put finished recordings for the landing sensor.

It is a local folder or an S3 prefix (``s3://<bucket>/<prefix>``), named by one URI
(``HVLA_DROP_URI``). Every folder below it that holds a bag (``.mcap``, ``.bag`` or ``.db3`` files,
or a rosbag2 bag directory) or a ``metadata.yaml`` is a candidate recording (:class:`DropFolder`),
laid out as ``hvla sim record`` or ``ros2 bag record`` plus the uploader write it
(docs/recordings.md): ``<episode>_0.mcap`` (or the parts of a split bag, a rosbag2 directory, a ROS 1
``.bag``), ``metadata.yaml``, optionally ``operator_notes.md``. A rosbag2 bag directory (its own
``metadata.yaml`` with the top key ``rosbag2_bagfile_information``) is part of its recording
folder: its files are listed in the folder as ``<bag dir>/<file>``, and it is never a candidate
itself.

Completeness rule (docs/automation.md): uploaders write ``metadata.yaml`` **last**. A folder is
*complete* when its ``metadata.yaml`` is there, and *settled* when none of its files changed for
``settle_seconds`` (a local copy still being written changes size and mtime). S3 objects become
visible only once their upload finished (a multipart upload in progress is invisible), so on S3 a
visible ``metadata.yaml`` already means the metadata upload is done. Names starting with ``.``
(rsync's and most uploaders' temporary files) are not part of a folder.

This module only reads: nothing in the drop area is ever modified or deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from hvla_platform.lib.ingest.landing import METADATA


@dataclass(frozen=True)
class DropFile:
    """One file of a drop folder: ``name`` its path relative to the folder (``<bag dir>/<file>``
    for a file of a rosbag2 bag directory), ``stamp`` what changes when the content may have
    changed (local: size and mtime in ns; S3: the ETag), ``modified`` its last change (Unix seconds)."""

    name: str
    size: int
    stamp: str
    modified: float


@dataclass(frozen=True)
class DropFolder:
    """A folder of the drop area holding a bag or a ``metadata.yaml``.

    ``key`` is its path relative to the drop area's root (``/``-separated, ``""`` for the root).
    """

    key: str
    files: tuple[DropFile, ...]

    @property
    def complete(self) -> bool:
        """True when ``metadata.yaml`` is present (uploaders write it last)."""
        return any(f.name == METADATA for f in self.files)

    @property
    def names(self) -> list[str]:
        """File names (paths relative to the folder), sorted."""
        return sorted(f.name for f in self.files)

    @property
    def fingerprint(self) -> str:
        """A cheap digest of names, sizes and stamps: equal fingerprints mean an unchanged upload."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.name):
            h.update(f"{f.name}\0{f.size}\0{f.stamp}\n".encode())
        return h.hexdigest()[:32]

    def settled(self, now: float, settle_seconds: float) -> bool:
        """True when no file changed during the last ``settle_seconds`` (``now`` in Unix seconds)."""
        return all(now - f.modified >= settle_seconds for f in self.files)


#: File suffixes of bags (a folder holding one is a candidate recording).
BAG_SUFFIXES = (".mcap", ".bag", ".db3")

#: The top key of a rosbag2 ``metadata.yaml``.
ROSBAG2_KEY = "rosbag2_bagfile_information"


def _is_candidate(names: list[str]) -> bool:
    return METADATA in names or any(n.endswith(BAG_SUFFIXES) for n in names)


def _may_be_rosbag2(names: list[str]) -> bool:
    """A folder that could be a rosbag2 bag directory: ``metadata.yaml`` beside ``.mcap``/``.db3`` files."""
    return METADATA in names and any(n.endswith((".mcap", ".db3")) for n in names)


class DropArea(ABC):
    """Read-only view of a drop area (see the module docstring)."""

    @abstractmethod
    def uri(self, key: str = "") -> str:
        """URI of a folder (``key`` relative to the root) or of the root."""

    @abstractmethod
    def scan(self) -> list[DropFolder]:
        """Every candidate folder, sorted by key.

        Raises:
            FileNotFoundError: the drop area does not exist (missing folder or bucket).
        """

    @abstractmethod
    def local_copy(self, folder: DropFolder) -> contextlib.AbstractContextManager[Path]:
        """A context manager giving a local folder with the folder's files (read-only use)."""


class LocalDropArea(DropArea):
    """A drop area in a local folder (symbolic links to folders are not followed)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()

    def uri(self, key: str = "") -> str:
        return (self.root / key if key else self.root).as_uri()

    def _is_rosbag2(self, folder: str, names: list[str]) -> bool:
        if not _may_be_rosbag2(names):
            return False
        try:
            with open(os.path.join(folder, METADATA), "rb") as f:
                return ROSBAG2_KEY.encode() in f.read(1 << 16)
        except OSError:  # removed by its owner while we looked
            return False

    def _files(self, dirpath: str, names: list[str], prefix: str = "") -> list[DropFile]:
        files = []
        for n in names:
            try:
                st = os.lstat(os.path.join(dirpath, n))
            except FileNotFoundError:  # removed by its owner while we looked
                continue
            files.append(DropFile(prefix + n, st.st_size, f"{st.st_size}:{st.st_mtime_ns}", st.st_mtime))
        return files

    def scan(self) -> list[DropFolder]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"drop area {self.root} does not exist (set HVLA_DROP_URI or create the folder)")
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            names = [n for n in filenames if not n.startswith(".")]
            if dirpath != str(self.root) and self._is_rosbag2(dirpath, names):
                dirnames[:] = []  # part of its parent's recording (listed there)
                continue
            files = self._files(dirpath, names)
            for d in list(dirnames):  # rosbag2 bag directories belong to this folder
                sub = os.path.join(dirpath, d)
                try:
                    sub_names = [n for n in os.listdir(sub) if not n.startswith(".") and os.path.isfile(os.path.join(sub, n))]
                except OSError:
                    continue
                if self._is_rosbag2(sub, sub_names):
                    files += self._files(sub, sub_names, prefix=f"{d}/")
            if not _is_candidate([f.name for f in files]):
                continue
            rel = Path(dirpath).relative_to(self.root).as_posix()
            out.append(DropFolder("" if rel == "." else rel, tuple(sorted(files, key=lambda f: f.name))))
        return sorted(out, key=lambda f: f.key)

    @contextlib.contextmanager
    def local_copy(self, folder: DropFolder) -> Iterator[Path]:
        yield self.root / folder.key if folder.key else self.root


class S3DropArea(DropArea):
    """A drop area under ``s3://<bucket>/<prefix>``, read with a boto3 client."""

    def __init__(self, bucket: str, prefix: str, client: Any):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self._rosbag2_seen: dict[tuple[str, str], bool] = {}

    def _full(self, key: str) -> str:
        return "/".join(p for p in (self.prefix, key) if p)

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def _is_rosbag2(self, folder: str, files: list[DropFile]) -> bool:
        """Whether ``folder`` is a rosbag2 bag directory: the first 64 KiB of its ``metadata.yaml``
        name ``rosbag2_bagfile_information`` (asked once per ETag)."""
        if not _may_be_rosbag2([f.name for f in files]):
            return False
        meta = next(f for f in files if f.name == METADATA)
        cache_key = (folder, meta.stamp)
        if cache_key not in self._rosbag2_seen:
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=self._full(f"{folder}/{METADATA}" if folder else METADATA),
                                              Range="bytes=0-65535")["Body"].read()
            except self.client.exceptions.NoSuchKey:  # removed by its owner while we looked
                return False
            self._rosbag2_seen[cache_key] = ROSBAG2_KEY.encode() in body
        return self._rosbag2_seen[cache_key]

    def scan(self) -> list[DropFolder]:
        base = f"{self.prefix}/" if self.prefix else ""
        by_folder: dict[str, list[DropFile]] = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                for obj in page.get("Contents", []):
                    folder, _, name = obj["Key"][len(base):].rpartition("/")
                    if not name or name in (".", "..") or name.startswith("."):
                        continue  # folder markers and temporary names
                    by_folder.setdefault(folder, []).append(DropFile(
                        name, int(obj["Size"]), str(obj.get("ETag", "")).strip('"'), obj["LastModified"].timestamp()))
        except self.client.exceptions.NoSuchBucket as exc:
            raise FileNotFoundError(f"drop area {self.uri()}: bucket {self.bucket!r} does not exist") from exc
        bag_dirs = {k for k, v in by_folder.items() if k and self._is_rosbag2(k, v)}
        for k in sorted(bag_dirs):  # a rosbag2 bag directory's files belong to its parent folder
            parent, _, d = k.rpartition("/")
            by_folder.setdefault(parent, []).extend(DropFile(f"{d}/{f.name}", f.size, f.stamp, f.modified)
                                                    for f in by_folder[k])
        return [DropFolder(k, tuple(sorted(v, key=lambda f: f.name)))
                for k, v in sorted(by_folder.items()) if k not in bag_dirs and _is_candidate([f.name for f in v])]

    @contextlib.contextmanager
    def local_copy(self, folder: DropFolder) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="hvla-drop-") as tmp:
            local = Path(tmp) / (folder.key.rsplit("/", 1)[-1] or "recording")
            local.mkdir()
            for f in folder.files:
                dest = local / f.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, self._full(f"{folder.key}/{f.name}" if folder.key else f.name),
                                          str(dest))
            yield local


def parse_drop_uri(uri: str) -> tuple[str, str, str]:
    """``("local", path, "")`` or ``("s3", bucket, prefix)`` for a drop-area URI.

    Accepts a path, ``file://<path>`` or ``s3://<bucket>[/<prefix>]``.

    Raises:
        ValueError: the URI is empty, uses another scheme, or names no bucket.
    """
    if not uri or not uri.strip():
        raise ValueError("the drop area URI is empty (HVLA_DROP_URI: a folder or s3://<bucket>/<prefix>)")
    uri = uri.strip()
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not bucket:
            raise ValueError(f"drop area URI {uri!r} names no bucket (expected s3://<bucket>/<prefix>)")
        return "s3", bucket, prefix.strip("/")
    if uri.startswith("file://"):
        return "local", uri[len("file://"):], ""
    if "://" in uri:
        raise ValueError(f"drop area URI {uri!r}: only a local folder, file:// or s3:// is supported")
    return "local", uri, ""
