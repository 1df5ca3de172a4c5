#!/usr/bin/env bash
# A separate venv with LeRobot 0.3.3, the newest PyPI release that reads LeRobot dataset format
# v2.1 (the format openpi's pinned LeRobot reads), used by the tests that load our openpi export
# (hvla_platform_tests/peer/test_openpi_export_v21.py). It cannot live in .venv: .venv holds
# LeRobot 0.4.4 (v3.0 only) and datasets 4.x, while 0.3.3 needs datasets <= 3.6.0.
#
# lerobot 0.3.3 also pins torch < 2.8 / torchvision < 0.23 / torchcodec < 0.6 (a multi-GB CUDA
# download). We do not install them: the venv sees .venv's site-packages through a .pth file that
# sorts AFTER its own site-packages, so torch, torchvision, torchcodec, av, numpy, pyarrow... come
# from .venv, and only the packages whose versions must differ (datasets and what it pins) are
# installed here. lerobot itself is installed with --no-deps; the check at the end imports its
# v2.1 reader (LeRobotDataset, CODEBASE_VERSION == "v2.1") so a broken mix fails the install.
# Idempotent (stamp = hash of this file and of .venv's own stamp, so a rebuilt .venv is re-checked).
# It needs an installed .venv: called before .venv exists (the first run of scripts/install.sh on a
# fresh machine), it says so and does nothing; install.sh calls it again once .venv is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN="${HVLA_VENV:-.venv}"
VENV="${HVLA_LEROBOT_V21_VENV:-.venv-lerobot-v21}"
PY="$MAIN/bin/python"
if [ ! -f "$MAIN/.hvla-installed" ] || [ ! -x "$PY" ]; then
  echo "[install] $VENV waits for $MAIN (it takes torch & co. from there): not installed yet"
  exit 0
fi
stamp="$VENV/.hvla-installed"
want=$( (cat scripts/install_lerobot_v21.sh "$MAIN/.hvla-installed") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "[install] creating $VENV with lerobot 0.3.3 (dataset format v2.1), torch & co. from $MAIN"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
own=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
main_sp=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# "zz-" sorts after every other .pth: site adds .pth directories in file-name order, after the
# venv's own site-packages, so the venv's own packages win over .venv's
echo "$(cd "$main_sp" && pwd)" > "$own/zz-hvla-main-venv.pth"
"$VENV/bin/pip" install -q --disable-pip-version-check --no-deps "lerobot==0.3.3" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
# datasets 3.6.0 (lerobot 0.3.3: datasets <= 3.6.0) and the versions it pins below .venv's
# (fsspec <= 2025.3.0, dill < 0.3.9, multiprocess < 0.70.17); its other requirements are
# satisfied by .venv's packages, which pip sees through the .pth file
"$VENV/bin/pip" install -q --disable-pip-version-check --no-warn-conflicts "datasets==3.6.0" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import sys
import lerobot.datasets.lerobot_dataset as ld
import torch
assert ld.__file__.startswith(sys.prefix), f"lerobot imported from {ld.__file__}, not from {sys.prefix}"
assert not torch.__file__.startswith(sys.prefix), f"torch was installed into {sys.prefix}"
assert md.version("lerobot") == "0.3.3", md.version("lerobot")
assert ld.CODEBASE_VERSION == "v2.1", ld.CODEBASE_VERSION
assert md.version("datasets") == "3.6.0", md.version("datasets")
print(f"[install] lerobot {md.version('lerobot')} (reads {ld.CODEBASE_VERSION}), datasets {md.version('datasets')}, torch {torch.__version__}")
PY
echo "$want" > "$stamp"
