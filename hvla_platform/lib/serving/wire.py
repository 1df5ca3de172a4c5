"""openpi's msgpack-numpy wire encoding, decoded defensively.

Format (openpi-client 0.1.2 ``msgpack_numpy.py``, see docs/serving.md): messages are msgpack maps;
a numpy array travels as the map ``{b"__ndarray__": True, b"data": <raw bytes, C order>,
b"dtype": <numpy dtype.str, e.g. "<f4", "|u1">, b"shape": [d0, d1, ...]}`` and a numpy scalar as
``{b"__npgeneric__": True, b"data": <python value>, b"dtype": <dtype.str>}``. Strings are msgpack
str, bytes are msgpack bin (``use_bin_type=True``).

openpi's own decoder builds arrays straight from whatever the peer sent. A server facing robots
cannot: :func:`unpack` refuses object, void, complex and structured dtypes, a data length that does
not match the shape, negative or absurd shapes and non-string map keys, each with a
:class:`WireError` that says what was wrong and where; nesting is bounded by msgpack's own unpack
stack. Decoded arrays are read-only views of the message bytes (no copy), as in openpi.

Speed: valid messages are decoded in one pass with msgpack's ``object_hook`` (as openpi does) and a
cache of validated dtypes; only a message that fails is decoded a second time, by a walk that names
the offending key in the error.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

#: dtype kinds that may cross the wire: bool, signed/unsigned int, float.
ALLOWED_KINDS = frozenset("biuf")
_MAX_NDIM = 8
_DTYPES: dict[Any, np.dtype] = {}  # validated dtype strings (bounded: at most 64 entries)


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


def packer() -> msgpack.Packer:
    """A reusable encoder (``.pack(obj) -> bytes``) with :func:`pack`'s rules; one per connection
    saves allocating a new one per message. Not thread-safe."""
    return msgpack.Packer(default=_encode_default, use_bin_type=True)


def pack(obj: Any) -> bytes:
    """Encode ``obj`` (dicts, lists, str, numbers, bytes, numpy arrays/scalars) as openpi msgpack.

    Raises:
        WireError: an array has an unsupported dtype (object, void, complex, str).
        TypeError: an object msgpack cannot encode.
    """
    return msgpack.packb(obj, default=_encode_default, use_bin_type=True)


def _dtype(raw: Any, where: str) -> np.dtype:
    cached = _DTYPES.get(raw) if isinstance(raw, (str, bytes)) else None
    if cached is not None:
        return cached
    key = raw
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
    if len(_DTYPES) < 64:
        _DTYPES[key] = dt
    return dt


def _bad_shape(where: str, shape: Any) -> str:
    return f"{where}: shape must be a list of at most {_MAX_NDIM} non-negative ints, got {shape!r:.60}"


def _array(m: dict, where: str) -> np.ndarray:
    dt = _dtype(m.get(b"dtype"), where)
    shape = m.get(b"shape")
    data = m.get(b"data")
    if type(shape) is not list or len(shape) > _MAX_NDIM:
        raise WireError(_bad_shape(where, shape))
    if type(data) is not bytes:
        raise WireError(f"{where}: data must be bytes, got {type(data).__name__}")
    n = dt.itemsize
    for d in shape:
        if type(d) is not int or not 0 <= d < 2 ** 31:  # type(): bool is not an int here
            raise WireError(_bad_shape(where, shape))
        n *= d
    if n != len(data):
        raise WireError(f"{where}: {len(data)} bytes of data do not match shape {list(shape)} of {dt} "
                        f"({n} bytes expected)")
    return np.ndarray(shape=shape, dtype=dt, buffer=data)  # read-only view: bytes are immutable


def _scalar(m: dict, where: str) -> np.generic:
    dt = _dtype(m.get(b"dtype"), where)
    value = m.get(b"data")
    if not isinstance(value, (bool, int, float)):
        raise WireError(f"{where}: numpy scalar data must be a number, got {type(value).__name__}")
    try:
        return dt.type(value)
    except (OverflowError, ValueError) as exc:
        raise WireError(f"{where}: {value!r} does not fit {dt}") from exc


class _SlowPath(Exception):
    """Raised inside the fast decode when a map needs the walk (bytes keys) or the error needs a path."""


def _hook(m: dict) -> Any:
    if b"__ndarray__" in m:
        return _array(m, "message")
    if b"__npgeneric__" in m:
        return _scalar(m, "message")
    for k in m:
        if type(k) is not str:
            raise _SlowPath
    return m


def _walk(obj: Any, where: str) -> Any:
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
            out[k] = _walk(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, list):
        return [_walk(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def unpack(data: bytes) -> Any:
    """Decode one openpi msgpack-numpy message.

    Returns:
        The message with arrays as read-only ``np.ndarray`` views and map keys as ``str``.

    Raises:
        WireError: not msgpack, trailing bytes, nesting beyond msgpack's stack, a disallowed dtype,
            data/shape mismatch or non-string map keys (the message names the key).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"expected a binary frame, got {type(data).__name__}")
    try:
        # strict_map_key=False: openpi's array maps use bytes keys (b"__ndarray__").
        return msgpack.unpackb(data, object_hook=_hook, raw=False, strict_map_key=False)
    except (WireError, _SlowPath):
        pass  # decode again below, with the walk that says where
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes is the peer's error
        raise WireError(f"not a msgpack message: {type(exc).__name__}: {exc}") from exc
    return _walk(msgpack.unpackb(data, raw=False, strict_map_key=False), "message")
