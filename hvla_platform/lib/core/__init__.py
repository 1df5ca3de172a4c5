"""What every stage stands on: the lake and its keys, manifests and the publish helper, rights,
withdrawals (read side), settings, MLflow tracking and environment workarounds. Imports nothing above it."""
