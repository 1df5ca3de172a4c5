#!/usr/bin/env bash
# The test command: install what is needed, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
# the deployment tests' PostgreSQL: installed from Debian's package and started when absent (they
# fail, not skip, without it)
./scripts/ensure_postgres.sh
# two pytest-xdist workers, each taking whole test files (module fixtures are built once); on the
# 2-core CI machine this cut the suite from ~28 to ~20 minutes (docs/decisions.md, "Tests").
# HVLA_TEST_WORKERS=0 runs in this process, serially.
exec .venv/bin/python -m pytest -n "${HVLA_TEST_WORKERS:-2}" --dist loadfile "$@"
