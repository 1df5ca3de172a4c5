"""A refused request is one line on stderr naming the cause, exit code 2, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HVLA = [sys.executable, "-m", "hvla_platform.cli"]


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HVLA_HOME": str(home)}
    env.pop("HVLA_LAKE_ROOT", None)
    env.pop("HVLA_LAKE_BACKEND", None)
    return subprocess.run(HVLA + args, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("spec", "expected"), [
    ("name: bad-v1\nrepo_id: hvla/bad\nmin_qualty: 0.99\n",
     "unknown key 'min_qualty' (did you mean 'min_quality'?)"),
    ("name: bad-v1\nrepo_id: hvla/bad\npartitions:\n  - capture_day: '2026-11-10'\n",
     "partitions[0]: missing required field 'robot_id'"),
])
def test_a_misspelled_release_spec_is_refused_in_one_line(tmp_path, spec, expected):
    path = tmp_path / "bad-v1.yaml"
    path.write_text(spec)
    proc = _run(["release", "register", str(path)], tmp_path / "home")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"hvla release: {path}: ") and expected in lines[0]


def test_a_missing_spec_file_is_refused_in_one_line(tmp_path):
    proc = _run(["release", "register", str(tmp_path / "nope.yaml")], tmp_path / "home")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"hvla release: [Errno 2] No such file or directory: '{tmp_path / 'nope.yaml'}'"]


def test_a_bug_is_not_disguised_as_a_refusal():
    """Only the platform's own error classes (and a missing file the user named) are refusals."""
    from hvla_platform.cli.common import is_refusal
    from hvla_platform.lib.dataset.spec import ReleaseSpecError

    assert is_refusal(ReleaseSpecError("x"))
    assert is_refusal(FileNotFoundError(2, "No such file", "/x.yaml"))
    assert not is_refusal(ValueError("a bug"))
    assert not is_refusal(KeyError("a bug"))
    assert not is_refusal(FileNotFoundError("no filename: an internal lookup"))
