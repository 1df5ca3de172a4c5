#!/usr/bin/env bash
# The RLDS venv: TensorFlow + TensorFlow Datasets (requirements/rlds.txt), in which seed 003's teleop
# targets are built as RLDS and read back (hvla_platform/lib/dataset/rlds_export.py runs
# `python -m hvla_platform.lib.dataset.rlds_worker` with this venv's interpreter; data goes over as
# .npz files). It cannot live in .venv: tensorflow-cpu 2.21.0 requires h5py<3.15, .venv pins 3.16.0,
# and TensorFlow must stay out of the Dagster code server's imports. A plain standalone venv (no
# packages shared with .venv): only numpy and the standard library of hvla_platform are imported in
# it (PYTHONPATH=<repo> is set by the caller).
# Idempotent (stamp = hash of this file and requirements/rlds.txt). ~65 s and ~1.8 GB here.
# Override the location with HVLA_RLDS_VENV (rlds_export.py reads the same variable).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${HVLA_RLDS_VENV:-.venv-rlds}"
PY="${HVLA_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp="$VENV/.hvla-installed"
want=$(cat scripts/install_rlds.sh requirements/rlds.txt | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required, found {sys.version}"'
echo "[install] creating $VENV with tensorflow-cpu and tensorflow-datasets (RLDS export; about 1 minute, ~1.8 GB)"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r requirements/rlds.txt \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
TF_CPP_MIN_LOG_LEVEL=2 "$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import sys
import tensorflow as tf
import tensorflow_datasets as tfds
assert tfds.__file__.startswith(sys.prefix), f"tensorflow_datasets imported from {tfds.__file__}, not {sys.prefix}"
assert md.version("tensorflow-datasets") == "4.9.10", md.version("tensorflow-datasets")
print(f"[install] tensorflow {tf.__version__}, tensorflow-datasets {tfds.__version__}")
PY
echo "$want" > "$stamp"
