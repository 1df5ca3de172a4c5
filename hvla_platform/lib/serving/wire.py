"""openpi's msgpack-numpy wire encoding, decoded defensively.

Format (openpi-client 0.1.2 ``msgpack_numpy.py``, see docs/serving.md): messages are msgpack maps;
a numpy array travels as the map ``{b"__ndarray__": True, b"data": <raw bytes, C order>,
b"dtype": <numpy dtype.str, e.g. "<f4", "|u1">, b"shape": [d0, d1, ...]}`` and a numpy scalar as
``{b"__npgeneric__": True, b"data": <python value>, b"dtype": <dtype.str>}``. Strings are msgpack
str, bytes are msgpack bin (``use_bin_type=True``).

openpi's own decoder builds arrays straight from whatever the peer sent. A server facing robots
cannot: :func:`unpack` refuses object, void, complex and structured dtypes, a data length that does
not match the shape, negative or absurd shapes and non-string map keys, each with a
:class:`WireError` that says what was wrong and where.

Bounded decoding (issue 15): a message may nest maps and lists at most :data:`MAX_DEPTH` (16)
levels deep (an openpi array counts as one value) and hold at most :data:`MAX_ELEMENTS` (16,384)
elements (map entries plus list items, over the whole message). Both are enforced **while**
decoding — msgpack's own per-container limits (``max_array_len``/``max_map_len``) refuse a header
announcing more before anything is built, and hooks on every map and list count elements and
measure nesting as the decoder closes each container, aborting at the first one over the limit —
so a 16 MiB message of 16.7 M empty maps is refused after at most ~2 × 16,384 small objects
(milliseconds) instead of building them all (1.17 GB and 9 s before this change).

Zero copy: decoded arrays are **read-only views of the message bytes** (``np.ndarray`` over the
received ``bytes`` object at the data's offset; openpi's decoder views a copy msgpack makes of each
array). A policy that wants to modify an observation array in place must copy it first; writing to
one raises numpy's ``ValueError: assignment destination is read-only``. The views keep the whole
message alive while referenced, and a float array may be unaligned (numpy handles that; ``jax``
copies on transfer anyway).

Speed: a message is first parsed by :func:`_fast_decode`, which reads the msgpack framing in Python
(maps with string keys, lists, str, ints, floats, bool, nil, and openpi's array maps in the key
order openpi's packer writes) and validates each array's dtype and shape **from its header before
building the view**. Each validated header (dtype + shape bytes, keyed by data length) is cached
(bounded), so the next request with the same camera costs one ``bytes.startswith``. Anything else —
numpy scalars, bin values, bytes keys, other key orders, bytearray/memoryview input, *and every invalid
message* — goes through msgpack's C decoder with a validating ``object_hook`` (arrays there are
views of the copy msgpack makes), and a message that fails is decoded once more by a walk that names
the offending key in the error. Both paths accept and refuse exactly the same messages (tested).
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import numpy as np

#: dtype kinds that may cross the wire: bool, signed/unsigned int, float.
ALLOWED_KINDS = frozenset("biuf")
#: deepest nesting of maps and lists accepted (an openpi array map counts as one value, like a number):
#: openpi observations are 1–2 levels deep; 16 leaves room for structured extras.
MAX_DEPTH = 16
#: most elements (map entries + list items, summed over the message) accepted: an openpi observation
#: has ~10 keys plus 4–12 per array (~50 for 3 cameras); 16,384 is 300× that, and the worst message
#: it admits (16,384 empty maps, ~64 B each) costs ~1–2 MB and a few ms to decode.
MAX_ELEMENTS = 16_384
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


class MessageLimitError(WireError):
    """The message nests deeper than :data:`MAX_DEPTH` or holds more than :data:`MAX_ELEMENTS`
    elements (refused as soon as the decoder sees it, without a second pass)."""


def _too_many() -> MessageLimitError:
    return MessageLimitError(f"message refused: more than {MAX_ELEMENTS} elements (map entries and list items); "
                       "send images and states as numpy arrays")


def _too_deep() -> MessageLimitError:
    return MessageLimitError(f"message refused: maps and lists nested deeper than {MAX_DEPTH} levels")


class _Limits:
    """``object_hook`` / ``list_hook`` for msgpack's C decoder that enforce :data:`MAX_ELEMENTS` and
    :data:`MAX_DEPTH` as it goes. The decoder closes containers innermost first, so a container's
    height is 1 + its tallest child's (children's heights are kept by ``id``: every recorded
    container stays alive inside its parent until the decode ends, so ids cannot be reused). A map
    that ``convert`` turns into something else (an openpi array) counts as a value of height 0."""

    __slots__ = ("left", "heights", "convert")

    def __init__(self, convert: Any = None):
        self.left = MAX_ELEMENTS
        self.heights: dict[int, int] = {}
        self.convert = convert

    def _height(self, values: Any) -> int:
        get = self.heights.get
        h = 1 + max((get(id(v), 0) for v in values), default=0)
        if h > MAX_DEPTH:
            raise _too_deep()
        return h

    def map(self, m: dict) -> Any:
        self.left -= len(m)
        if self.left < 0:
            raise _too_many()
        h = self._height(m.values())
        out = m if self.convert is None else self.convert(m)
        if out is m:
            self.heights[id(m)] = h
        return out

    def list(self, items: list) -> list:
        self.left -= len(items)
        if self.left < 0:
            raise _too_many()
        self.heights[id(items)] = self._height(items)
        return items


def _unpackb(data: Any, convert: Any = None) -> Any:
    """msgpack's C decoder with the limits enforced while decoding (raises :class:`MessageLimitError`,
    ``_SlowPath`` from ``convert``, or msgpack's own errors)."""
    limits = _Limits(convert)
    try:
        # strict_map_key=False: openpi's array maps use bytes keys (b"__ndarray__").
        return msgpack.unpackb(data, object_hook=limits.map, list_hook=limits.list, raw=False,
                               strict_map_key=False, max_array_len=MAX_ELEMENTS, max_map_len=MAX_ELEMENTS)
    except msgpack.StackError:  # deeper than msgpack's own stack (1,024 levels)
        raise _too_deep() from None
    except ValueError as exc:
        if "exceeds max_" in str(exc):  # a header announcing more elements than allowed
            raise _too_many() from None
        raise


def _hook(m: dict) -> Any:
    if b"__ndarray__" in m:
        return _array(m, "message")
    if b"__npgeneric__" in m:
        return _scalar(m, "message")
    for k in m:
        if type(k) is not str:
            raise _SlowPath
    return m


# ---- the zero-copy fast path -------------------------------------------------------------------
_ARRAY_HEAD = b"\x84\xc4\x0b__ndarray__\xc3\xc4\x04data"  # openpi pack_array's map, key order as packed
_ARRAY_HEAD_LEN = len(_ARRAY_HEAD)
_DTYPE_KEY = b"\xc4\x05dtype"
_SHAPE_KEY = b"\xc4\x05shape"
_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_I64 = struct.Struct(">q").unpack_from
_U64 = struct.Struct(">Q").unpack_from
_F32 = struct.Struct(">f").unpack_from
_F64 = struct.Struct(">d").unpack_from
_FAST_DEPTH = MAX_DEPTH
#: elements the fast path decodes before handing the message to msgpack's C decoder (which enforces
#: :data:`MAX_ELEMENTS`): openpi observations have tens, and Python is slow per element.
_FAST_ELEMENTS = 1024
#: validated array headers: data length -> (the bytes from the dtype key to the end of the shape,
#: shape tuple, dtype). Bounded: at most 64 entries (a new one is not cached once full).
_HEADERS: dict[int, tuple[bytes, tuple[int, ...], np.dtype]] = {}


def _str_len(buf: bytes, pos: int) -> tuple[int, int]:
    """(start, length) of the msgpack str at ``pos``; raises _SlowPath if it is not a str."""
    c = buf[pos]
    if 0xa0 <= c <= 0xbf:
        return pos + 1, c & 0x1f
    if c == 0xd9:
        return pos + 2, buf[pos + 1]
    if c == 0xda:
        return pos + 3, _U16(buf, pos + 1)[0]
    if c == 0xdb:
        return pos + 5, _U32(buf, pos + 1)[0]
    raise _SlowPath


def _fast_array(buf: bytes, pos: int) -> tuple[np.ndarray, int]:
    """The array whose map starts at ``pos`` + len(_ARRAY_HEAD) (the data's bin header); validated
    from the header before the view is built. Returns (array, position after the map)."""
    c = buf[pos]
    if c == 0xc6:
        size, pos = _U32(buf, pos + 1)[0], pos + 5
    elif c == 0xc4:
        size, pos = buf[pos + 1], pos + 2
    elif c == 0xc5:
        size, pos = _U16(buf, pos + 1)[0], pos + 3
    else:
        raise _SlowPath
    end = pos + size
    hit = _HEADERS.get(size)
    if hit is not None and buf.startswith(hit[0], end):  # this exact header was validated before
        return _view(hit[1], hit[2], buf, pos), end + len(hit[0])
    if end > len(buf) or not buf.startswith(_DTYPE_KEY, end):
        raise _SlowPath
    start, n = _str_len(buf, end + 7)
    p = start + n
    dt = _dtype(bytes(buf[start:p]), "message")  # WireError: the slow path reports it with the key
    if not buf.startswith(_SHAPE_KEY, p):
        raise _SlowPath
    c = buf[p + 7]
    if not 0x90 <= c <= 0x90 + _MAX_NDIM:
        raise _SlowPath
    p += 8
    shape = []
    n = dt.itemsize
    for _ in range(c & 0x0f):
        d = buf[p]
        if d <= 0x7f:
            p += 1
        elif d == 0xcd:
            d, p = _U16(buf, p + 1)[0], p + 3
        elif d == 0xcc:
            d, p = buf[p + 1], p + 2
        elif d == 0xce:
            d, p = _U32(buf, p + 1)[0], p + 5
            if d >= 2 ** 31:
                raise _SlowPath
        else:
            raise _SlowPath
        shape.append(d)
        n *= d
    if n != size:
        raise _SlowPath
    shape_t = tuple(shape)
    if len(_HEADERS) < 64:
        _HEADERS[size] = (bytes(buf[end:p]), shape_t, dt)
    return _view(shape_t, dt, buf, pos), p


def _view(shape: tuple, dtype: np.dtype, buf: bytes | bytearray, pos: int) -> np.ndarray:
    """A read-only array of ``shape``/``dtype`` over ``buf`` from byte ``pos``, without a copy."""
    a = np.ndarray(shape, dtype, buf, pos)
    if a.flags.writeable:  # a bytearray (the server's in-place unmasked payload): read-only all the same
        a.flags.writeable = False
    return a


def _fast_value(buf: bytes, pos: int, depth: int, budget: list[int]) -> tuple[Any, int]:
    """Decode the msgpack value at ``pos``; (value, next position). ``budget[0]``: elements still
    allowed (decremented). Raises _SlowPath for anything it does not handle (the C decoder then
    decides)."""
    c = buf[pos]
    if c <= 0x7f:
        return c, pos + 1
    if 0xa0 <= c <= 0xbf or 0xd9 <= c <= 0xdb:
        start, n = _str_len(buf, pos)
        end = start + n
        if end > len(buf):
            raise _SlowPath
        return buf[start:end].decode(), end
    if 0x80 <= c <= 0x8f or c == 0xde:
        if buf.startswith(_ARRAY_HEAD, pos):
            return _fast_array(buf, pos + _ARRAY_HEAD_LEN)
        if depth >= _FAST_DEPTH:
            raise _SlowPath
        if c == 0xde:
            count, pos = _U16(buf, pos + 1)[0], pos + 3
        else:
            count, pos = c & 0x0f, pos + 1
        budget[0] -= count
        if budget[0] < 0:
            raise _SlowPath
        out = {}
        for _ in range(count):
            k = buf[pos]
            if 0xa0 <= k <= 0xbf:  # fixstr: every key openpi's clients send
                start, end = pos + 1, pos + 1 + (k & 0x1f)
            else:
                start, n = _str_len(buf, pos)
                end = start + n
            if end > len(buf):
                raise _SlowPath
            out[buf[start:end].decode()], pos = _fast_value(buf, end, depth + 1, budget)
        return out, pos
    if 0x90 <= c <= 0x9f or c == 0xdc:
        if depth >= _FAST_DEPTH:
            raise _SlowPath
        if c == 0xdc:
            count, pos = _U16(buf, pos + 1)[0], pos + 3
        else:
            count, pos = c & 0x0f, pos + 1
        budget[0] -= count
        if budget[0] < 0:
            raise _SlowPath
        items = []
        for _ in range(count):
            v, pos = _fast_value(buf, pos, depth + 1, budget)
            items.append(v)
        return items, pos
    if c == 0xcb:
        return _F64(buf, pos + 1)[0], pos + 9
    if c == 0xca:
        return _F32(buf, pos + 1)[0], pos + 5
    if c >= 0xe0:
        return c - 0x100, pos + 1
    if c == 0xc0:
        return None, pos + 1
    if c == 0xc2 or c == 0xc3:
        return c == 0xc3, pos + 1
    if c == 0xcc:
        return buf[pos + 1], pos + 2
    if c == 0xcd:
        return _U16(buf, pos + 1)[0], pos + 3
    if c == 0xce:
        return _U32(buf, pos + 1)[0], pos + 5
    if c == 0xcf:
        return _U64(buf, pos + 1)[0], pos + 9
    if c == 0xd3:
        return _I64(buf, pos + 1)[0], pos + 9
    raise _SlowPath  # bin, ext, int8/16/32, map32/array32: the C decoder's business


def _fast_decode(buf: bytes) -> Any:
    """The zero-copy decode of a whole message; raises _SlowPath when it cannot decide."""
    try:
        value, pos = _fast_value(buf, 0, 0, [_FAST_ELEMENTS])
    except (IndexError, struct.error, UnicodeDecodeError, WireError):
        raise _SlowPath from None
    if pos != len(buf):
        raise _SlowPath
    return value


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


def unpack(data: bytes | bytearray | memoryview) -> Any:
    """Decode one openpi msgpack-numpy message.

    Returns:
        The message with arrays as read-only ``np.ndarray`` views (of ``data`` itself when it is a
        ``bytes`` or ``bytearray`` object in openpi's layout, else of msgpack's copy) and map keys
        as ``str``. A ``bytearray`` must not change while the arrays live (the server's in-place
        unmasked payloads belong to the request alone).

    Raises:
        WireError: not msgpack, trailing bytes, nesting deeper than :data:`MAX_DEPTH`, more than
            :data:`MAX_ELEMENTS` elements, a disallowed dtype, data/shape mismatch or non-string map
            keys (the message names the key).
    """
    if type(data) is bytes or isinstance(data, bytearray):
        try:
            return _fast_decode(data)
        except _SlowPath:
            pass  # msgpack's decoder decides (and names what is wrong)
    elif not isinstance(data, memoryview):
        raise WireError(f"expected a binary frame, got {type(data).__name__}")
    try:
        return _unpackb(data, _hook)
    except MessageLimitError:
        raise
    except (WireError, _SlowPath):
        pass  # decode again below, with the walk that says where
    except Exception as exc:  # noqa: BLE001 - any failure to parse untrusted bytes is the peer's error
        raise WireError(f"not a msgpack message: {type(exc).__name__}: {exc}") from exc
    try:  # the hook stopped early: what follows the offending map may not even be msgpack
        raw = _unpackb(data)
    except MessageLimitError:
        raise
    except Exception as exc:  # noqa: BLE001 - as above
        raise WireError(f"not a msgpack message: {type(exc).__name__}: {exc}") from exc
    return _walk(raw, "message")
