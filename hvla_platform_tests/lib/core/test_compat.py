"""compat: torchvision importable with the CPU torch; robodm import leaves root logging alone.

Each case runs in a fresh interpreter, since both effects happen at first import.
"""

from __future__ import annotations

import subprocess
import sys
from hvla_platform_tests.paths import REPO_ROOT

REPO = REPO_ROOT


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_compat_makes_torchvision_importable():
    with_fix = _run(
        "from hvla_platform.lib.core.compat import ensure_torchvision_importable as e\n"
        "s = e()\n"
        "import torchvision\n"
        "from torchvision.transforms import v2\n"
        "import torch\n"
        "img = v2.Resize((8, 8))(torch.zeros(3, 16, 16))\n"
        "assert tuple(img.shape) == (3, 8, 8)\n"
        "assert e() == s\n"
        "print(s)\n")
    assert with_fix.returncode == 0, with_fix.stderr[-2000:]
    status = with_fix.stdout.strip().splitlines()[-1]
    plain = _run("import torchvision")
    if plain.returncode != 0:
        # the environment problem the helper exists for
        assert "torchvision::nms" in plain.stderr, plain.stderr[-2000:]
        assert status == "schemas-registered"
    else:
        assert status == "native"


def test_import_lerobot_dataset_class():
    r = _run("from hvla_platform.lib.core.compat import import_lerobot\n"
             "cls = import_lerobot()\n"
             "print(cls.__module__, cls.__name__)\n")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == ["lerobot.datasets.lerobot_dataset", "LeRobotDataset"]


def test_import_robodm_preserves_root_logger():
    setup = ("import logging, sys\n"
             "h = logging.StreamHandler(sys.stdout)\n"
             "h.setFormatter(logging.Formatter('MINE %(message)s'))\n"
             "root = logging.getLogger(); root.addHandler(h); root.setLevel(logging.WARNING)\n")
    ours = _run(setup + "from hvla_platform.lib.core.compat import import_robodm\n"
                "m = import_robodm()\n"
                "assert m.Trajectory\n"
                "print(root.level, len(root.handlers), root.handlers[0] is h, h.formatter._fmt)\n")
    assert ours.returncode == 0, ours.stderr[-2000:]
    assert ours.stdout.strip().splitlines()[-1] == "30 1 True MINE %(message)s"
    raw = _run(setup + "import robodm\nprint(root.level)\n")
    assert raw.returncode == 0, raw.stderr[-2000:]
    # robodm itself sets the root level to INFO (20): this is what import_robodm undoes
    assert raw.stdout.strip().splitlines()[-1] == "20"
