"""Simulated robots (MuJoCo): table-top tasks, their recorder and a closed-loop env.

No real robot logs are available, so the platform records its own in simulation, for any robot
profile with a ``simulation`` section (``hvla sim record --profile NAME``):

* :mod:`.scene` holds what every scene shares (table, object, camera mounts, IMU and force/torque
  sensors) and :class:`~.scene.SimScene`, the compiled scene with its index maps;
* :mod:`.registry` and :mod:`.builders`: one scene builder per robot family, registered by id and
  chosen by the profile: :mod:`.model` (``g1_reach``: the Unitree G1, with rubber or Dex3 hands),
  :mod:`.h1` (``h1_reach``: the Unitree H1), :mod:`.ur5e` (``ur5e_grasp``: UR5e + Robotiq 2F-85),
  each loading the robot's MuJoCo Menagerie model from its installed package and augmenting it in
  memory;
* :mod:`.task` samples a scene and instruction and plans the scripted expert (damped-least-squares
  IK + minimum-jerk smoothing; a grasp also opens and closes the hand or gripper);
* :mod:`.core` steps the physics (position servos are the joint PD controllers), reads the
  joint encoders and sensors and renders the cameras (colour and depth);
* :mod:`.frames` makes camera frames, rendered or cheaply synthesised, with sensor noise;
* :mod:`.env` is the closed-loop environment policies are evaluated in (the default G1);
* :mod:`.recorder` writes ``ros2 bag``-like MCAP episodes with ``metadata.yaml``.

Offscreen rendering needs an OpenGL backend; without a GPU that is OSMesa: ``hvla_platform``'s
package ``__init__`` sets ``MUJOCO_GL=osmesa`` unless the caller chose one (it must be set before
``mujoco`` is first imported, by whichever module imports it first).
"""

from __future__ import annotations
