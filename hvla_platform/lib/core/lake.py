"""Lake storage: a local directory (the embedded default) or S3 (RustFS/MinIO/AWS) behind one API.

Keys are ``/``-separated relative paths (DESIGN.md "Storage" gives the layout). Two kinds of
writes exist:

* **objects** (:meth:`Lake.write_bytes`, :meth:`Lake.put_file`): one key at a time, atomic
  (local: write to a temporary file then rename; S3: a single PUT). ``write_once=True`` refuses
  to replace an existing object, which is how the raw layer stays write-once.
* **artifacts** (:meth:`Lake.publish_artifact`): a directory of files published under a prefix
  with a manifest (:data:`MANIFEST_NAME`) written **last**; the manifest is the commit marker.
  Readers (:meth:`Lake.read_manifest`, :meth:`Lake.local_artifact`) treat a prefix without a
  manifest as absent, so a crash mid-publish never exposes half an artifact. On the local
  backend the whole directory additionally appears in one ``rename``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Iterator

from hvla_platform.lib.core import scratch
from hvla_platform.lib.core.locking import file_lock

#: File name of the lineage manifest every artifact carries; written last.
MANIFEST_NAME = "_hvla_manifest.json"

_CHUNK = 1 << 20


class ObjectExistsError(FileExistsError):
    """A write-once object already exists at the key."""


class ArtifactNotFoundError(FileNotFoundError):
    """No committed artifact (no manifest) exists under the prefix."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative lake key, else raise ``ValueError``.

    Rejects empty keys, absolute paths, ``..`` and ``.`` segments, backslashes and NUL bytes, so
    that an episode id or robot id from an untrusted ``metadata.yaml`` cannot escape its folder.
    """
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid lake key {key!r}")
    parts = key.split("/")
    if any(p in ("..", ".", "") for p in parts[:-1]) or parts[-1] in ("..", "."):
        raise ValueError(f"invalid lake key {key!r}: '.' and '..' segments are not allowed")
    return key


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a local file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


class Lake(ABC):
    """Common interface of the lake backends. See the module docstring for the write model."""

    # ---- objects ---------------------------------------------------------------------------
    @abstractmethod
    def uri(self, key: str) -> str:
        """A URI naming ``key`` (``file:///...`` or ``s3://bucket/...``)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True if an object exists at ``key``."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's bytes. Raises ``FileNotFoundError`` if absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, *, write_once: bool = False) -> None:
        """Atomically create or replace an object. Raises :class:`ObjectExistsError` if
        ``write_once`` and the key exists."""

    @abstractmethod
    def put_file(self, src: str | os.PathLike[str], key: str, *, write_once: bool = False) -> None:
        """Upload a local file as one object (atomic, as :meth:`write_bytes`)."""

    @abstractmethod
    def get_file(self, key: str, dest: str | os.PathLike[str]) -> Path:
        """Download an object to a local path and return it."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """All object keys under ``prefix`` (recursive), sorted."""

    def list_objects(self, prefix: str) -> list[tuple[str, int, str]]:
        """``(key, size in bytes, version tag)`` of every object under ``prefix`` (recursive, sorted by
        key), from one listing: the tag changes whenever the object is replaced (S3: its ETag; local:
        its ``mtime_ns``), so a cache of what was read from an object can be validated without
        reading it (the lineage index does)."""
        raise NotImplementedError(f"{type(self).__name__} does not list object versions")

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete one object (no error if absent)."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Object size in bytes."""

    def put_file_retained(self, src: str | os.PathLike[str], key: str, *, retain_until: dt.date | None) -> None:
        """Write-once upload of evidence that must be kept until ``retain_until`` (raw episodes, seed
        001's WORM raw storage). Where the store enforces retention (:attr:`enforces_retention`: an
        S3 bucket with Object Lock) it is written with a COMPLIANCE retention period, so the store
        itself refuses to delete or overwrite it before that date; elsewhere it is a write-once put.

        Raises:
            ObjectExistsError: the key exists.
        """
        self.put_file(src, key, write_once=True)

    @property
    def enforces_retention(self) -> bool:
        """Whether the store itself enforces retention periods (S3 Object Lock); False here."""
        return False

    def retention_until(self, key: str) -> dt.date | None:
        """The date until which the store refuses to delete or overwrite ``key``, or None (no lock)."""
        return None

    def sha256(self, key: str) -> str:
        """Hex sha256 of an object's content."""
        with scratch.scratch_dir("sha256", self.scratch_root()) as tmp:
            return sha256_file(self.get_file(key, tmp / "obj"))

    def scratch_root(self) -> Path:
        """Where temporary build directories for this lake live (swept when their owner is gone;
        :mod:`hvla_platform.lib.core.scratch`): ``$HVLA_HOME/tmp`` unless the lake is local."""
        return scratch.scratch_root()

    def build_lock(self, prefix: str, *, timeout: float = 24 * 3600.0) -> contextlib.AbstractContextManager[None]:
        """An exclusive lock for building the artifact at ``prefix``: concurrent builders of one
        artifact wait for each other (a file lock under :meth:`scratch_root`; on an S3 lake this
        serialises the builders of one machine only)."""
        digest = hashlib.sha256(f"{self.root_uri()}|{validate_key(prefix.rstrip('/'))}".encode()).hexdigest()[:32]
        return file_lock(self.scratch_root() / "locks" / f"build-{digest}.lock", timeout=timeout,
                         what=f"building {self.uri(prefix)}")

    @abstractmethod
    def root_uri(self) -> str:
        """URI of the lake's root."""

    def read_json(self, key: str) -> Any:
        """Parse the object at ``key`` as JSON."""
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, obj: Any, *, write_once: bool = False) -> None:
        """Write ``obj`` as indented, key-sorted JSON."""
        self.write_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode(), write_once=write_once)

    # ---- artifacts -------------------------------------------------------------------------
    @abstractmethod
    def publish_artifact(self, prefix: str, local_dir: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
        """Publish every file under ``local_dir`` below ``prefix``, replacing a previous version,
        and write ``manifest`` as :data:`MANIFEST_NAME` last."""

    @abstractmethod
    def local_artifact(self, prefix: str) -> contextlib.AbstractContextManager[Path]:
        """A context manager giving a local directory holding the committed artifact under ``prefix`` (read-only use).

        Raises:
            ArtifactNotFoundError: no manifest under ``prefix``.
        """

    def manifest_key(self, prefix: str) -> str:
        """Key of the manifest of the artifact at ``prefix``."""
        return f"{validate_key(prefix.rstrip('/'))}/{MANIFEST_NAME}"

    def read_manifest(self, prefix: str) -> dict[str, Any] | None:
        """The committed manifest of the artifact at ``prefix``, or ``None`` if there is none."""
        key = self.manifest_key(prefix)
        if not self.exists(key):
            return None
        return self.read_json(key)

    def require_manifest(self, prefix: str) -> dict[str, Any]:
        """Like :meth:`read_manifest` but raises :class:`ArtifactNotFoundError` if absent."""
        m = self.read_manifest(prefix)
        if m is None:
            raise ArtifactNotFoundError(f"no committed artifact at {self.uri(prefix)} (no {MANIFEST_NAME})")
        return m

    def list_artifacts(self, prefix: str) -> list[str]:
        """Prefixes of the committed artifacts (those with a manifest) below ``prefix``."""
        suffix = "/" + MANIFEST_NAME
        return sorted(k[: -len(suffix)] for k in self.list_keys(prefix) if k.endswith(suffix))


def _link_or_copy(src: str, dst: str) -> str:
    """``shutil.copytree``'s copy function: a hard link, or a copy across filesystems."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return dst


class LocalLake(Lake):
    """The lake as a local directory. Staging, trash and builders' temporary directories live in
    ``<root>/.hvla-tmp`` (one filesystem with the artifacts, swept when their owner is gone);
    per-artifact publish locks in ``<root>/.hvla-tmp/locks``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".hvla-tmp"

    def path(self, key: str) -> Path:
        """Local filesystem path of ``key`` (validated to stay inside the root)."""
        return self.root / validate_key(key)

    def uri(self, key: str) -> str:
        return self.path(key).as_uri()

    def root_uri(self) -> str:
        return self.root.as_uri()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def sha256(self, key: str) -> str:
        return sha256_file(self.path(key))

    def scratch_root(self) -> Path:
        return self._tmp

    def _tmp_file(self) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        return self._tmp / scratch.scratch_name("obj")

    def _commit_tmp(self, tmp: Path, key: str, write_once: bool) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if write_once:
            try:
                os.link(tmp, dest)  # atomic create-exclusive
            except FileExistsError as exc:
                raise ObjectExistsError(f"{self.uri(key)} already exists and is write-once") from exc
            finally:
                tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, dest)

    def write_bytes(self, key: str, data: bytes, *, write_once: bool = False) -> None:
        tmp = self._tmp_file()
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        self._commit_tmp(tmp, key, write_once)

    def put_file(self, src: str | os.PathLike[str], key: str, *, write_once: bool = False) -> None:
        tmp = self._tmp_file()
        shutil.copyfile(src, tmp)
        self._commit_tmp(tmp, key, write_once)

    def get_file(self, key: str, dest: str | os.PathLike[str]) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path(key), dest)
        return dest

    def list_keys(self, prefix: str) -> list[str]:
        base = self.path(prefix) if prefix else self.root
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        out = []
        for p in base.rglob("*"):
            if p.is_file() and self._tmp not in p.parents:
                out.append(p.relative_to(self.root).as_posix())
        return sorted(out)

    def list_objects(self, prefix: str) -> list[tuple[str, int, str]]:
        out = []
        for key in self.list_keys(prefix):
            st = self.path(key).stat()
            out.append((key, st.st_size, str(st.st_mtime_ns)))
        return out

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def publish_artifact(self, prefix: str, local_dir: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
        """See :meth:`Lake.publish_artifact`. Concurrent publishes of one prefix (other threads or
        processes) are serialised by a lock per prefix around the swap: the last one wins, none
        fails, and no staging or trash directory is left behind (a killed publisher's are swept).
        Files are hard-linked from ``local_dir`` when it is on the lake's filesystem (builders
        stage under :meth:`scratch_root`), so publishing costs no copy; artifacts are never modified
        in place after publishing, which is what makes sharing inodes safe."""
        local_dir = Path(local_dir)
        prefix = validate_key(prefix.rstrip("/"))
        final = self.path(prefix)
        self._tmp.mkdir(parents=True, exist_ok=True)
        scratch.sweep(self._tmp, keep=frozenset({"locks"}))
        staging = self._tmp / scratch.scratch_name("stage")
        trash = self._tmp / scratch.scratch_name("trash")
        try:
            shutil.copytree(local_dir, staging, copy_function=_link_or_copy)
            (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
            final.parent.mkdir(parents=True, exist_ok=True)
            lock = self._tmp / "locks" / (hashlib.sha256(prefix.encode()).hexdigest()[:32] + ".lock")
            with file_lock(lock, what=f"publishing {self.uri(prefix)}"):
                if final.exists():
                    os.rename(final, trash)
                os.rename(staging, final)
        finally:
            for leftover in (staging, trash):
                if leftover.exists():
                    shutil.rmtree(leftover, ignore_errors=True)

    @contextlib.contextmanager
    def local_artifact(self, prefix: str) -> Iterator[Path]:
        self.require_manifest(prefix)
        yield self.path(prefix.rstrip("/"))


class S3Lake(Lake):
    """The lake in an S3 bucket (boto3; ``endpoint_url`` + path-style for RustFS/MinIO).

    Args:
        bucket: bucket name (created on first use if ``create_bucket``).
        prefix: optional key prefix inside the bucket.
        client: a boto3 S3 client (built by the Dagster resource from its config).
    """

    def __init__(self, bucket: str, client: Any, prefix: str = "", create_bucket: bool = True):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        if create_bucket:
            try:
                client.head_bucket(Bucket=bucket)
            except client.exceptions.ClientError:
                client.create_bucket(Bucket=bucket)
        self._object_lock: bool | None = None

    def _k(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._k(key)}"

    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise FileNotFoundError(self.uri(key)) from exc

    def size(self, key: str) -> int:
        return int(self.client.head_object(Bucket=self.bucket, Key=self._k(key))["ContentLength"])

    def write_bytes(self, key: str, data: bytes, *, write_once: bool = False) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._k(key), "Body": data}
        if write_once:
            kwargs["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**kwargs)
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise ObjectExistsError(f"{self.uri(key)} already exists and is write-once") from exc
            raise

    def put_file(self, src: str | os.PathLike[str], key: str, *, write_once: bool = False) -> None:
        if write_once:
            # Conditional PUT needs a single request; raw episode files are tens of MB at most.
            self.write_bytes(key, Path(src).read_bytes(), write_once=True)
        else:
            self.client.upload_file(str(src), self.bucket, self._k(key))

    def get_file(self, key: str, dest: str | os.PathLike[str]) -> Path:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self._k(key), str(dest))
        return dest

    def list_keys(self, prefix: str) -> list[str]:
        full = self._k(prefix) if prefix else self.prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        out: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                k = obj["Key"][strip:]
                if k == prefix or not prefix or k.startswith(prefix.rstrip("/") + "/"):
                    out.append(k)
        return sorted(out)

    def list_objects(self, prefix: str) -> list[tuple[str, int, str]]:
        full = self._k(prefix) if prefix else self.prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        out: list[tuple[str, int, str]] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                k = obj["Key"][strip:]
                if k == prefix or not prefix or k.startswith(prefix.rstrip("/") + "/"):
                    out.append((k, int(obj["Size"]), str(obj.get("ETag", "")).strip('"')))
        return sorted(out)

    @property
    def enforces_retention(self) -> bool:
        """Whether the bucket has S3 Object Lock enabled (asked once, then remembered)."""
        if self._object_lock is None:
            try:
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
                self._object_lock = conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except self.client.exceptions.ClientError:
                self._object_lock = False
        return self._object_lock

    def put_file_retained(self, src: str | os.PathLike[str], key: str, *, retain_until: dt.date | None) -> None:
        if not (self.enforces_retention and retain_until and retain_until > dt.date.today()):
            self.put_file(src, key, write_once=True)
            return
        until = dt.datetime.combine(retain_until, dt.time(0, 0), tzinfo=dt.timezone.utc)
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=Path(src).read_bytes(), IfNoneMatch="*",
                                   ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                raise ObjectExistsError(f"{self.uri(key)} already exists and is write-once") from exc
            raise

    def retention_until(self, key: str) -> dt.date | None:
        if not self.enforces_retention:
            return None
        try:
            ret = self.client.get_object_retention(Bucket=self.bucket, Key=self._k(key)).get("Retention", {})
        except self.client.exceptions.ClientError:
            return None  # no retention on this object (or no such object)
        until = ret.get("RetainUntilDate")
        return until.date() if until is not None else None

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._k(key))

    def publish_artifact(self, prefix: str, local_dir: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
        prefix = prefix.rstrip("/")
        local_dir = Path(local_dir)
        # 1. un-commit the previous version (readers now see no artifact, never a mix)
        self.delete(self.manifest_key(prefix))
        old = set(self.list_keys(prefix))
        new: set[str] = set()
        # 2. upload the files
        for p in sorted(local_dir.rglob("*")):
            if p.is_file():
                key = f"{prefix}/{p.relative_to(local_dir).as_posix()}"
                self.put_file(p, key)
                new.add(key)
        # 3. drop files of the previous version that the new one does not have
        for key in sorted(old - new):
            self.delete(key)
        # 4. commit
        self.write_json(self.manifest_key(prefix), manifest)

    @contextlib.contextmanager
    def local_artifact(self, prefix: str) -> Iterator[Path]:
        self.require_manifest(prefix)
        prefix = prefix.rstrip("/")
        with scratch.scratch_dir("hvla-s3", self.scratch_root()) as tmp:
            root = tmp / "artifact"
            for key in self.list_keys(prefix):
                self.get_file(key, root / key[len(prefix) + 1 :])
            yield root
