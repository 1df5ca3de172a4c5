"""The persisted lineage index: one shard object per artifact prefix group, stored in the lake.

A **shard** holds the :class:`~hvla_platform.lib.lineage.records.ArtifactRecord` s of the
artifacts whose keys share their first two segments (:func:`shard_of`: ``raw-mcap/<day>``,
``episodes-hdf5/<day>``, ``lerobot/<org>``, ``checkpoints/<config>``, ``eval-reports/<exp>``), or
their first one for two-segment keys (``norm-stats``, ``robodm-cache``): ~200 shards at 100,000
raw episodes over 200 days. Each record carries the **stamp** of the manifest it was read from,
``(size, tag)``: the tag is the manifest's ``mtime_ns`` on a local lake and its ETag on S3
(:meth:`~hvla_platform.lib.core.lake.Lake.list_objects`), so a shard is validated against a listing
without reading a manifest, and only changed manifests are re-read.

Shards are objects of the lake itself, ``_index/lineage/v5/<quoted shard>.json``
(:func:`shard_key`), so an S3 lake has a persisted index every reader shares; they are written
whole (local: a temporary file renamed over the old one; S3: one PUT), hold keys only (no URI,
no root), and a lake copied with its ``_index`` keeps a valid index where the copy keeps the
stamps (``cp -a``; S3 copies keep single-part ETags).

An object is ``{"format": 5, "crc32": "<hex of the CRC-32 of the doc's bytes>", "doc": <doc>}``; the
doc is the lineage index table of :func:`~hvla_platform.lib.core.tables.lineage_index_schema`
(``{"format", "table", "entries"}``: ``table`` holds the shared configs, rights and
episode-id lists (the artifacts' and their input edges') -- each distinct one once per shard, so the 10^5-id train list that a checkpoint's,
its cache's and its norm stats' edges repeat is stored and decoded once, and the decoded edges share
one list object, which queries must not mutate; checked before it is written; on reading, a doc whose bytes
match its CRC is the one that passed that check and is not checked again -- the check costs a
third of decoding at 100,000 episodes -- any other is checked in full), plus ``shard``,
``written_ns`` (when the listing it was built from started: a manifest stamped within :data:`RACY_NS`
of it is re-read next time, as git does for racy index entries) and, on S3, ``etags`` (the ``mtime_ns`` column then holds 0).
Encoded with orjson (~3× faster than :mod:`json` here; ``benchmarks/lineage.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

import zlib

import orjson

from hvla_platform.lib.core.tables import check_lineage_index
from hvla_platform.lib.lineage.records import ArtifactRecord, Edge

INDEX_FORMAT = 5  # 5: edge episode-id lists stored once per shard; 4: sharded, in the lake; 3: one file
#: Lake prefix of the shard objects.
INDEX_PREFIX = f"_index/lineage/v{INDEX_FORMAT}"
#: A manifest whose mtime is this close to (or after) the listing its shard was built from is re-read
#: next time: file times come from the kernel's coarse clock (one tick: 1-10 ms), so a rewrite in the
#: same tick as the listing keeps the mtime.
RACY_NS = 20_000_000

#: ``(size, tag)``: tag is ``mtime_ns`` (int, local lake) or the ETag (str, S3).
Stamp = tuple[int, Any]
#: key -> (stamp, record)
Entries = dict[str, tuple[Stamp, ArtifactRecord]]


_HEAD = b'{"format":%d,"crc32":"' % INDEX_FORMAT
_MID = b'","doc":'


class ShardError(ValueError):
    """A shard object is not a lineage index shard of this format (not JSON, other format...)."""


def shard_of(key: str) -> str:
    """The shard holding artifact ``key``: its first two segments, or its first for a two-segment key."""
    parts = key.split("/", 2)
    return parts[0] if len(parts) <= 2 else f"{parts[0]}/{parts[1]}"


def shard_key(shard: str) -> str:
    """Lake key of a shard object (``_index/lineage/v5/raw-mcap%2F2026-11-10.json``)."""
    return f"{INDEX_PREFIX}/{quote(shard, safe='')}.json"


def shard_from_key(key: str) -> str | None:
    """Inverse of :func:`shard_key` (None for a key that is not a shard object)."""
    if not (key.startswith(INDEX_PREFIX + "/") and key.endswith(".json")):
        return None
    name = key[len(INDEX_PREFIX) + 1: -len(".json")]
    return unquote(name) if "/" not in name else None


def encode_shard(shard: str, entries: Entries, *, written_ns: int) -> bytes:
    """The shard document's bytes (orjson, compact); ``written_ns``: when the listing that stamped its
    manifests started.

    Raises:
        TableError: the document does not match
            :func:`~hvla_platform.lib.core.tables.lineage_index_schema` (names the keys at fault).
    """
    table: list[Any] = []
    ids: dict[bytes, int] = {}
    lists: dict[tuple[Any, ...], int] = {}

    def intern(v: Any) -> int:
        s = orjson.dumps(v, option=orjson.OPT_SORT_KEYS)
        i = ids.get(s)
        if i is None:
            i = ids[s] = len(table)
            table.append(v)
        return i

    def intern_list(v: list[Any]) -> int:  # episode ids (a checkpoint and its edges repeat its 10^5 train ids)
        t = tuple(v)
        i = lists.get(t)
        if i is None:
            i = lists[t] = len(table)
            table.append(v)
        return i

    out: dict[str, list[Any]] = {}
    etags: dict[str, str] = {}
    for key in sorted(entries):
        (size, tag), r = entries[key]
        if isinstance(tag, str):
            etags[key] = tag
        out[key] = [size, tag if isinstance(tag, int) else 0, r.type, r.manifest_sha256, r.code_version,
                    intern(r.config), intern(r.rights), intern_list(r.episode_ids), r.info, r.files,
                    [[e.key, e.uri if e.key is None else "", e.sha256, e.kind, intern_list(e.episode_ids)]
                     for e in r.inputs]]
    doc: dict[str, Any] = {"format": INDEX_FORMAT, "shard": shard, "written_ns": written_ns,
                           "table": table, "entries": out}
    if etags:
        doc["etags"] = etags
    check_lineage_index(doc, where=shard_key(shard))
    body = orjson.dumps(doc, default=str)
    return b"%s%08x%s%s}" % (_HEAD, zlib.crc32(body), _MID, body)


def decode_shard(data: bytes, *, where: str) -> tuple[Entries, int]:
    """``(entries, written_ns)`` of a shard document.

    Raises:
        ShardError: not JSON, not a shard of :data:`INDEX_FORMAT`, or one whose CRC matches but whose
            entries are not in this code's layout.
        TableError: the entries do not match the lineage index table (names ``where``, the columns
            and the artifact keys at fault).
    """
    n = len(_HEAD)
    if data.startswith(_HEAD) and data[n + 8: n + 8 + len(_MID)] == _MID and data.endswith(b"}") \
            and data[n: n + 8] == b"%08x" % zlib.crc32(memoryview(data)[n + 8 + len(_MID): -1]):
        doc = orjson.loads(memoryview(data)[n + 8 + len(_MID): -1])  # as written, after its check
    else:  # not as this code wrote it: parse and check everything
        try:
            outer = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ShardError(f"{where}: not JSON ({exc})") from None
        doc = outer.get("doc") if isinstance(outer, dict) else None
        if not isinstance(doc, dict) or outer.get("format") != INDEX_FORMAT or doc.get("format") != INDEX_FORMAT:
            raise ShardError(f"{where}: not a lineage index shard of format {INDEX_FORMAT}")
        check_lineage_index(doc, where=where)
    table = doc["table"]
    etags = doc.get("etags") or {}
    out: Entries = {}
    try:
        for key, (size, mtime, typ, msha, code, cfg, rights, eps, info, files, inputs) in doc["entries"].items():
            tag = etags.get(key, mtime)
            out[key] = ((size, tag), ArtifactRecord(key, typ, msha, code, table[cfg], table[rights], table[eps], info,
                                                    files, [Edge(k, u, sha, kind, table[i])
                                                            for k, u, sha, kind, i in inputs] if inputs else []))
    except (TypeError, IndexError, ValueError, KeyError, AttributeError) as exc:
        # its CRC matched, but it is not the layout this code checks (e.g. written by a development
        # build of the same format number): not used, rebuilt from its manifests
        raise ShardError(f"{where}: a shard of format {INDEX_FORMAT} in another layout ({exc!r})") from None
    written = doc.get("written_ns")
    return out, written if isinstance(written, int) else 0
