"""`hvla release build` prints progress, not ffmpeg: what libav/libx264 write to file descriptor 2
while LeRobot encodes goes to `$HVLA_HOME/logs/codec/<release>.log` (issue 12 §3)."""

import os
import subprocess
import sys

# Encodes a few frames the way LeRobot leaves libav after a video (its default log callback, which
# writes libx264's statistics to fd 2 from C), inside codec_output_to, and prints from Python too.
SCRIPT = r"""
import sys
import av, numpy as np
from hvla_platform.lib.dataset.codec_log import codec_log_path, codec_output_to



def encode(path):  # as LeRobot's encode_video_frames: the encoder is freed (and reports) on return
    with av.open(path, "w") as out:
        s = out.add_stream("libx264", 10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)


av.logging.restore_default_callback()
with codec_output_to(codec_log_path("tiny-v1")) as log:
    encode(sys.argv[1])
    print("episode 1/1 ep-1: 10 frames", file=sys.stderr, flush=True)
print("done", log)
"""


def test_codec_output_goes_to_the_log_and_progress_stays_on_the_terminal(tmp_path):
    env = {**os.environ, "HVLA_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "v.mp4")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "episode 1/1 ep-1: 10 frames\n"  # progress only: no codec line on the terminal
    log = (tmp_path / "home" / "logs" / "codec" / "tiny-v1.log").read_text()
    assert "libx264" in log and "frame I:" in log
    assert proc.stdout.strip() == f"done {tmp_path / 'home' / 'logs' / 'codec' / 'tiny-v1.log'}"
