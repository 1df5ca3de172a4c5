"""openpi's msgpack-numpy encoding: byte-identical to openpi-client's packer, strict on decode."""

import re

import msgpack
import numpy as np
import pytest

from hvla_platform.lib.serving.wire import WireError, pack, unpack


def openpi_default(obj):
    """openpi-client 0.1.2 msgpack_numpy.pack_array, as ENVIRONMENT.md documents the format."""
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def openpi_array(arr: np.ndarray, **override) -> dict:
    """An openpi array map with some fields replaced (``dtype=``, ``shape=``, ``data=``)."""
    m = {b"__ndarray__": True, b"data": arr.tobytes(), b"dtype": arr.dtype.str, b"shape": list(arr.shape)}
    m.update({k.encode(): v for k, v in override.items()})
    return m


OBS = {
    "observation/state": np.linspace(-1, 1, 17, dtype=np.float32),
    "observation/images/head": np.arange(96 * 128 * 3, dtype=np.uint32).astype(np.uint8).reshape(96, 128, 3),
    "prompt": "pick up the cube",
    "step": np.int64(7),
    "nested": {"flags": [True, False], "gain": np.float64(0.5)},
}


def test_bytes_identical_to_openpi_and_roundtrip():
    assert pack(OBS) == msgpack.packb(OBS, default=openpi_default)
    back = unpack(pack(OBS))
    assert back["prompt"] == "pick up the cube"
    for key in ("observation/state", "observation/images/head"):
        assert back[key].dtype == OBS[key].dtype and back[key].shape == OBS[key].shape
        np.testing.assert_array_equal(back[key], OBS[key])
    assert back["step"] == 7 and back["step"].dtype == np.int64
    assert back["nested"]["gain"] == 0.5 and back["nested"]["flags"] == [True, False]
    big_endian = np.arange(4, dtype=">f8")
    np.testing.assert_array_equal(unpack(pack({"x": big_endian}))["x"], big_endian)
    assert unpack(pack({"x": np.zeros((0, 3), np.float32)}))["x"].shape == (0, 3)


@pytest.mark.parametrize("dtype", [object, "V8", np.complex64, "U4"])
def test_pack_refuses_unsafe_dtypes(dtype):
    with pytest.raises(WireError, match="cannot send numpy dtype"):
        pack({"x": np.zeros(2, dtype=dtype)})


MALFORMED = [
    (b"\xc1not msgpack", "not a msgpack message"),
    (msgpack.packb({"a": 1}) + b"\x00", "not a msgpack message"),
    ("text", "expected a binary frame"),
    (msgpack.packb({"x": openpi_array(np.zeros(3, np.float32), dtype="|O")}), "is not allowed"),
    (msgpack.packb({"x": openpi_array(np.zeros(3, np.float32), dtype="|V4")}), "is not allowed"),
    (msgpack.packb({"x": openpi_array(np.zeros(3, np.float32), dtype="<c8")}), "is not allowed"),
    (msgpack.packb({"x": openpi_array(np.zeros(3, np.float32), dtype="nonsense")}), "unknown dtype"),
    (msgpack.packb({"x": openpi_array(np.zeros(3, np.float32), shape=[4])}), "do not match shape"),
    (msgpack.packb({"x": openpi_array(np.zeros(3, np.float32), shape=[-3])}), "non-negative ints"),
    (msgpack.packb({"x": openpi_array(np.zeros(3, np.float32), shape="3")}), "shape must be a list"),
    (msgpack.packb({"x": openpi_array(np.zeros(3, np.float32), data="abc")}), "data must be bytes"),
    (msgpack.packb({"x": {b"__npgeneric__": True, b"data": "7", b"dtype": "<i8"}}), "must be a number"),
    (msgpack.packb({"x": {b"__npgeneric__": True, b"data": 300, b"dtype": "|u1"}}), "does not fit"),
    (msgpack.packb({1: "a"}, strict_types=False), "map keys must be strings"),
]


@pytest.mark.parametrize("message, match", MALFORMED)
def test_unpack_rejects_malformed(message, match):
    with pytest.raises(WireError, match=match):
        unpack(message)


def test_unpack_rejects_deep_nesting():
    with pytest.raises(WireError, match="nested deeper than 16 levels"):
        unpack(b"\x81\xa1n" * 3000 + b"\x01")  # 3000 nested maps (beyond msgpack's own stack)


def test_errors_name_the_key():
    with pytest.raises(WireError, match=r"message\['obs'\]\['state'\]: dtype '\|O'"):
        unpack(msgpack.packb({"obs": {"state": openpi_array(np.zeros(3, np.float32), dtype="|O")}}))
    assert unpack(msgpack.packb({b"legacy": 1})) == {"legacy": 1}  # bytes keys are decoded


def test_decoded_arrays_are_read_only_views():
    arr = unpack(pack({"x": np.ones(4, np.float32)}))["x"]
    assert not arr.flags.writeable


# ---- the zero-copy fast path ------------------------------------------------------------------

def openpi_packb(obj) -> bytes:
    """What openpi-client 0.1.2's packer sends (its pack_array writes shapes as tuples)."""
    return msgpack.packb(obj, default=openpi_default)


def same(a, b) -> bool:
    """Deep equality of decoded messages: arrays by dtype, shape and bytes; NaN equal to NaN."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
                and a.tobytes() == b.tobytes())
    if isinstance(a, dict):
        return type(b) is dict and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return type(b) is list and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and a == b


def outcome(message):
    """("ok", decoded) or ("error", the WireError's text)."""
    try:
        return "ok", unpack(message)
    except WireError as exc:
        return "error", str(exc)


VALID = [
    OBS,
    {"observation/state": np.zeros(32, np.float32), "prompt": "pick up the red cube",
     **{f"observation/images/cam{i}": np.full((224, 224, 3), i, np.uint8) for i in range(3)}},
    {"x": np.arange(4, dtype=">f8"), "empty": np.zeros((0, 3), np.float32), "zero_d": np.array(3.5),
     "flags": np.array([True, False]), "big": np.zeros(70000, np.uint8), "i64": np.arange(3, dtype=np.int64)},
    {"ints": [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32, 2 ** 63, -1, -32, -33, -129, -2 ** 40],
     "floats": [0.5, -1e300, float("inf")], "none": None, "t": True, "f": False, "s": "é" * 40, "long": "x" * 300,
     "nested": {"a": {"b": {"c": [np.ones(2, np.float32), {"d": "e"}]}}}},
    {f"key{i}": i for i in range(40)},  # map16
    {"k" * 40: np.ones((2, 3), np.int16)},  # str8 key
    [np.zeros(3, np.uint8), "list at the top"],
    "a bare string",
]


@pytest.mark.parametrize("obj", VALID, ids=range(len(VALID)))
def test_fast_path_decodes_as_msgpack_does(obj):
    for message in (openpi_packb(obj), pack(obj)):
        fast = unpack(message)  # bytes: the zero-copy path
        slow = unpack(bytearray(message))  # bytearray: msgpack's decoder with the validating hook
        assert same(fast, slow)


def test_openpi_arrays_are_read_only_views_of_the_message():
    message = openpi_packb(VALID[1])
    obs = unpack(message)
    whole = np.frombuffer(message, np.uint8)
    for key in ("observation/state", "observation/images/cam2"):
        arr = obs[key]
        assert np.shares_memory(arr, whole) and arr.base is message  # no copy was made
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0
    np.testing.assert_array_equal(obs["observation/images/cam2"], np.full((224, 224, 3), 2, np.uint8))
    # a policy that wants to change an observation copies it
    mine = obs["observation/state"].copy()
    mine += 1
    assert mine.flags.writeable and (obs["observation/state"] == 0).all()


def test_header_cache_does_not_let_a_changed_header_through():
    good = openpi_packb({"x": np.zeros(17, np.float32)})
    assert unpack(good)["x"].dtype == np.float32  # caches the header of a 68-byte array
    assert unpack(openpi_packb({"x": np.zeros(17, np.int32)}))["x"].dtype == np.int32  # same size, new header
    for bad, match in [(openpi_array(np.zeros(17, np.float32), dtype="|O"), "is not allowed"),
                       (openpi_array(np.zeros(17, np.float32), shape=[18]), "do not match shape"),
                       (openpi_array(np.zeros(17, np.float32), shape=[17, 1, 1, 1, 1, 1, 1, 1, 1]), "at most 8"),
                       (openpi_array(np.zeros(17, np.float32), shape=[2 ** 31]), "non-negative ints")]:
        with pytest.raises(WireError, match=match):
            unpack(msgpack.packb({"x": bad}))
        with pytest.raises(WireError, match=r"message\['x'\]"):  # the error names the key
            unpack(msgpack.packb({"x": bad}))


@pytest.mark.parametrize("message, match", [m for m in MALFORMED if isinstance(m[0], bytes)])
def test_both_paths_refuse_the_same_messages(message, match):
    fast, slow = outcome(message), outcome(bytearray(message))
    assert fast == slow and fast[0] == "error" and re.search(match, fast[1])


def test_truncated_messages_are_refused():
    message = openpi_packb(VALID[1])
    for cut in (1, 30, 60, 100, 1000, len(message) // 2, len(message) - 40, len(message) - 1):
        with pytest.raises(WireError, match="not a msgpack message"):
            unpack(message[:cut])


def test_fast_and_slow_paths_agree_on_corrupted_messages():
    """Flip bytes of real messages at random: the zero-copy path and msgpack's decoder must accept
    and refuse exactly the same messages, with the same result or the same error."""
    rng = np.random.default_rng(18)
    bases = [openpi_packb({"observation/state": np.linspace(-1, 1, 5, dtype=np.float32), "prompt": "reach",
                           "observation/images/head": np.arange(24, dtype=np.uint8).reshape(2, 4, 3)}),
             pack({"actions": np.ones((2, 3), np.float32), "server_timing": {"infer_ms": 1.5, "prev_total_ms": 2.0}})]
    accepted = refused = 0
    for base in bases:
        for _ in range(1500):
            message = bytearray(base)
            for pos in rng.integers(0, len(message), rng.integers(1, 4)):
                message[pos] = rng.integers(0, 256)
            fast, slow = outcome(bytes(message)), outcome(message)
            assert fast[0] == slow[0] and (same(fast[1], slow[1]) if fast[0] == "ok" else fast[1] == slow[1]), \
                (bytes(message), fast, slow)
            accepted += fast[0] == "ok"
            refused += fast[0] == "error"
    assert accepted > 300 and refused > 300  # both outcomes were exercised


def test_a_bytearray_message_decodes_to_read_only_views_of_it():
    # the server's large payloads are unmasked in place and decoded from that buffer (issue 15)
    obs = {"observation/image": np.arange(224 * 224 * 3, dtype=np.uint8).reshape(224, 224, 3),
           "observation/state": np.arange(32, dtype=np.float32), "prompt": "reach"}
    buf = bytearray(pack(obs))
    out = unpack(buf)
    for key in ("observation/image", "observation/state"):
        assert np.array_equal(out[key], obs[key]) and not out[key].flags.writeable
        assert np.shares_memory(out[key], np.frombuffer(buf, np.uint8))  # no copy
    assert out["prompt"] == "reach"
