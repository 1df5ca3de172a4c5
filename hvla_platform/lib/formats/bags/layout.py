"""Where the bag of a recording folder is: the layouts a recording may arrive in (docs/recordings.md).

A recording folder holds hvla's ``metadata.yaml`` (and optionally ``operator_notes.md``) plus
exactly one bag, which is one of:

(a) ``*.mcap`` files directly in the folder: one file (``<episode_id>_0.mcap``, what
    ``hvla sim record`` writes), or the files of a split bag ``<name>_0.mcap, <name>_1.mcap, ...``,
    ordered by the numeric suffix (kind ``mcap``);
(b) one subdirectory that is a rosbag2 bag directory (its own rosbag2 ``metadata.yaml``, top key
    ``rosbag2_bagfile_information``), storage ``mcap`` or ``sqlite3`` (``.db3``), possibly split
    (several files in ``relative_file_paths``, read in that order) (kinds ``rosbag2_mcap``,
    ``rosbag2_sqlite3``);
(c) one ROS 1 ``*.bag`` file directly in the folder (kind ``ros1``).

:func:`locate_bag` also takes a bag itself: a rosbag2 bag directory, an ``.mcap``, ``.bag`` or
``.db3`` file (a ``.db3`` inside a rosbag2 directory stands for that directory). Anything else —
no bag, two bags, an unknown storage id, a split bag with a part missing — is a
:class:`~hvla_platform.lib.formats.mcap.errors.RawLogError` whose message is one line.

Nothing here reads message data: only names and the rosbag2 ``metadata.yaml``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import yaml

from hvla_platform.lib.formats.mcap.errors import RawLogError

#: Kinds of bag :func:`locate_bag` recognises.
BAG_KINDS = ("mcap", "rosbag2_mcap", "rosbag2_sqlite3", "ros1")

#: The name of both hvla's recording metadata and rosbag2's bag metadata (in different folders).
METADATA_YAML = "metadata.yaml"

#: Top key of a rosbag2 ``metadata.yaml``.
ROSBAG2_KEY = "rosbag2_bagfile_information"

#: rosbag2 storage ids read by the platform, and the kind they give.
ROSBAG2_STORAGES = {"mcap": "rosbag2_mcap", "sqlite3": "rosbag2_sqlite3"}

_SPLIT = re.compile(r"^(?P<name>.+)_(?P<n>\d+)\.mcap$")


@dataclass(frozen=True)
class BagLayout:
    """Where one bag's files are.

    Attributes:
        kind: one of :data:`BAG_KINDS`.
        root: the recording folder (for a bag given directly: the folder holding it).
        files: the bag's data files (``.mcap`` / ``.db3`` / ``.bag``), in read order.
        bag_dir: the rosbag2 bag directory (kinds ``rosbag2_*``), else None.
        rosbag2_metadata: the parsed ``rosbag2_bagfile_information`` mapping (kinds ``rosbag2_*``
            with a ``metadata.yaml``), else None.
    """

    kind: str
    root: Path
    files: tuple[Path, ...]
    bag_dir: Path | None = None
    rosbag2_metadata: dict[str, Any] | None = None

    @property
    def metadata_file(self) -> Path | None:
        """The rosbag2 bag's ``metadata.yaml`` (None for kinds ``mcap`` / ``ros1``, or a lone ``.db3``)."""
        if self.bag_dir is None or self.rosbag2_metadata is None:
            return None
        return self.bag_dir / METADATA_YAML

    @property
    def all_files(self) -> list[Path]:
        """Every file that makes up the bag: the data files, then the rosbag2 ``metadata.yaml``."""
        meta = self.metadata_file
        return list(self.files) + ([meta] if meta is not None else [])

    def relpath(self, path: Path) -> str:
        """``path`` relative to :attr:`root`, ``/``-separated (e.g. ``bag/bag_0.db3``)."""
        return path.relative_to(self.root).as_posix()

    @property
    def display(self) -> Path:
        """What error messages name: the bag directory, or the single data file, or the root."""
        if self.bag_dir is not None:
            return self.bag_dir
        return self.files[0] if len(self.files) == 1 else self.root


def read_rosbag2_metadata(bag_dir: Path) -> dict[str, Any] | None:
    """The ``rosbag2_bagfile_information`` mapping of ``bag_dir/metadata.yaml``; None when that file
    is absent or is not a rosbag2 bag's metadata (e.g. hvla's recording ``metadata.yaml``).

    Raises:
        RawLogError: ``unreadable``: the file has the rosbag2 key but cannot be read or parsed.
    """
    meta = bag_dir / METADATA_YAML
    if not meta.is_file():
        return None
    try:
        text = meta.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RawLogError(meta, "unreadable", f"cannot read: {exc}") from exc
    if ROSBAG2_KEY not in text:
        return None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RawLogError(meta, "unreadable", f"not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(doc, dict) or ROSBAG2_KEY not in doc:
        return None
    info = doc[ROSBAG2_KEY]
    if not isinstance(info, dict):
        raise RawLogError(meta, "unreadable", f"{ROSBAG2_KEY} is a {type(info).__name__}, not a mapping")
    return info


def is_rosbag2_dir(path: Path) -> bool:
    """True if ``path`` is a directory holding a rosbag2 ``metadata.yaml``.

    Raises:
        RawLogError: ``unreadable``: its ``metadata.yaml`` names rosbag2 but cannot be parsed.
    """
    return path.is_dir() and read_rosbag2_metadata(path) is not None


def _rosbag2_layout(root: Path, bag_dir: Path, info: dict[str, Any]) -> BagLayout:
    meta = bag_dir / METADATA_YAML
    storage = info.get("storage_identifier")
    if storage not in ROSBAG2_STORAGES:
        raise RawLogError(meta, "unsupported_storage",
                          f"storage_identifier {storage!r} is not one of {sorted(ROSBAG2_STORAGES)}")
    mode = str(info.get("compression_mode") or "").lower()
    if mode not in ("", "none"):
        raise RawLogError(meta, "unsupported_storage",
                          f"compression_mode {mode!r} ({info.get('compression_format')!r}) is not supported; "
                          "decompress the bag first (ros2 bag convert)")
    rel = info.get("relative_file_paths")
    if not isinstance(rel, list) or not rel or not all(isinstance(r, str) and r for r in rel):
        raise RawLogError(meta, "unreadable", f"relative_file_paths must be a non-empty list of file names, got {rel!r}")
    # like rosbag2 and rosbags: old bags list "<bag dir>/<file>", so only the name counts
    files = tuple(bag_dir / PurePath(r).name for r in rel)
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise RawLogError(meta, "incomplete_bag", f"relative_file_paths lists {missing}, not in {bag_dir.name}/")
    suffix = ".mcap" if storage == "mcap" else ".db3"
    wrong = [f.name for f in files if f.suffix != suffix]
    if wrong:
        raise RawLogError(meta, "unsupported_storage", f"storage {storage!r} expects {suffix} files, lists {wrong}")
    return BagLayout(kind=ROSBAG2_STORAGES[storage], root=root, files=files, bag_dir=bag_dir, rosbag2_metadata=info)


def _mcap_group(folder: Path, mcaps: list[Path]) -> tuple[Path, ...]:
    """The files of the one MCAP bag among ``mcaps`` in read order.

    Raises:
        RawLogError: ``several_bags`` (files of more than one bag) or ``incomplete_bag``.
    """
    groups: dict[str, list[tuple[int, Path]]] = {}
    for p in mcaps:
        m = _SPLIT.match(p.name)
        if m:
            groups.setdefault(m.group("name"), []).append((int(m.group("n")), p))
        else:
            groups.setdefault(p.stem, []).append((-1, p))
    if len(groups) > 1:
        raise RawLogError(folder, "several_bags", f"holds the .mcap files of {len(groups)} bags "
                                                  f"({sorted(p.name for p in mcaps)}); a recording holds one bag")
    (name, parts), = groups.items()
    parts.sort()
    if len(parts) > 1:
        numbers = [n for n, _ in parts]
        if numbers != list(range(len(parts))):
            missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
            raise RawLogError(folder, "incomplete_bag",
                              f"split bag {name}: parts {[p.name for _, p in parts]} lack "
                              f"{[f'{name}_{n}.mcap' for n in missing] or 'nothing'} (numbers must run 0, 1, 2, ...)")
    return tuple(p for _, p in parts)


def locate_bag(path: str | os.PathLike[str]) -> BagLayout:
    """Find the one bag of a recording folder, or take ``path`` as a bag (see the module docstring).

    Args:
        path: a recording folder, a rosbag2 bag directory, or an ``.mcap`` / ``.bag`` / ``.db3`` file.

    Returns:
        The bag's :class:`BagLayout`.

    Raises:
        RawLogError: reason ``no_bag`` (nothing that is a bag, or ``path`` does not exist),
            ``several_bags`` (more than one), ``unsupported_storage`` (a rosbag2 storage id other
            than mcap/sqlite3, compressed rosbag2 files, a file of another kind),
            ``incomplete_bag`` (a split part or a listed file missing) or ``unreadable`` (the
            rosbag2 ``metadata.yaml`` cannot be parsed). The message is one line naming the path.
    """
    path = Path(path)
    if path.is_file():
        if path.suffix == ".mcap":
            return BagLayout(kind="mcap", root=path.parent, files=(path,))
        if path.suffix == ".bag":
            return BagLayout(kind="ros1", root=path.parent, files=(path,))
        if path.suffix == ".db3":
            info = read_rosbag2_metadata(path.parent)
            if info is not None:
                return _rosbag2_layout(path.parent.parent, path.parent, info)
            return BagLayout(kind="rosbag2_sqlite3", root=path.parent, files=(path,))
        raise RawLogError(path, "unsupported_storage", f"{path.suffix or 'a file without suffix'} is not a bag "
                                                       "(.mcap, .db3, .bag or a rosbag2 directory)")
    if not path.is_dir():
        raise RawLogError(path, "no_bag", "no such file or folder")
    info = read_rosbag2_metadata(path)
    if info is not None:  # the rosbag2 bag directory itself
        return _rosbag2_layout(path.parent, path, info)
    entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    mcaps = [p for p in entries if p.is_file() and p.suffix == ".mcap"]
    ros1 = [p for p in entries if p.is_file() and p.suffix == ".bag"]
    dirs = [p for p in entries if p.is_dir()]
    bag_dirs = [(d, i) for d in dirs if (i := read_rosbag2_metadata(d)) is not None]
    found = ([f"{len(mcaps)} .mcap file(s)"] if mcaps else []) + [p.name for p in ros1] + [f"{d.name}/" for d, _ in bag_dirs]
    if len(found) > 1:
        raise RawLogError(path, "several_bags", f"holds {len(found)} bags ({', '.join(found)}); a recording holds one bag")
    if mcaps:
        return BagLayout(kind="mcap", root=path, files=_mcap_group(path, mcaps))
    if ros1:
        return BagLayout(kind="ros1", root=path, files=(ros1[0],))
    if bag_dirs:
        d, info = bag_dirs[0]
        return _rosbag2_layout(path, d, info)
    stray = [p.name for p in entries if p.is_file() and p.suffix == ".db3"]
    stray += [f"{d.name}/{p.name}" for d in dirs for p in sorted(d.iterdir()) if p.suffix in (".mcap", ".db3", ".bag")]
    hint = (f"; {stray} must sit in a rosbag2 bag directory with its metadata.yaml" if stray
            else "; expected *.mcap, one *.bag, or one rosbag2 bag directory (see docs/recordings.md)")
    raise RawLogError(path, "no_bag", f"no bag in the folder{hint}")
