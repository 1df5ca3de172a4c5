#!/usr/bin/env bash
# The main job end to end on the embedded default (local lake in .hvla/lake, SQLite Dagster
# instance in .hvla/dagster): committed G1 recordings → raw MCAP → HDF5 episodes → LeRobot v3.0 →
# norm stats → Robo-DM cache → checkpoint → eval report.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
exec .venv/bin/hvla demo "$@"
