"""Lineage queries answered from the artifacts' manifests (no Dagster involved): the public API.

Every committed artifact carries a ``_hvla_manifest.json`` naming its inputs (lake ``key``,
``sha256``, ``kind``, ``episode_ids``), its config, code version and rights
(:mod:`hvla_platform.lib.core.manifest`). The lineage package turns the manifests of a whole lake
into a graph and answers two questions:

* :func:`upstream` -- for a checkpoint, eval report, cache, norm stats, release (or any artifact):
  the tree of what it was built from, down to the raw MCAP episodes, with sha256, config, code
  version and rights at each step (:mod:`.upstream`).
* :func:`downstream` -- for a raw episode (id, raw prefix or URI), ``consent:<id>`` or
  ``customer:<name>``: every artifact that contains or was derived from the matching episodes
  (:mod:`.downstream`).

Modules, one concern each: :mod:`.records` (a manifest reduced to an :class:`ArtifactRecord`),
:mod:`.shards` (the persisted index: per-prefix shard objects in the lake, ``_index/lineage/``),
:mod:`.scan` (listing manifests with their stamps; reading many in parallel), :mod:`.index`
(:func:`load_index`: validate shards, re-read only changed manifests), :mod:`.upstream`,
:mod:`.downstream`, :mod:`.render` (JSON and text). This module re-exports their public names, so
``from hvla_platform.lib.lineage import graph as lin`` keeps working. Design and measured numbers:
``docs/lineage.md``.
"""

from __future__ import annotations

from hvla_platform.lib.lineage.downstream import DownstreamHit, downstream, query_episodes
from hvla_platform.lib.lineage.index import _MEMO, LineageIndex, gc_paused, index_path, load_index, read_index_file
from hvla_platform.lib.lineage.records import (INFO_FIELDS, RAW_TYPE, TYPE_ORDER, ArtifactRecord, Edge, LineageError,
                                               record_from_manifest)
from hvla_platform.lib.lineage.render import render_hits, render_tree, to_json
from hvla_platform.lib.lineage.shards import INDEX_FORMAT, INDEX_PREFIX, shard_key, shard_of
from hvla_platform.lib.lineage.upstream import LineageNode, upstream, uri_function

__all__ = ["ArtifactRecord", "DownstreamHit", "Edge", "INDEX_FORMAT", "INDEX_PREFIX", "INFO_FIELDS", "LineageError",
           "LineageIndex", "LineageNode", "RAW_TYPE", "TYPE_ORDER", "_MEMO", "downstream", "gc_paused", "index_path",
           "load_index", "query_episodes", "read_index_file", "record_from_manifest", "render_hits", "render_tree",
           "shard_key", "shard_of", "to_json", "upstream", "uri_function"]
