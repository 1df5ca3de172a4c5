"""The simulated head camera makes both buckets' clips: H.264 MP4 + a metadata.yaml that keeps the
clip contract, no commands recorded, cheap to render."""

import time

import numpy as np
import pytest
import yaml

from hvla_platform.lib.formats.human_video import parse_clip_metadata, probe_mp4
from hvla_platform.lib.processing.qa.video_qa import clip_qa
from hvla_platform.lib.sim.human_video import record_human_video_clip


def test_record_both_buckets(tmp_path):
    t0 = time.process_time()
    mani = record_human_video_clip(tmp_path, "manipulation", seed=3)
    loco = record_human_video_clip(tmp_path, "locomotion", seed=3)
    assert time.process_time() - t0 < 20  # two 3 s clips; ~4 s of CPU each on a busy 2-core machine

    for clip, role in ((mani, "manipulation"), (loco, "locomotion")):
        assert sorted(p.name for p in clip.folder.iterdir()) == sorted(["metadata.yaml", f"{clip.folder.name}.mp4"])
        meta, rights = parse_clip_metadata(yaml.safe_load((clip.folder / "metadata.yaml").read_text()))
        assert meta.learning_role == role and rights.contains_human_video
        p = probe_mp4(clip.video)
        assert (p.codec, p.width, p.height, p.num_frames) == ("h264", 128, 96, 30)
        assert clip.frames.shape == (30, 96, 128, 3)
        # never two bit-identical frames (sensor noise), as a real camera
        assert all(not np.array_equal(a, b) for a, b in zip(clip.frames, clip.frames[1:]))
        q = clip_qa(clip.video, role)
        assert q.failed == [], {c: q.checks[c]["detail"] for c in q.failed}
    # what separates the buckets: the whole view moves in locomotion, not in manipulation
    assert clip_qa(loco.video, "locomotion").metrics["median_camera_motion"] > \
        20 * clip_qa(mani.video, "manipulation").metrics["median_camera_motion"]
    # the manipulation clip shows the arm moving: its first and last frames differ
    assert np.abs(mani.frames[0].astype(int) - mani.frames[-1].astype(int)).mean() > 1.0


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="role"):
        record_human_video_clip(tmp_path, "cooking")
    with pytest.raises(ValueError, match="even"):
        record_human_video_clip(tmp_path, "locomotion", height=95)
