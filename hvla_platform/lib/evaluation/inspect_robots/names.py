"""Registry names of the hvla plugins for inspect-robots (entry points in ``pyproject.toml``).

They never collide with inspect-robots' own components (its ``openpi`` clients, ``cubepick``…):
every name starts with ``hvla_``.
"""

#: embodiment: the simulated Unitree G1 reach-and-touch task (``ReachEnv``) with the robot client's guard.
EMBODIMENT = "hvla_g1_reach"
#: policy: a client of an openpi-protocol policy server (``hvla serve``) built from its metadata.
POLICY = "hvla_openpi"
#: task: reach-and-touch scenes (seeds, instructions, in/out of the training distribution).
TASK = "hvla_reach_touch"
#: scorers of the task.
SUCCESS = "hvla_success"
STEPS = "hvla_steps"
IN_DISTRIBUTION = "hvla_in_distribution"
#: the task's target kind (what the embodiment realizes).
TARGET_KIND = "reach_touch"
