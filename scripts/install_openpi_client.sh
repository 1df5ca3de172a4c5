#!/usr/bin/env bash
# A separate small venv with the real openpi client (and openpi's reference server) for the
# compatibility tests and benchmarks/policy_server.py. It cannot live in .venv: openpi-client 0.1.2
# pins numpy < 2 (the platform uses numpy 2) and forgets to declare typing_extensions.
# Idempotent (stamp = hash of this file).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HVLA_OPENPI_VENV:-.venv-openpi}"
PY="${HVLA_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp="$VENV/.hvla-installed"
want=$(sha256sum scripts/install_openpi_client.sh | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "[install] creating $VENV with openpi-client 0.1.2 and openpi-server 0.1.0"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check \
  "openpi-client==0.1.2" "openpi-server==0.1.0" "typing_extensions==4.15.0" "websockets==17.4" "msgpack==1.2.4" "numpy==1.26.4" "dm-tree==0.1.10" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$VENV/bin/python" -c "import openpi_client.websocket_client_policy, openpi_client.action_chunk_broker, openpi_server"
echo "$want" > "$stamp"
