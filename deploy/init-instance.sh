#!/usr/bin/env sh
# One-shot initialisation of the production Dagster instance ($DAGSTER_HOME/dagster.yaml, Postgres
# from DAGSTER_PG_*). Idempotent; run it at every deploy, before the webserver and daemon start:
#   docker-compose: the `dagster-init` service;  Kubernetes: see docs/deployment.md.
#   1. bring the Postgres schema up to this Dagster version (no-op when current);
#   2. set the per-stage pool limits explicitly (docs/deployment.md "Run queue"): at most this many
#      runs of each lifecycle stage in progress, however they were launched. Explicit, because
#      `concurrency.pools.default_limit` in dagster.yaml covers a pool only once the daemon has seen
#      it, so the very first dequeue after a fresh install could start two runs of a pool.
set -eu
dagster instance migrate
dagster instance concurrency set ingest "${HVLA_INGEST_POOL_LIMIT:-4}"
dagster instance concurrency set release "${HVLA_RELEASE_POOL_LIMIT:-2}"
dagster instance concurrency set training "${HVLA_TRAINING_POOL_LIMIT:-1}"

