"""``hvla mixture register|build|show`` in a ``hvla`` process on a small real lake (the LeRobot
datasets of ``add_stand_ins``): a refused request is one line and exit 2 (as ``hvla``'s ``main`` reports
platform errors, cli/common.py), a build runs ``mixture_job`` on the Dagster instance under the
home and ``show`` prints the sources with their shares."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hvla_platform.cli.common import EXIT_OK, EXIT_REFUSED
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.lib.dataset.test_mixture import ARM_EGO as SPEC
from hvla_platform_tests.lib.dataset.test_mixture import add_stand_ins

#: ``hvla``'s ``main`` with only the mixture verb (cli/main.py registers it with the others): a
#: platform error is refused in one line on stderr, exit 2.
MAIN = """
import argparse, sys
from hvla_platform.cli.common import run_command
from hvla_platform.cli.mixture import add_parser
p = argparse.ArgumentParser(prog="hvla")
add_parser(p.add_subparsers(dest="command", required=True))
sys.exit(run_command(p.parse_args(sys.argv[1:])))
"""


def _run(argv: list[str], home: Path) -> tuple[int, str, str]:
    env = {**os.environ, "HVLA_HOME": str(home)}
    for var in ("HVLA_LAKE_ROOT", "HVLA_LAKE_BACKEND", "DAGSTER_HOME"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-c", MAIN, *argv], env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixture-cli")
    add_stand_ins(LocalLake(root / "home" / "lake"), root)
    return root / "home"


def _one_line(rc: int, err: str, prefix: str) -> str:
    assert rc == EXIT_REFUSED and "Traceback" not in err, (rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    return lines[0]


def test_a_misspelled_spec_is_refused_in_one_line(tmp_path, home):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace("weight: 3", "wieght: 3"))
    rc, _out, err = _run(["mixture", "register", str(path)], home)
    line = _one_line(rc, err, f"hvla mixture: {path}: ")
    assert "sources[0]: unknown key 'wieght' (did you mean 'weight'?)" in line


def test_build_of_an_unresolvable_mixture_is_refused_before_any_run(tmp_path, home):
    path = tmp_path / "typo.yaml"
    path.write_text(SPEC.replace("release: ego-manip", "release: ego-manp").replace("arm-ego", "arm-typo"))
    rc, _out, err = _run(["mixture", "build", str(path)], home)
    line = _one_line(rc, err, "hvla mixture: ")
    assert "source ego-manp: unknown release 'ego-manp' (did you mean 'ego-manip'?)" in line
    assert not (home / "lake" / "mixtures").exists()


def test_build_then_show(tmp_path, home):
    path = tmp_path / "arm-ego.yaml"
    path.write_text(SPEC)
    rc, out, err = _run(["mixture", "build", str(path)], home)
    assert rc == EXIT_OK, out + err
    assert "mixture arm-ego → arm-ego (new immutable version" in out
    assert "check mixture_release.weights_sum: passed" in out
    rc, out, _err = _run(["mixture", "build", "arm-ego"], home)
    assert rc == EXIT_OK and "mixture arm-ego → arm-ego (unchanged, cached" in out
    rc, out, _err = _run(["mixture", "show", "arm-ego"], home)
    assert rc == EXIT_OK
    assert out.splitlines()[0].startswith("mixture arm-ego (version 0 of arm-ego, hvla/arm-ego): 5 episode(s)")
    assert any(line.split()[:5] == ["arm-30fps", "arm-30fps", "rollout", "3", "75.0%"] for line in out.splitlines())
    rc, _out, err = _run(["mixture", "show", "arm-eog"], home)
    assert "mixture 'arm-eog' has no published version (did you mean 'arm-ego'?)" in _one_line(rc, err, "hvla mixture: ")
