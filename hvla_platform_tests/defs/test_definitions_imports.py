"""The code server never imports the training stack: loading the code location (what ``dagster
code-server`` / ``dagster dev`` do) leaves JAX, flax, optax, orbax, torch, LeRobot and MuJoCo out of
the process; training runs in its own process (Dagster Pipes) and evaluation imports them in its
asset body only."""

import json
import subprocess
import sys

from hvla_platform_tests.paths import REPO_ROOT

HEAVY = ("jax", "flax", "optax", "orbax", "torch", "lerobot", "mujoco")

PROBE = f"""
import json, sys
import hvla_platform.definitions
d = hvla_platform.definitions.defs()
repo = d.get_repository_def()
assert {{k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}} >= {{"checkpoint", "eval_report"}}
print(json.dumps({{"heavy": sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}),
                   "resources": sorted(repo.get_top_level_resources())}}))
"""


def test_loading_the_definitions_imports_no_training_stack():
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["heavy"] == [], out["heavy"]
    assert "training_launcher" in out["resources"]


def test_the_probe_would_see_the_training_stack():
    """The same probe after importing the policy finds JAX (so the test above can fail)."""
    probe = "import hvla_platform.lib.training.policy\n" + PROBE
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "jax" in json.loads(proc.stdout.strip().splitlines()[-1])["heavy"]
