"""The Robo-DM cache's ``manifest.parquet``: one row per ``.vla`` file (seed 002's columns plus
``episode_id``, ``split``, ``video_codec``, ``bytes``).

Written by the dataset stage (:func:`hvla_platform.lib.dataset.robodm_cache.build_robodm_cache`),
read by training (:func:`hvla_platform.lib.training.data.load_split`) and the cache's own checks;
both go through this module, and every read and write is validated against
:func:`hvla_platform.lib.core.tables.robodm_manifest_schema`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hvla_platform.lib.core.tables import check_robodm_manifest, read_robodm_manifest

MANIFEST_FILE = "manifest.parquet"

MANIFEST_COLUMNS = (
    "vla_path", "source_repo_id", "source_dataset_version", "source_episode_index",
    "source_episode_length", "task", "robot_id", "converter_version", "created_at", "qa_status",
    "episode_id", "split", "video_codec", "bytes",
)

ARROW_SCHEMA = pa.schema([
    ("vla_path", pa.string()), ("source_repo_id", pa.string()), ("source_dataset_version", pa.string()),
    ("source_episode_index", pa.int64()), ("source_episode_length", pa.int64()), ("task", pa.string()),
    ("robot_id", pa.string()), ("converter_version", pa.string()), ("created_at", pa.string()),
    ("qa_status", pa.string()), ("episode_id", pa.string()), ("split", pa.string()),
    ("video_codec", pa.string()), ("bytes", pa.int64()),
])


def write_cache_manifest(cache_dir: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``cache_dir/manifest.parquet`` from ``rows`` (one dict per ``.vla``; ``vla_path``
    relative to ``cache_dir``, ``created_at`` ISO 8601 UTC) and return its path.

    Raises:
        TableError: the rows do not match the schema (checked before anything is written).
    """
    path = Path(cache_dir) / MANIFEST_FILE
    table = pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)
    check_robodm_manifest(table, where=str(path))
    pq.write_table(table, path)
    return path


def read_cache_manifest(cache_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of ``cache_dir/manifest.parquet`` as dicts, sorted by ``source_episode_index`` (which is
    also the order of the ``episode_<index>.vla`` file names).

    Raises:
        FileNotFoundError: no manifest in ``cache_dir``.
        TableError: the file is not Parquet or does not match the schema (the message names the
            column and rows).
    """
    path = Path(cache_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(2, f"no {MANIFEST_FILE} in Robo-DM cache {cache_dir}", str(path))
    return sorted(read_robodm_manifest(path), key=lambda r: r["source_episode_index"])
