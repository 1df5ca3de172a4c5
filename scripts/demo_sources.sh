#!/usr/bin/env bash
# The second demo, after ./scripts/demo.sh on the same embedded default (HVLA_HOME): simulated
# seed-003 teleop episodes → raw_teleop → the planner target as LeRobot and RLDS; simulated human
# video clips → raw_human_video → the video-only locomotion release; one rollout of the main demo's
# checkpoint recorded by `hvla deploy` and ingested with its before_retraining_from_runtime
# checklist; the demo-cotrain mixture of the G1 release, the teleop target and the video bucket;
# the lineage of all of them (docs/sources_demo.md).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
exec .venv/bin/hvla demo-sources "$@"
