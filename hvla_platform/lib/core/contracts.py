"""Typed contracts for the files a person writes, and one-line error messages for them.

Release specs, recording ``metadata.yaml`` files, QA decision records and training configs are
written by people (or read back from what people wrote). Each kind is described by a pydantic v2
model deriving from :class:`StrictModel`, which forbids unknown keys: a misspelled key is an
error, never silently dropped (``min_qualty: 0.99`` used to leave a release at the default 0.6).

:func:`validate_document` validates a parsed mapping against such a model and turns a
``pydantic.ValidationError`` into **one** readable line, raised as the caller's own exception type
so callers keep catching what they caught before::

    releases/x.yaml: unknown key 'min_qualty' (did you mean 'min_quality'?)
    releases/x.yaml: partitions[0]: missing required field 'robot_id'
    releases/x.yaml: min_quality: expected a number, got 'high'

Several problems are joined with ``'; '``. Nested locations are shown as a path
(``rights``, ``partitions[0]``, ``heldout.fraction``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

#: At most this many problems are listed in one message (the rest are counted).
MAX_PROBLEMS = 6
_MAX_VALUE_CHARS = 60

M = TypeVar("M", bound=BaseModel)


class ContractError(ValueError):
    """A document does not match its contract (the default error of :func:`validate_document`)."""


class StrictModel(BaseModel):
    """Base of every model of a file a person writes: unknown keys are refused.

    ``extra="forbid"`` makes an unknown or misspelled key a validation error; use
    :func:`validate_document` to validate, so that error reads as one line naming the key, the
    file and the closest valid key.
    """

    model_config = ConfigDict(extra="forbid")


def iso_date_to_str(value: Any) -> Any:
    """``datetime.date`` → ``"YYYY-MM-DD"``; anything else unchanged.

    For ``BeforeValidator`` on string fields holding a day: YAML reads an unquoted ``2026-11-10`` as
    a date, a quoted one as a string, and both mean the same day. A ``datetime`` (a timestamp, not
    a day) is left unchanged, so a ``str`` field refuses it.
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Model classes an annotation holds directly or through Optional/Union/list/dict/Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out


def _valid_keys(model_cls: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """Keys the model(s) at ``path`` (a pydantic error location without its last part) accept."""
    models = [model_cls]
    for part in path:
        if isinstance(part, str):
            nxt = [sub for m in models if part in m.model_fields for sub in _models_in(m.model_fields[part].annotation)]
            if nxt or any(part in m.model_fields for m in models):
                models = nxt
            # otherwise a dict key or a union tag: the models stay the same
    keys: list[str] = []
    for m in models:
        for name, f in m.model_fields.items():
            keys.append(f.alias or name)
    return sorted(dict.fromkeys(keys))


def format_location(loc: tuple[Any, ...]) -> str:
    """``('partitions', 0, 'robot_id')`` → ``"partitions[0].robot_id"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "tuple_type": "a list", "set_type": "a list",
    "dict_type": "a mapping", "model_type": "a mapping", "model_attributes_type": "a mapping",
    "date_type": "an ISO date (YYYY-MM-DD)", "date_parsing": "an ISO date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "an ISO date (YYYY-MM-DD)",
    "date_from_datetime_inexact": "an ISO date (YYYY-MM-DD), not a timestamp",
    "datetime_type": "an ISO date-time", "datetime_parsing": "an ISO date-time",
    "datetime_from_date_parsing": "an ISO date-time",
}


def _problem(err: Mapping[str, Any], model_cls: type[BaseModel]) -> str:
    """One pydantic error as ``"<path>: <what is wrong>"`` (no path at the top level)."""
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "extra_forbidden":
        path, key = loc[:-1], loc[-1] if loc else "?"
        valid = _valid_keys(model_cls, path)
        close = difflib.get_close_matches(str(key), valid, n=1)
        if close:
            what = f"unknown key {key!r} (did you mean {close[0]!r}?)"
        elif valid:
            what = f"unknown key {key!r} (valid keys: {', '.join(valid)})"
        else:
            what = f"unknown key {key!r}"
    elif kind == "missing" and loc and isinstance(loc[-1], int):  # a fixed-length list is too short
        path, what = loc[:-1], f"missing item [{loc[-1]}]"
    elif kind == "missing":
        path, what = loc[:-1], f"missing required field {loc[-1]!r}" if loc else "missing"
    else:
        path = loc
        if kind in _EXPECTED:
            expected = _EXPECTED[kind]
        elif kind == "literal_error" or kind == "enum":
            expected = f"one of {ctx.get('expected')}"
        elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
            op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
            bound = next(iter(ctx.values())) if ctx else "?"
            expected = f"a value {op} {bound}"
        elif kind == "string_too_short" and ctx.get("min_length") == 1:
            expected = "a non-empty string"
        elif kind in ("string_too_short", "too_short"):
            expected = f"at least {ctx.get('min_length')} {'character' if kind.startswith('string') else 'item'}(s)"
        elif kind in ("string_too_long", "too_long"):
            expected = f"at most {ctx.get('max_length')} {'character' if kind.startswith('string') else 'item'}(s)"
        elif kind == "string_pattern_mismatch":
            expected = f"a string matching {ctx.get('pattern')}"
        else:
            expected = None
        if expected is not None:
            what = f"expected {expected}, got {_shown(value)}"
        else:  # a validator's own message (ValueError/AssertionError): it says what and why
            msg = str(err.get("msg", kind))
            for prefix in ("Value error, ", "Assertion failed, "):
                msg = msg.removeprefix(prefix)
            what = msg
    where = format_location(path)
    return f"{where}: {what}" if where else what


def describe_validation_error(exc: ValidationError, model_cls: type[BaseModel], source: str) -> str:
    """One line for ``exc``: ``"<source>: <problem>; <problem>; ..."``.

    Unknown keys name the key and the closest valid key (:func:`difflib.get_close_matches`, or the
    list of valid keys when none is close); missing fields name the field; wrong values name the
    field, what was expected and what was found. At most :data:`MAX_PROBLEMS` problems are listed.
    """
    problems = list(dict.fromkeys(_problem(e, model_cls) for e in exc.errors()))
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(f"and {len(problems) - MAX_PROBLEMS} more problem(s)")
    return f"{source}: " + "; ".join(shown)


def validate_document(model_cls: type[M], data: Any, *, source: str,
                      error_cls: type[Exception] = ContractError) -> M:
    """Validate a parsed document (e.g. from ``yaml.safe_load``) against ``model_cls``.

    Args:
        model_cls: a :class:`StrictModel` subclass describing the file.
        data: the parsed document; it must be a mapping.
        source: names the file in messages (a path or a lake URI).
        error_cls: the exception raised, the calling module's own error type (it is called with
            the message as its only argument).

    Returns:
        The validated model instance.

    Raises:
        error_cls: ``data`` is not a mapping, has an unknown key, misses a required field or holds
            a value of the wrong type or range; the message is one line (see
            :func:`describe_validation_error`), and the pydantic traceback is not chained.
    """
    if not isinstance(data, Mapping):
        raise error_cls(f"{source}: must be a mapping of keys to values, it holds "
                        f"{'nothing' if data is None else 'a ' + type(data).__name__}")
    try:
        return model_cls.model_validate(dict(data))
    except ValidationError as exc:
        message = describe_validation_error(exc, model_cls, source)
    raise error_cls(message)
