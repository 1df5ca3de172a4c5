#!/usr/bin/env bash
# Install everything hvla-platform needs on a fresh Debian 12 / Python 3.11 machine. Idempotent:
# a stamp in the venv records the hash of the requirement files, so a second run is instant.
#   - apt: ffmpeg (video encode/decode for LeRobot/torchcodec), libosmesa6 (MuJoCo offscreen rendering),
#     chromium (browser test; scripts/install_ui.sh also runs npm ci for playwright-core)
#   - .venv-openpi: openpi-client 0.1.2 + openpi-server 0.1.0 (numpy < 2) for the serving compatibility
#     tests and benchmarks/policy_server.py (scripts/install_openpi_client.sh)
#   - .venv with the pinned Python dependencies (see docs/environment.md for why torch, lerobot and
#     robodm are installed the way they are)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HVLA_VENV:-.venv}"
PY="${HVLA_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

need_apt=()
for pkg in ffmpeg libosmesa6; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[install] apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Test tools, each with its own stamp (so they are checked even when .venv is up to date): the
# browser test's Chromium + playwright-core, the openpi-client venv of the serving compatibility
# tests, and Debian's docker-compose (v1 client; renders docker-compose.yml, no engine needed).
# The production image skips them (HVLA_SKIP_TEST_TOOLS=1 in deploy/Dockerfile).
if [ "${HVLA_SKIP_TEST_TOOLS:-0}" != 1 ]; then
  ./scripts/install_ui.sh
  ./scripts/install_openpi_client.sh
  if ! dpkg -s docker-compose >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "[install] apt-get install docker-compose"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  fi
fi

stamp="$VENV/.hvla-installed"
want=$(cat requirements/*.txt pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/hvla" ]; then
  exit 0
fi
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version}"'
echo "[install] creating $VENV and installing pinned dependencies (about 3 minutes)"
"$PY" -m venv "$VENV"
pipq() { "$VENV/bin/pip" install -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
# 1. the CPU build of torch first, so nothing below pulls a CUDA build
pipq "torch==2.13.0"
# 2. everything else, pinned
pipq -r requirements/runtime.txt -r requirements/test.txt
# 3. lerobot and robodm without their dependency pins (lerobot 0.4.4 would pull torch 2.10 + CUDA,
#    robodm would pull ray whose packaging>=26 conflicts with lerobot)
pipq --no-deps "lerobot==0.4.4" "robodm==0.1.0"
# 4. this project
pipq --no-deps -e .
echo "$want" > "$stamp"
echo "[install] done"
