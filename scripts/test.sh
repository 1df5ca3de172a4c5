#!/usr/bin/env bash
# The test command: install what is needed, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
# the deployment tests' PostgreSQL: installed from Debian's package and started when absent (they
# fail, not skip, without it)
./scripts/ensure_postgres.sh
exec .venv/bin/python -m pytest "$@"
