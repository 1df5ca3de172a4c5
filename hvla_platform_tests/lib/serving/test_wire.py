"""openpi's msgpack-numpy encoding: byte-identical to openpi-client's packer, strict on decode."""

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


@pytest.mark.parametrize("message, match", [
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
])
def test_unpack_rejects_malformed(message, match):
    with pytest.raises(WireError, match=match):
        unpack(message)


def test_unpack_rejects_deep_nesting():
    with pytest.raises(WireError, match="not a msgpack message: StackError"):
        unpack(b"\x81\xa1n" * 3000 + b"\x01")  # 3000 nested maps


def test_errors_name_the_key():
    with pytest.raises(WireError, match=r"message\['obs'\]\['state'\]: dtype '\|O'"):
        unpack(msgpack.packb({"obs": {"state": openpi_array(np.zeros(3, np.float32), dtype="|O")}}))
    assert unpack(msgpack.packb({b"legacy": 1})) == {"legacy": 1}  # bytes keys are decoded


def test_decoded_arrays_are_read_only_views():
    arr = unpack(pack({"x": np.ones(4, np.float32)}))["x"]
    assert not arr.flags.writeable
