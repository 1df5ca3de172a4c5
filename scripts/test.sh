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
# One math thread per worker: the two workers already fill the two cores, and an OpenMP/BLAS pool
# sized to the machine in each of them (torch, numpy) oversubscribes it, with OpenMP's spinning
# threads taking turns: LeRobot's trainer test took 305 s beside the other worker, 89 s alone
# (docs/decisions.md, "Tests run on two workers"). Set the variables to override.
if [ "${HVLA_TEST_WORKERS:-2}" != "0" ]; then
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}" \
         OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
fi
exec .venv/bin/python -m pytest -n "${HVLA_TEST_WORKERS:-2}" --dist loadfile "$@"
