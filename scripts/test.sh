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
# --no-loadscope-reorder: files are handed out in collection order (end-to-end modules first,
# conftest.py), not by their number of tests, which put the few-test, longest modules last.
pytest=(.venv/bin/python -m pytest -n "${HVLA_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder)
# Given test paths (any argument not starting with "-"), run just those, in one pytest.
for arg in "$@"; do
  if [ "${arg#-}" = "$arg" ]; then exec "${pytest[@]}" "$@"; fi
done
# The whole suite in two phases (docs/decisions.md, "Tests run on two workers"): everything but the
# Dagster UI and browser tests on two workers, then those alone, in one process; they must not run
# beside another test (on two cores they were starved), and waiting for the other worker's module to
# end left a core idle. Both phases run whatever the first's outcome; either failing fails this.
# Each phase has an overall bound (HVLA_TEST_PHASE1_S, default 1 h; HVLA_TEST_PHASE2_S, default
# 25 min; ~15 and ~3.5 min on an idle 2-core machine): at the bound pytest gets SIGINT and prints
# where it was and its summary, so a stuck run fails with a reason instead of at CI's own limit.
bounded() { timeout --foreground -s INT -k 120 "$1" "${@:2}"; }
rc=0
bounded "${HVLA_TEST_PHASE1_S:-3600}" "${pytest[@]}" --ignore=hvla_platform_tests/ui "$@" || rc=$?
echo "[test] the Dagster UI and browser tests, alone"
bounded "${HVLA_TEST_PHASE2_S:-1500}" .venv/bin/python -m pytest -n 0 hvla_platform_tests/ui "$@" || rc2=$?
if [ "$rc" = 0 ]; then rc=${rc2:-0}; fi
exit "$rc"
