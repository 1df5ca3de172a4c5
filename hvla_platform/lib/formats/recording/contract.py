"""What a raw humanoid recording contains: topics, ROS 2 message types, rates and joint names.

This is the contract between the recorder (``hvla sim record``, or a real robot running
``ros2 bag record``) and ingest. Topic names follow ROS 2 conventions; message types are the
standard ROS 2 interfaces (``sensor_msgs``, ``std_msgs``) except the locomotion command, which
follows WholeBodyVLA's discrete LMO command interface (seed 004: forward / lateral / yaw flags
in {-1, 0, 1} and a stance height in metres).
"""

from __future__ import annotations

ROBOT_MODEL_G1 = "unitree_g1"

# --- topics -------------------------------------------------------------------------------
TOPIC_JOINT_STATES = "/joint_states"
TOPIC_ARM_COMMAND = "/arm_controller/joint_command"
TOPIC_LOCOMOTION_COMMAND = "/locomotion/command"
TOPIC_TASK = "/task/instruction"
CAMERA_TOPICS: dict[str, str] = {
    "head": "/camera/head/image_raw/compressed",
    "wrist_right": "/camera/wrist_right/image_raw/compressed",
}

#: Camera image size written by the simulated recorder (height, width), pixels.
CAMERA_HEIGHT = 96
CAMERA_WIDTH = 128

# --- message types ------------------------------------------------------------------------
MSG_JOINT_STATE = "sensor_msgs/msg/JointState"
MSG_COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
MSG_STRING = "std_msgs/msg/String"
MSG_LOCOMOTION_COMMAND = "hvla_msgs/msg/LocomotionCommand"

#: ROS 2 ``.msg`` text of the locomotion command (seed 004's LMO interface).
LOCOMOTION_COMMAND_MSG_DEF = """\
std_msgs/Header header
int8 forward_flag
int8 lateral_flag
int8 yaw_flag
float32 stance_height
"""

#: Topics a recording must contain to be converted into episodes, with their message types.
REQUIRED_TOPICS: dict[str, str] = {
    TOPIC_JOINT_STATES: MSG_JOINT_STATE,
    TOPIC_ARM_COMMAND: MSG_JOINT_STATE,
    TOPIC_LOCOMOTION_COMMAND: MSG_LOCOMOTION_COMMAND,
    TOPIC_TASK: MSG_STRING,
    **{topic: MSG_COMPRESSED_IMAGE for topic in CAMERA_TOPICS.values()},
}

#: Nominal publishing rates of the simulated G1 recorder, Hz.
NOMINAL_RATES_HZ: dict[str, float] = {
    TOPIC_JOINT_STATES: 100.0,
    TOPIC_ARM_COMMAND: 50.0,
    TOPIC_LOCOMOTION_COMMAND: 10.0,
    TOPIC_TASK: 1.0,
    **{topic: 15.0 for topic in CAMERA_TOPICS.values()},
}

# --- Unitree G1 (29 DoF) joints, in MuJoCo Menagerie ``g1.xml`` order -----------------------
G1_LEG_JOINTS = [
    f"{side}_{j}_joint"
    for side in ("left", "right")
    for j in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")
]
G1_WAIST_JOINTS = ["waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint"]
G1_LEFT_ARM_JOINTS = [
    f"left_{j}_joint"
    for j in ("shoulder_pitch", "shoulder_roll", "shoulder_yaw", "elbow", "wrist_roll", "wrist_pitch", "wrist_yaw")
]
G1_RIGHT_ARM_JOINTS = [j.replace("left_", "right_", 1) for j in G1_LEFT_ARM_JOINTS]
G1_ARM_JOINTS = G1_LEFT_ARM_JOINTS + G1_RIGHT_ARM_JOINTS
#: All 29 actuated joints, the order of ``/joint_states`` and of the HDF5 ``observation/state``.
G1_JOINTS = G1_LEG_JOINTS + G1_WAIST_JOINTS + G1_ARM_JOINTS

#: Names of the 4 locomotion-command dimensions, in HDF5/LeRobot order.
LOCOMOTION_COMMAND_NAMES = ["forward_flag", "lateral_flag", "yaw_flag", "stance_height"]
