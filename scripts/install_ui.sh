#!/usr/bin/env bash
# Install what the browser test of the Dagster UI needs (hvla_platform_tests/ui, docs/ui_testing.md).
# Idempotent: does nothing when everything is in place.
#   - Debian's Chromium (/usr/bin/chromium) — Playwright's own browser download does not work on
#     machines without internet, so playwright-core drives the distribution's Chromium
#   - Node.js >= 20 and npm (checked, not installed: Debian 12's nodejs is 18, too old)
#   - hvla_platform_tests/ui/node_modules from package-lock.json (npm ci), redone when the lock
#     file changes
set -euo pipefail
cd "$(dirname "$0")/.."
UI=hvla_platform_tests/ui
CHROMIUM="${HVLA_CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$CHROMIUM" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[install_ui] apt-get install chromium"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -o DPkg::Lock::Timeout=600 chromium >/dev/null
  [ -x "$CHROMIUM" ] || { echo "[install_ui] chromium installed but $CHROMIUM is missing (set HVLA_CHROMIUM)" >&2; exit 1; }
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "[install_ui] node and npm are required (Node.js >= 20)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "[install_ui] Node.js >= 20 is required (playwright-core), found $(node --version)" >&2
  exit 1
fi

stamp="$UI/node_modules/.hvla-installed"
want=$( (cat "$UI/package.json" "$UI/package-lock.json"; node --version) | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[install_ui] npm ci in $UI"
npm ci --prefix "$UI" --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
echo "[install_ui] done"
