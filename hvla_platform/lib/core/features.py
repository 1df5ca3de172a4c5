"""Every feature key the platform writes or reads, defined once.

Two spellings of the same features exist on disk:

* **LeRobot** (dataset format v3.0, ``meta/info.json`` ``features``): dotted names —
  ``observation.state`` (T, D) float32, ``action`` (T, A) float32,
  ``observation.images.<camera>`` (T, H, W, 3) uint8 video frames.
* **Robo-DM** ``.vla`` streams and the policy's observation dict (what the policy server receives
  over openpi's wire protocol): slash names — ``observation/state``, ``action``,
  ``observation/images/<camera>``.

openpi's ``norm_stats.json`` keys its statistics ``state`` and ``actions``
(openpi ``normalize.py`` NormStats); :data:`NORM_STATS_KEYS` maps them to the LeRobot columns.
"""

from __future__ import annotations

# LeRobot dataset features
STATE = "observation.state"
ACTION = "action"
LOCOMOTION_COMMAND = "observation.locomotion_command"
IMAGE_PREFIX = "observation.images."

# Robo-DM streams / policy observation keys
VLA_STATE = "observation/state"
VLA_ACTION = "action"
VLA_LOCOMOTION_COMMAND = "observation/locomotion_command"
VLA_IMAGE_PREFIX = "observation/images/"

#: Robo-DM stream name → LeRobot feature key (cameras: :data:`VLA_IMAGE_PREFIX` → :data:`IMAGE_PREFIX`).
VLA_TO_LEROBOT = {VLA_STATE: STATE, VLA_ACTION: ACTION, VLA_LOCOMOTION_COMMAND: LOCOMOTION_COMMAND}

#: openpi norm-stats key → LeRobot column it is computed from.
NORM_STATS_KEYS: dict[str, str] = {"state": STATE, "actions": ACTION}
