"""The human-video clip contract (strict metadata.yaml) and MP4 probing with PyAV."""

import copy

import numpy as np
import pytest

from hvla_platform.lib.core.keys import UnsafeIdError
from hvla_platform.lib.formats.human_video import (
    HumanVideoError, parse_clip_metadata, probe_mp4, read_clip_identity, read_frames, write_mp4)
from hvla_platform.lib.sim.human_video import clip_metadata

META = clip_metadata(clip_id="hv-1", device_id="cam-1", capture_date="2026-11-10", role="locomotion",
                     task="walk to the door", seed=0)


def test_valid_metadata_parses_with_rights():
    meta, rights = parse_clip_metadata(copy.deepcopy(META))
    assert meta.learning_role == "locomotion" and meta.device.id == "cam-1"
    assert rights.contains_human_video and rights.requires_face_blur
    assert rights.consent_refs == {"consent-hv-sim-001"} and rights.sites == {"sim-lab-headcam"}
    assert read_clip_identity(META) == ("2026-11-10", "cam-1", "hv-1")


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(learning_rol=m.pop("learning_role")), "unknown key 'learning_rol' (did you mean 'learning_role'?)"),
    (lambda m: m["demonstrator"].update(consent_reff="x"), "demonstrator: unknown key 'consent_reff'"),
    (lambda m: m["rights"].update(contains_human_vidoe=True), "rights: unknown key 'contains_human_vidoe'"),
    (lambda m: m.update(learning_role="cooking"), "learning_role: expected one of 'manipulation' or 'locomotion'"),
    (lambda m: m["rights"].update(contains_human_video=False), "contains_human_video must be true"),
    (lambda m: m["rights"].update(consent_refs=[]), "is not among rights.consent_refs"),
    (lambda m: m["rights"].update(allowed_uses=["sell_it"]), "unknown allowed use(s) ['sell_it']"),
    (lambda m: m.pop("demonstrator"), "missing required field 'demonstrator'"),
])
def test_broken_metadata_is_one_line_naming_the_problem(edit, message):
    m = copy.deepcopy(META)
    edit(m)
    with pytest.raises(HumanVideoError) as exc:
        parse_clip_metadata(m, source="clips/hv-1/metadata.yaml")
    assert str(exc.value).startswith("clips/hv-1/metadata.yaml")
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_unsafe_ids_are_refused():
    with pytest.raises(UnsafeIdError, match="device id"):
        read_clip_identity({**META, "device": {"id": "../etc"}})


def test_probe_and_read_frames_round_trip(tmp_path):
    yy, xx = np.mgrid[0:48, 0:64]
    frames = [np.stack([(xx * 4 + 20 * k) % 256, (yy * 5) % 256, np.full_like(xx, 40 + 15 * k)], -1).astype(np.uint8)
              for k in range(12)]  # smooth colour ramps moving right, a distinct frame each
    video = write_mp4(tmp_path / "c.mp4", frames, 10.0)
    p = probe_mp4(video)
    assert (p.codec, p.width, p.height, p.num_frames, p.fps) == ("h264", 64, 48, 12, 10.0)
    assert p.duration_s == pytest.approx(1.2) and np.allclose(p.pts_s, np.arange(12) / 10)
    decoded = list(read_frames(video))
    assert len(decoded) == 12 and decoded[3][0] == pytest.approx(0.3)
    assert decoded[0][1].shape == (48, 64, 3) and decoded[0][1].dtype == np.uint8
    # a lossy copy of its own frame, not of another one
    err = [np.abs(decoded[5][1].astype(int) - f.astype(int)).mean() for f in frames]
    assert int(np.argmin(err)) == 5 and err[5] < 6


def test_broken_video_is_a_one_line_error(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"not a video at all")
    with pytest.raises(HumanVideoError, match="^x.mp4: cannot open as a video"):
        probe_mp4(tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="even"):
        write_mp4(tmp_path / "odd.mp4", [np.zeros((5, 8, 3), np.uint8)], 10)
