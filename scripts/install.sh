#!/usr/bin/env bash
# Install everything hvla-platform needs on a fresh Debian 12 / Python 3.11 machine. Idempotent:
# a stamp in the venv records the hash of the requirement files, so a second run is instant.
#   - apt: ffmpeg (video encode/decode for LeRobot/torchcodec), libosmesa6 (MuJoCo offscreen rendering),
#     chromium (browser test; scripts/install_ui.sh also runs npm ci for playwright-core)
#   - .venv-openpi: openpi-client 0.1.2 + openpi-server 0.1.0 (numpy < 2) for the serving compatibility
#     tests and benchmarks/policy_server.py (scripts/install_openpi_client.sh)
#   - .venv-lerobot-v21: LeRobot 0.3.3, the v2.1 reader the openpi export is tested with
#     (scripts/install_lerobot_v21.sh; torch & co. come from .venv)
#   - .venv-rlds: TensorFlow + TensorFlow Datasets, in which seed 003's teleop targets are built as
#     RLDS (scripts/install_rlds.sh; a runtime part, also in the production image: tensorflow-cpu
#     2.21.0 needs h5py<3.15, .venv pins 3.16.0)
#   - .venv with the pinned Python dependencies (see docs/environment.md for why torch, lerobot and
#     robodm are installed the way they are)
# PostgreSQL, the deployment tests' server, is installed and started by scripts/ensure_postgres.sh,
# which scripts/test.sh runs before pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HVLA_VENV:-.venv}"
PY="${HVLA_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

# Every missing Debian package in one `apt-get update` (each costs seconds on a fresh machine): the
# runtime's, and the test tools' Chromium and docker-compose (scripts/install_ui.sh and the block
# below keep their own checks, so each of them still works alone, but find these installed).
need_apt=()
need_apt_norec=()
for pkg in ffmpeg libosmesa6; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${HVLA_SKIP_TEST_TOOLS:-0}" != 1 ]; then
  [ -x "${HVLA_CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
  dpkg -s docker-compose >/dev/null 2>&1 || need_apt_norec+=(docker-compose)
fi
if [ "${#need_apt[@]}" -gt 0 ] || [ "${#need_apt_norec[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  if [ "${#need_apt[@]}" -gt 0 ]; then
    echo "[install] apt-get install ${need_apt[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${need_apt[@]}" >/dev/null
  fi
  if [ "${#need_apt_norec[@]}" -gt 0 ]; then
    echo "[install] apt-get install --no-install-recommends ${need_apt_norec[*]}"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 --no-install-recommends \
      "${need_apt_norec[@]}" >/dev/null
  fi
fi

# Test tools, each with its own stamp (so they are checked even when .venv is up to date): the
# browser test's Chromium + playwright-core, the openpi-client venv of the serving compatibility
# tests, and Debian's docker-compose (v1 client; renders docker-compose.yml, no engine needed).
# The production image skips them (HVLA_SKIP_TEST_TOOLS=1 in deploy/Dockerfile).
if [ "${HVLA_SKIP_TEST_TOOLS:-0}" != 1 ]; then
  ./scripts/install_ui.sh
  ./scripts/install_openpi_client.sh
  ./scripts/install_lerobot_v21.sh
  if ! dpkg -s docker-compose >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "[install] apt-get install docker-compose"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  fi
fi

# The RLDS venv is standalone (nothing shared with .venv), with its own stamp.
./scripts/install_rlds.sh

stamp="$VENV/.hvla-installed"
want=$(cat requirements/runtime.txt requirements/lerobot.txt requirements/test.txt pyproject.toml scripts/install.sh \
  | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/hvla" ]; then
  exit 0
fi
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version}"'
echo "[install] creating $VENV and installing pinned dependencies (about 3 minutes, ~7.5 GB)"
"$PY" -m venv "$VENV"
pipq() { "$VENV/bin/pip" install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
# 1. torch first, the release requirements/runtime.txt's torchvision and torchcodec are built for
#    (docs/environment.md, "torch": no CPU torch here has a matching torchvision, so this is PyPI's
#    CUDA build with its nvidia-* libraries; the image's build finds 2.14.1+cpu on the CPU index)
pipq "torch==2.14.1"
# 2. everything else, pinned, in one resolve: runtime, what lerobot needs (its dataset modules and
#    its own command-line tools), test tools
pipq -r requirements/runtime.txt -r requirements/lerobot.txt -r requirements/test.txt
# torch's triton (GPU kernels only, ~0.9 GB) goes: torch imports it whenever torchvision is
# imported, and its bundled LLVM crashes a process that already rendered MuJoCo with OSMesa (which
# loads Debian's libLLVM) -- a release or evaluation run after simulation (docs/environment.md)
if "$VENV/bin/pip" show -q triton >/dev/null 2>&1; then "$VENV/bin/pip" uninstall -y -q triton; fi
# 3. lerobot and robodm without their dependency pins (lerobot 0.4.4's torch<2.11, torchvision<0.26
#    and torchcodec<0.11 would replace the matching set; robodm would pull ray, whose
#    packaging>=26 conflicts with lerobot); what they need is in requirements/
pipq --no-deps "lerobot==0.4.4" "robodm==0.1.0"
# 4. this project
pipq --no-deps -e .
echo "$want" > "$stamp"
# .venv-lerobot-v21 takes torch & co. from .venv, so on a fresh machine it can only be made now
# (the call in the test-tools block above covers a machine whose .venv was already installed)
if [ "${HVLA_SKIP_TEST_TOOLS:-0}" != 1 ]; then ./scripts/install_lerobot_v21.sh; fi
echo "[install] done"
