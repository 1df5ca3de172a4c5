"""The Robo-DM cache's ``manifest.parquet``: one row per ``.vla`` file (seed 002's columns plus
``episode_id``, ``split``, ``video_codec``, ``bytes``, and what QA and the recording know about the
episode: ``quality_score``, ``success``, ``min_distance_m``).

==========================  =======  ===========================================================
column                      type     meaning
==========================  =======  ===========================================================
``vla_path``                string   ``episode_<NNNNNN>.vla``, relative to the cache directory
``source_repo_id``          string   LeRobot repo id of the source release
``source_dataset_version``  string   the source release (version id)
``source_episode_index``    int64    LeRobot ``episode_index`` of the episode
``source_episode_length``   int64    frames
``task``                    string   task instruction
``robot_id``                string   robot that recorded the episode
``converter_version``       string   the LeRobot → Robo-DM converter
``created_at``              string   ISO 8601 UTC; content-derived, see
                                     :func:`hvla_platform.lib.dataset.robodm_cache.build_robodm_cache`
``qa_status``               string   ``passed`` / ``approved`` / ``unchecked``
                                     (:data:`hvla_platform.lib.core.tables.QA_STATUSES`)
``episode_id``              string   hvla episode id
``split``                   string   ``train`` / ``heldout``
``video_codec``             string   robodm image codec
``bytes``                   int64    size of the ``.vla``
``quality_score``           float64  QA quality score in [0, 1]; null: not scored
``success``                 bool     the recording's own outcome (``metadata.yaml``); null: none
``min_distance_m``          float64  closest fingertip–object distance, metres; null: none
==========================  =======  ===========================================================

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
    "episode_id", "split", "video_codec", "bytes", "quality_score", "success", "min_distance_m",
)

ARROW_SCHEMA = pa.schema([
    ("vla_path", pa.string()), ("source_repo_id", pa.string()), ("source_dataset_version", pa.string()),
    ("source_episode_index", pa.int64()), ("source_episode_length", pa.int64()), ("task", pa.string()),
    ("robot_id", pa.string()), ("converter_version", pa.string()), ("created_at", pa.string()),
    ("qa_status", pa.string()), ("episode_id", pa.string()), ("split", pa.string()),
    ("video_codec", pa.string()), ("bytes", pa.int64()), ("quality_score", pa.float64()),
    ("success", pa.bool_()), ("min_distance_m", pa.float64()),
])


def write_cache_manifest(cache_dir: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``cache_dir/manifest.parquet`` from ``rows`` (one dict per ``.vla``; ``vla_path``
    relative to ``cache_dir``, ``created_at`` ISO 8601 UTC; a missing ``quality_score``,
    ``success`` or ``min_distance_m`` is written as null) and return its path. The same rows give
    the same bytes (rows in the given order, fixed schema, no timestamps of its own).

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
