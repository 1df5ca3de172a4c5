"""hvla-platform: a Dagster-orchestrated data platform for humanoid-robot VLA training data."""

import os

__version__ = "0.1.0"

# The platform renders MuJoCo scenes offscreen only (recorder, closed-loop evaluation), on machines
# without a display or GPU. MuJoCo picks its GL backend from MUJOCO_GL when `mujoco` is first
# imported — by whichever module gets there first — so it is chosen here, once, unless the user
# already chose one (e.g. MUJOCO_GL=egl).
os.environ.setdefault("MUJOCO_GL", "osmesa")
