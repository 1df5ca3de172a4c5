"""``hvla profile list`` and ``hvla profile check``: exit 0 when the bag matches its profile, 1 when it
does not (the table says how, one summary line at the end), 2 refused in one line (unknown profile
with "did you mean", no bag, unreadable bag)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hvla_platform.cli.main import main
from hvla_platform.lib.formats.recording.profile import DEFAULT_PROFILE, load_profile
from hvla_platform_tests.fixtures.bags import as_layout, install_lab_front_cam_profile, rewrite_mcap
from hvla_platform_tests.fixtures.recordings import write_recording

HVLA = [sys.executable, "-m", "hvla_platform.cli"]
KEY = f"{DEFAULT_PROFILE}@{load_profile().version}"
HEAD = "/camera/head/image_raw/compressed"


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    root = tmp_path_factory.mktemp("profile-cli")
    src = write_recording(root / "src", episode_id="ep-g1", duration_s=1.0, seed=4)
    renamed = rewrite_mcap(src, root / "ep-renamed", rename={HEAD: "/cam_front/compressed"})
    typo = rewrite_mcap(src, root / "ep-typo")
    meta = yaml.safe_load((typo / "metadata.yaml").read_text())
    meta["robot"]["profile"] = "unitree_g1_29"
    (typo / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return {"source": src, "renamed": renamed, "typo": typo, "sqlite3": as_layout(src, root / "ep-sq", "sqlite3_split")}


def _run(argv: list[str], capsys) -> tuple[int, list[str], str]:
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out.strip().splitlines(), out.err


def test_profile_list(capsys):
    rc, lines, _ = _run(["profile", "list"], capsys)
    assert rc == 0
    row = next(line for line in lines if line.startswith(KEY))
    assert "robot unitree_g1" in row and "(default)" in row
    assert "head (jpeg 96x128 @15 Hz)" in lines[lines.index(row) + 1]
    assert lines[-1].startswith("= ") and lines[-1].endswith("profile(s)")


def test_profile_list_json(capsys):
    assert main(["profile", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    g1 = next(p for p in doc["profiles"] if p["name"] == DEFAULT_PROFILE)
    assert g1["default"] is True and g1["robot_model"] == "unitree_g1"
    assert g1["cameras"]["head"] == {"topic": HEAD, "type": "sensor_msgs/msg/CompressedImage", "encoding": "jpeg",
                                     "height": 96, "width": 128, "rate_hz": 15.0}


@pytest.mark.parametrize("which", ["source", "sqlite3"])
def test_a_matching_recording_exits_0(recs, capsys, which):
    rc, lines, _ = _run(["profile", "check", str(recs[which])], capsys)
    assert rc == 0
    assert lines[-1] == f"= matches robot profile {KEY}: 6 of 6 stream(s) as expected"
    assert any(line.startswith("joint_state") and "100 / 100" in line and line.endswith("ok") for line in lines)
    assert "(profile from the default profile" in "\n".join(lines)


def test_the_bag_itself_can_be_checked(recs, capsys):
    rc, lines, _ = _run(["profile", "check", str(recs["sqlite3"] / "bag"), "--profile", DEFAULT_PROFILE], capsys)
    assert rc == 0 and lines[0].startswith(f"bag      {recs['sqlite3'] / 'bag'} (rosbag2_sqlite3, ")


def test_a_renamed_camera_exits_1_naming_the_closest_topic(recs, capsys):
    rc, lines, _ = _run(["profile", "check", str(recs["renamed"])], capsys)
    assert rc == 1
    row = next(line for line in lines if line.startswith("cameras.head"))
    assert "missing; closest: /cam_front/compressed (sensor_msgs/msg/CompressedImage)" in row
    assert lines[-1] == (f"= does not match robot profile {KEY}: 1 problem(s): missing {HEAD} "
                         "(sensor_msgs/msg/CompressedImage)")


def test_check_json(recs, capsys):
    assert main(["profile", "check", str(recs["renamed"]), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["profile"] == KEY
    head = next(s for s in doc["streams"] if s["stream"] == "cameras.head")
    assert head["status"] == "missing" and head["closest"] == ["/cam_front/compressed"]
    assert doc["summary"].startswith("= does not match")


def test_an_unknown_profile_is_refused_in_one_line_without_a_traceback(recs, tmp_path):
    env = {**os.environ, "HVLA_HOME": str(tmp_path / "home")}
    proc = subprocess.run(HVLA + ["profile", "check", str(recs["source"]), "--profile", "unitree_g1_29"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "hvla profile: unknown robot profile 'unitree_g1_29' (did you mean 'unitree_g1_29dof'?)"]


def test_refusals_are_one_line_exit_2(recs, tmp_path, capsys):
    bad = tmp_path / "ep-bad"
    bad.mkdir()
    (bad / "ep-bad.bag").write_bytes(b"#ROSBAG V2.0\n" + b"\0" * 20)
    cases = [
        (["profile", "check", str(recs["typo"])],  # the recording's metadata.yaml names an unknown profile
         "hvla profile: unknown robot profile 'unitree_g1_29' (did you mean 'unitree_g1_29dof'?)"),
        (["profile", "check", str(tmp_path)], f"hvla profile: {tmp_path}: no_bag: no bag in the folder"),
        (["profile", "check", str(bad)], f"hvla profile: {bad / 'ep-bad.bag'}: unreadable: cannot open as ros1"),
    ]
    for args, prefix in cases:
        rc, out, err = _run(args, capsys)
        assert rc == 2 and out == [], (args, out)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(prefix), err


def test_a_better_matching_profile_is_suggested(recs, capsys, tmp_path, monkeypatch):
    """A lab's own profile (``$HVLA_HOME/profiles``) the recording does not follow: the summary line
    names the shipped profile it does follow."""
    install_lab_front_cam_profile(tmp_path / "home")
    monkeypatch.setenv("HVLA_HOME", str(tmp_path / "home"))
    rc, lines, _ = _run(["profile", "check", str(recs["source"]), "--profile", "lab_g1_front_cam"], capsys)
    assert rc == 1
    assert lines[-1] == ("= does not match robot profile lab_g1_front_cam@1: 1 problem(s): missing "
                         "/front_cam/image/compressed (sensor_msgs/msg/CompressedImage); closest profile: "
                         f"{KEY} (6 of 6 required topics), try --profile {DEFAULT_PROFILE}")
