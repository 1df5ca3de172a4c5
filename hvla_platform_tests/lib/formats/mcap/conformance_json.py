"""The MCAP conformance suite's JSON form of records (test-side serializer).

Format source: the conformance suite's expected-record files (foxglove/mcap
``tests/conformance/data``, stored under ``shared/testdata/mcap-conformance``):

* a record is ``{"type": <record name>, "fields": [[name, value], ...]}``, fields sorted by name;
* integers are decimal strings (``"10"``), bytes are lists of decimal strings (``["1", "2"]``),
  strings stay strings, maps are JSON objects whose keys and values are converted the same way;
  lists of tuples become lists of lists.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from mcap.records import Channel, McapRecord, Message, Schema

from hvla_platform.lib.formats.mcap.records import iter_indexed_messages, read_summary_view


def _to_json_value(value: Any) -> Any:
    """Convert one field value to the conformance JSON form (ints as strings, bytes as lists)."""
    if isinstance(value, bool):
        raise TypeError(f"unexpected bool field value {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return [str(b) for b in bytes(value)]
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {str(_to_json_value(k)): _to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_value(v) for v in value]
    raise TypeError(f"cannot serialize field value of type {type(value).__name__}")


def record_to_conformance_json(record: McapRecord) -> dict[str, Any]:
    """Serialize one ``mcap.records`` record into the MCAP conformance suite's JSON form.

    The result is ``{"type": <class name>, "fields": [[field, value], ...]}`` with the fields
    sorted by name; ints become decimal strings, bytes lists of decimal strings, maps objects with
    converted keys and values (see the module docstring). For example a Message becomes
    ``{"type": "Message", "fields": [["channel_id", "1"], ["data", ["1", "2", "3"]],
    ["log_time", "2"], ["publish_time", "1"], ["sequence", "10"]]}``.

    Raises:
        TypeError: ``record`` is not an mcap record dataclass, or holds a value of a type the
            format has no JSON form for.
    """
    if not (isinstance(record, McapRecord) and dataclasses.is_dataclass(record)):
        raise TypeError(f"not an MCAP record: {record!r}")
    fields = sorted((f.name, _to_json_value(getattr(record, f.name))) for f in dataclasses.fields(record))
    return {"type": type(record).__name__, "fields": [list(pair) for pair in fields]}


def indexed_view(path: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """What the project's indexed reader reports for ``path``, in conformance JSON form.

    Uses :func:`read_summary_view` and :func:`iter_indexed_messages` (the project's indexed reader).
    Returns::

        {"schemas": [...], "channels": [...], "messages": [...], "statistics": [...]}

    * ``schemas``/``channels``: those in the summary section plus those returned with messages,
      deduplicated by id (first seen wins), sorted by id;
    * ``messages``: in the order :func:`iter_indexed_messages` yields them (log time, ties in
      file order);
    * ``statistics``: the summary's Statistics record, if any (a list of zero or one).

    Each entry is in :func:`record_to_conformance_json` form.

    Raises:
        RawLogError: reason ``unreadable`` for anything the reader cannot read.
    """
    path = Path(path)
    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    messages: list[Message] = []
    statistics = []
    summary = read_summary_view(path)
    if summary is not None:
        schemas.update(summary.schemas)
        channels.update(summary.channels)
        if summary.statistics is not None:
            statistics.append(summary.statistics)
    for schema, channel, message in iter_indexed_messages(path):
        if schema is not None:
            schemas.setdefault(schema.id, schema)
        channels.setdefault(channel.id, channel)
        messages.append(message)
    return {
        "schemas": [record_to_conformance_json(schemas[i]) for i in sorted(schemas)],
        "channels": [record_to_conformance_json(channels[i]) for i in sorted(channels)],
        "messages": [record_to_conformance_json(m) for m in messages],
        "statistics": [record_to_conformance_json(s) for s in statistics],
    }
