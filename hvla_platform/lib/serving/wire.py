"""openpi's msgpack-numpy wire encoding, decoded defensively.

Format (openpi-client 0.1.2 ``msgpack_numpy.py``, see docs/serving.md): messages are msgpack maps;
a numpy array travels as the map ``{b"__ndarray__": True, b"data": <raw bytes, C order>,
b"dtype": <numpy dtype.str, e.g. "<f4", "|u1">, b"shape": [d0, d1, ...]}`` and a numpy scalar as
``{b"__npgeneric__": True, b"data": <python value>, b"dtype": <dtype.str>}``. Strings are msgpack
str, bytes are msgpack bin (``use_bin_type=True``).

openpi's own decoder builds arrays straight from whatever the peer sent. A server facing robots
cannot: :func:`unpack` refuses object, void, complex and structured dtypes, a data length that does
not match the shape, negative or absurd shapes, and nesting deeper than :data:`MAX_DEPTH`, each with
a :class:`WireError` that says what was wrong. Decoded arrays are read-only views of the message
bytes (no copy), as in openpi.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

#: dtype kinds that may cross the wire: bool, signed/unsigned int, float.
ALLOWED_KINDS = frozenset("biuf")
#: deepest nesting of maps/lists accepted in a message.
MAX_DEPTH = 16
_MAX_NDIM = 8


class WireError(ValueError):
    """A message is not valid openpi msgpack-numpy (the message says what and where)."""


def _encode_default(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind not in ALLOWED_KINDS:
        raise WireError(f"cannot send numpy dtype {obj.dtype} (allowed kinds: bool, int, uint, float)")
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": arr.dtype.str, b"shape": list(arr.shape)}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def pack(obj: Any) -> bytes:
    """Encode ``obj`` (dicts, lists, str, numbers, bytes, numpy arrays/scalars) as openpi msgpack.

    Raises:
        WireError: an array has an unsupported dtype (object, void, complex, str).
        TypeError: an object msgpack cannot encode.
    """
    return msgpack.packb(obj, default=_encode_default, use_bin_type=True)


def _dtype(raw: Any, where: str) -> np.dtype:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str) or len(raw) > 8:
        raise WireError(f"{where}: dtype must be a short numpy dtype string such as '<f4', got {raw!r:.40}")
    try:
        dt = np.dtype(raw)
    except TypeError as exc:
        raise WireError(f"{where}: unknown dtype {raw!r}") from exc
    if dt.kind not in ALLOWED_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise WireError(f"{where}: dtype {raw!r} ({dt}) is not allowed; send bool, int, uint or float arrays")
    return dt


def _array(m: dict, where: str) -> np.ndarray:
    dt = _dtype(m.get(b"dtype"), where)
    shape = m.get(b"shape")
    data = m.get(b"data")
    if not isinstance(shape, (list, tuple)) or len(shape) > _MAX_NDIM or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2 ** 31 for d in shape):
        raise WireError(f"{where}: shape must be a list of at most {_MAX_NDIM} non-negative ints, got {shape!r:.60}")
    if not isinstance(data, bytes):
        raise WireError(f"{where}: data must be bytes, got {type(data).__name__}")
    n = 1
    for d in shape:
        n *= d
    if n * dt.itemsize != len(data):
        raise WireError(f"{where}: {len(data)} bytes of data do not match shape {list(shape)} of {dt} "
                        f"({n * dt.itemsize} bytes expected)")
    return np.frombuffer(data, dtype=dt).reshape(shape)


def _scalar(m: dict, where: str) -> np.generic:
    dt = _dtype(m.get(b"dtype"), where)
    value = m.get(b"data")
    if not isinstance(value, (bool, int, float)):
        raise WireError(f"{where}: numpy scalar data must be a number, got {type(value).__name__}")
    try:
        return dt.type(value)
    except (OverflowError, ValueError) as exc:
        raise WireError(f"{where}: {value!r} does not fit {dt}") from exc


def _walk(obj: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, dict):
        if b"__ndarray__" in obj:
            return _array(obj, where)
        if b"__npgeneric__" in obj:
            return _scalar(obj, where)
        out = {}
        for k, v in obj.items():
            if isinstance(k, bytes):
                k = k.decode("utf-8", "replace")
            if not isinstance(k, str):
                raise WireError(f"{where}: map keys must be strings, got {type(k).__name__}")
            out[k] = _walk(v, f"{where}[{k!r}]", depth + 1)
        return out
    if isinstance(obj, list):
        return [_walk(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(obj)]
    return obj


def unpack(data: bytes) -> Any:
    """Decode one openpi msgpack-numpy message.

    Returns:
        The message with arrays as read-only ``np.ndarray`` views and map keys as ``str``.

    Raises:
        WireError: not msgpack, trailing bytes, a disallowed dtype, data/shape mismatch, non-string
            map keys or nesting deeper than :data:`MAX_DEPTH`.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"expected a binary frame, got {type(data).__name__}")
    try:
        # strict_map_key=False: openpi's array maps use bytes keys (b"__ndarray__").
        raw = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes is the peer's error
        raise WireError(f"not a msgpack message: {type(exc).__name__}: {exc}") from exc
    return _walk(raw, "message", 0)
