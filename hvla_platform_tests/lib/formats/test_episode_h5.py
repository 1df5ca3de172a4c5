"""The episode HDF5 format, version 3: cameras stored encoded (distinct source frames once), read
frame by frame; format-2 files (dense decoded frames) still read; the streaming writer never leaves
a half file; writes are byte-reproducible."""

from __future__ import annotations

import io
import json

import h5py
import numpy as np
import pytest
from PIL import Image

from hvla_platform.lib.formats.episode_h5 import (
    FORMAT_VERSION,
    EncodedFrames,
    EpisodeFormatError,
    EpisodeReader,
    EpisodeWriter,
    decode_frame,
    encode_png,
    read_episode_h5,
    write_episode_h5,
)
from hvla_platform_tests.lib.episode_factory import make_episode


def _jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _low(ep):
    """``ep`` without its frames (what EpisodeWriter takes)."""
    from hvla_platform.lib.formats.episode_h5 import _without_frames

    return _without_frames(ep)


def _same_low_dim(a, b) -> None:
    for name in ("timestamps", "state", "velocity", "action", "locomotion_command"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.array_equal(x, y) and x.dtype == y.dtype, name
    assert a.state_names == b.state_names and a.action_names == b.action_names
    assert (a.episode_id, a.robot_id, a.capture_day, a.task, a.fps, a.start_time_ns) == (
        b.episode_id, b.robot_id, b.capture_day, b.task, b.fps, b.start_time_ns)
    for cam in a.skew:
        assert np.array_equal(a.skew[cam], b.skew[cam])


def test_dense_frames_round_trip_losslessly_each_source_frame_stored_once(tmp_path):
    ep = make_episode("ep-dense", num_frames=24, camera_hz=15.0, seed=3)
    ep.profile = "unitree_g1_29dof@1"
    path = write_episode_h5(tmp_path / "ep.h5", ep)
    back = read_episode_h5(path)
    _same_low_dim(ep, back)
    assert back.profile == "unitree_g1_29dof@1"
    for cam, frames in ep.images.items():
        assert np.array_equal(back.images[cam], frames), cam  # PNG is lossless
        # the stored index keeps which frames repeat a source frame
        idx = ep.source_index[cam]
        assert np.array_equal(back.source_index[cam][1:] == back.source_index[cam][:-1], idx[1:] == idx[:-1])
    with EpisodeReader(path) as r:
        assert r.format_version == FORMAT_VERSION == 3
        for cam in ep.images:
            info = r.cameras[cam]
            assert (info.kind, info.encoding, info.height, info.width) == ("rgb", "png", 48, 64)
            assert info.num_stored == len(np.unique(ep.source_index[cam])) < ep.num_frames
            got = list(r.iter_frames(cam))
            assert len(got) == ep.num_frames
            assert all(np.array_equal(g, f) for g, f in zip(got, ep.images[cam]))
            assert np.array_equal(r.frame(cam, 7), ep.images[cam][7])


def test_encoded_jpeg_frames_are_stored_byte_for_byte(tmp_path):
    ep = make_episode("ep-jpeg", num_frames=10, cameras=("head",), seed=5)
    rng = np.random.default_rng(0)
    src = [_jpeg(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(6)]
    low = _low(ep)
    low.source_index = {"head": np.array([0, 0, 1, 2, 2, 3, 4, 4, 5, 5], np.int64)}
    low.encoded = {"head": EncodedFrames(frames=src, encoding="jpeg", kind="rgb", height=48, width=64,
                                         source_encoding="jpeg", stamps_ns=np.arange(6, dtype=np.int64) * 10)}
    path = write_episode_h5(tmp_path / "ep.h5", low)
    with EpisodeReader(path) as r:
        info = r.cameras["head"]
        assert (info.encoding, info.source_encoding, info.num_stored) == ("jpeg", "jpeg", 6)
        assert [r.encoded_frame("head", i) for i in range(6)] == src
        assert r.image_bytes() == sum(len(b) for b in src)
        assert np.array_equal(r.frame("head", 3), decode_frame(src[2], "rgb"))
        assert np.array_equal(r._f["observation/images/head/stamps_ns"][()], np.arange(6) * 10)
    back = read_episode_h5(path)
    assert back.images["head"].shape == (10, 48, 64, 3)
    assert np.array_equal(back.images["head"][4], decode_frame(src[2], "rgb"))


def test_depth_round_trips_in_millimetres(tmp_path):
    ep = make_episode("ep-depth", num_frames=6, cameras=("head",), seed=7)
    low = _low(ep)
    depth = np.random.default_rng(1).integers(0, 65536, (6, 20, 30), dtype=np.uint16)
    depth[:, 0, 0], depth[:, 0, 1] = 0, 65535
    low.depth = {"head_depth": depth}
    low.skew["head_depth"] = np.zeros(6, np.float32)
    low.images = {"head": ep.images["head"]}
    path = write_episode_h5(tmp_path / "ep.h5", low)
    back = read_episode_h5(path)
    assert back.depth["head_depth"].dtype == np.uint16 and np.array_equal(back.depth["head_depth"], depth)
    assert np.array_equal(back.images["head"], ep.images["head"])
    with EpisodeReader(path) as r:
        info = r.cameras["head_depth"]
        assert (info.kind, info.encoding, info.height, info.width) == ("depth", "png", 20, 30)
        assert r._f["observation/images/head_depth"].attrs["depth_unit"] == "mm"
        assert np.array_equal(r.frame("head_depth", 4), depth[4])


def _write_v2(path, ep) -> None:
    """The format-2 layout, written by hand: decoded frames as one (T, H, W, 3) uint8 dataset per
    camera (gzip 4), locomotion command always present, no profile."""
    with h5py.File(path, "w") as f:
        f.attrs.update({"format_version": 2, "episode_id": ep.episode_id, "robot_id": ep.robot_id,
                        "capture_day": ep.capture_day, "task": ep.task, "fps": ep.fps,
                        "start_time_ns": ep.start_time_ns, "source_key": "raw-mcap/x/y/z/z_0.mcap"})
        f.create_dataset("timestamps", data=ep.timestamps)
        f.create_dataset("observation/state", data=ep.state).attrs["names"] = json.dumps(ep.state_names)
        f.create_dataset("observation/velocity", data=ep.velocity).attrs["names"] = json.dumps(ep.state_names)
        f.create_dataset("action", data=ep.action).attrs["names"] = json.dumps(ep.action_names)
        f.create_dataset("locomotion_command", data=ep.locomotion_command)
        for cam, frames in ep.images.items():
            d = f.create_dataset(f"observation/images/{cam}", data=frames, compression="gzip", compression_opts=4,
                                 chunks=(1, *frames.shape[1:]))
            d.attrs["source_rate_hz"] = 15.0
            f.create_dataset(f"alignment/skew/{cam}", data=ep.skew[cam])
            f.create_dataset(f"alignment/source_index/{cam}", data=ep.source_index[cam])


def test_a_format_2_file_is_still_read(tmp_path):
    ep = make_episode("ep-v2", num_frames=12, camera_hz=15.0, seed=9)
    path = tmp_path / "v2.h5"
    _write_v2(path, ep)
    back = read_episode_h5(path)
    _same_low_dim(ep, back)
    assert back.profile == "" and back.extras == {} and back.depth == {}
    assert back.attrs["source_key"] == "raw-mcap/x/y/z/z_0.mcap"
    for cam in ep.images:
        assert np.array_equal(back.images[cam], ep.images[cam])
        assert back.source_rate_hz[cam] == 15.0
    with EpisodeReader(path) as r:
        assert r.format_version == 2
        info = r.cameras["head"]
        assert (info.kind, info.encoding, info.num_stored) == ("rgb", "dense", 12)
        assert np.array_equal(r.frame("head", 5), ep.images["head"][5])
        assert sum(1 for _ in r.iter_frames("head")) == 12
        assert 0 < r.image_bytes() < sum(a.nbytes for a in ep.images.values())
        with pytest.raises(EpisodeFormatError, match="stored decoded"):
            r.encoded_frame("head", 0)
    low = read_episode_h5(path, load_images=False)
    assert low.images == {} and set(low.skew) == set(ep.images)


def _writer_episode():
    ep = make_episode("ep-w", num_frames=4, cameras=("a", "b"), seed=2)
    low = _low(ep)
    low.source_index = {"a": np.arange(4, dtype=np.int64), "b": np.array([0, 0, 1, 1], np.int64)}
    return low, {cam: [encode_png(f) for f in ep.images[cam]] for cam in ("a", "b")}


def test_the_writer_appends_cameras_interleaved(tmp_path):
    low, png = _writer_episode()
    with EpisodeWriter(tmp_path / "w.h5", low) as w:
        a = w.camera("a", kind="rgb", encoding="png", height=48, width=64, num_stored=4)
        b = w.camera("b", kind="rgb", encoding="png", height=48, width=64, num_stored=2)
        for i in range(4):
            a.append(png["a"][i], 100 + i)
            if i < 2:
                b.append(png["b"][i], 200 + i)
    with EpisodeReader(tmp_path / "w.h5") as r:
        assert [r.encoded_frame("a", i) for i in range(4)] == png["a"]
        assert [r.encoded_frame("b", i) for i in range(2)] == png["b"][:2]
        assert np.array_equal(r.source_index("b"), [0, 0, 1, 1])


@pytest.mark.parametrize("how", ["exception", "incomplete", "never_written", "too_many", "abort"])
def test_the_writer_leaves_no_file_when_it_does_not_finish(tmp_path, how):
    low, png = _writer_episode()
    path = tmp_path / "w.h5"

    def fill(w, n_a=4, n_b=2):
        a = w.camera("a", kind="rgb", encoding="png", height=48, width=64, num_stored=4)
        for i in range(n_a):
            a.append(png["a"][i])
        if n_b is not None:
            b = w.camera("b", kind="rgb", encoding="png", height=48, width=64, num_stored=2)
            for i in range(n_b):
                b.append(png["b"][i])

    if how == "exception":
        with pytest.raises(RuntimeError, match="boom"):
            with EpisodeWriter(path, low) as w:
                fill(w)
                raise RuntimeError("boom")
    elif how == "incomplete":
        with pytest.raises(EpisodeFormatError, match="1 of 2 announced frames"):
            with EpisodeWriter(path, low) as w:
                fill(w, n_b=1)
    elif how == "never_written":
        with pytest.raises(EpisodeFormatError, match=r"\['b'\] were never written"):
            with EpisodeWriter(path, low) as w:
                fill(w, n_b=None)
    elif how == "too_many":
        with pytest.raises(EpisodeFormatError, match="more than the 2 announced"):
            with EpisodeWriter(path, low) as w:
                fill(w, n_b=3)
    else:
        w = EpisodeWriter(path, low)
        fill(w)
        w.abort()
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file either


def test_writes_are_byte_reproducible(tmp_path):
    ep = make_episode("ep-rep", num_frames=16, camera_hz=15.0, seed=11)
    ep.extras = {"imu": np.arange(16 * 10, dtype=np.float32).reshape(16, 10)}
    ep.extras_names = {"imu": [f"c{i}" for i in range(10)]}
    a = write_episode_h5(tmp_path / "a" / "ep.h5", ep).read_bytes()
    b = write_episode_h5(tmp_path / "b" / "ep.h5", ep).read_bytes()
    assert a == b
    back = read_episode_h5(tmp_path / "a" / "ep.h5", load_images=False)
    assert back.extras_names["imu"] == ep.extras_names["imu"] and np.array_equal(back.extras["imu"], ep.extras["imu"])


def test_image_bytes_counts_the_stored_frames(tmp_path):
    ep = make_episode("ep-size", num_frames=20, camera_hz=10.0, seed=13)
    path = write_episode_h5(tmp_path / "ep.h5", ep)
    with EpisodeReader(path) as r:
        stored = sum(len(r.encoded_frame(cam, i)) for cam, info in r.cameras.items() for i in range(info.num_stored))
        assert r.image_bytes() == stored
        assert all(info.num_stored == len(np.unique(ep.source_index[cam])) for cam, info in r.cameras.items())


def test_an_episode_without_locomotion_has_no_locomotion_dataset(tmp_path):
    ep = make_episode("ep-noloco", num_frames=5, seed=1)
    ep.locomotion_command = None
    path = write_episode_h5(tmp_path / "ep.h5", ep)
    with h5py.File(path, "r") as f:
        assert "locomotion_command" not in f
    assert read_episode_h5(path, load_images=False).locomotion_command is None


def test_depth_is_refused_in_a_lossy_encoding(tmp_path):
    low, _ = _writer_episode()
    with pytest.raises(EpisodeFormatError, match="depth frames are stored as 16-bit PNG"):
        with EpisodeWriter(tmp_path / "w.h5", low) as w:
            w.camera("a", kind="depth", encoding="jpeg", height=48, width=64, num_stored=4)
    assert list(tmp_path.iterdir()) == []
