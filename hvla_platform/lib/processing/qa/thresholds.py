"""QA thresholds, with the defaults used by the pipeline and why.

Every threshold is configurable per materialization (the ``episodes_hdf5`` asset's config) and
recorded in the episodes' manifest next to the results it produced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# The quality score an episode needs to enter a release unless its spec says otherwise
# (``min_quality`` in a release spec; hvla_platform.lib.processing.qa.score gives the formula).
DEFAULT_MIN_QUALITY = 0.6


@dataclass(frozen=True)
class QAThresholds:
    """Thresholds of the episode QA checks.

    Timing
        gap_factor: an inter-message interval longer than ``gap_factor`` × the nominal period
            counts as a gap; ``round(interval / period) - 1`` messages are counted as dropped.
        max_dropped_fraction: largest tolerated dropped/expected ratio per stream.
        clock_jump_s: an interval longer than this (or a negative one) is a clock jump, seconds.
        min_duration_s, max_duration_s: episode duration bounds, seconds.
        min_camera_frame_ratio: received camera frames / (duration × nominal rate), lower bound.
    Signals
        joint_limit_margin_rad: tolerance on the robot model's joint limits, radians.
        spike_k: an action step |Δa| larger than ``spike_k`` × the robust σ of that joint's steps
            (1.4826 × MAD, Rousseeuw & Croux 1993) **and** than ``spike_min_rad`` is a spike.
        spike_min_rad: absolute floor for a spike, radians per frame (command steps) or radians
            (measured-state outliers).
        state_spike_window: window of the running median of the Hampel identifier on the measured
            joint states (Hampel 1974; Pearson 2002), samples (5 at 100 Hz = 50 ms: a one- or
            two-sample outlier never becomes the median). A measured position further than
            ``spike_k`` × the robust σ of that joint's residuals **and** ``spike_min_rad`` from the
            running median is a state spike.
        chatter_step_rad: a command step at least this large counts towards chatter, radians per
            command message.
        chatter_reversals: this many consecutive sign reversals of such steps on one joint (the
            command going back and forth every message) is chatter/jitter.
        stall_motion_rad: an arm whose command is bit-identical for ``frozen_s`` or longer while one
            of its measured joints travels more than this during the hold has a stalled (frozen)
            command stream, radians (the demo expert's legitimate holds settle by ≤ 0.014 rad).
        stall_grasp_motion_rad: the same bound for a hold during which (or in the 0.5 s before which) a
            gripper command (profile ``role: gripper``) of the same side changes: the operator holds
            the arm still while the gripper closes, and contact pushes the arm; radians (simulated
            UR5e and G1-with-hands grasps deflect the held arm by ≤ 0.133 rad; planted frozen
            teleop streams move it by ≥ 0.17 rad on a robot without gripper).
        frozen_s: a joint (or the whole state) reporting bit-identical values for at least this
            long is frozen/dead, seconds (real encoders always show noise).
        max_tracking_error_rad: 95th percentile over the episode of |commanded target − measured
            position|, **per action joint**, above which the action/state divergence check fails,
            radians (good simulated and fixture episodes: ≤ 0.035 rad).
        max_joint_limit_fraction: fraction of a joint's range (the model's limits) within which a
            measured position counts as *near* its limit (reported, score-only).
        max_camera_offset_s: largest |median(camera log time − stamp) − median(joint-state log time −
            stamp)| per camera, seconds: a camera clock offset relative to the joint states, measured
            on the raw stamps before any nearest-stamp matching (the synchroniser's own bound,
            ``SyncConfig.max_camera_skew_s`` = 50 ms; transport latency counts towards it).
        min_recorded_fraction: the joint-state span must cover at least this fraction of the
            duration the recording's ``metadata.yaml`` states (``duration_s``), else it was cut.
        near_duplicate_rad: two episodes are near-duplicates when their durations agree within
            ``near_duplicate_duration_s`` and, on every joint that moves (range > ``stall_motion_rad``)
            in either, the signal fingerprints (:mod:`~hvla_platform.lib.processing.qa.duplicates`)
            differ by at most this much at every sample, radians.
        near_duplicate_duration_s: see ``near_duplicate_rad``, seconds.
        max_rms_jerk: RMS joint jerk of the action joints above which the trajectory is flagged
            as not smooth, rad/s³.
        max_joint_speed_rad_s: velocity limit of a joint whose description file states none (every
            MJCF; a URDF's ``<limit velocity>`` is used where given), rad/s: a measured joint faster
            than its limit fails ``joint_velocity``. 20 rad/s: above the fastest human
            single-joint arm movements a teleoperator makes (fast voluntary elbow/wrist movements
            peak near 10–17 rad/s, i.e. 600–1000 °/s; reaching peaks at a few rad/s), 6× the UR5e's
            rated 180 °/s (π rad/s, Universal Robots UR5e technical specification), at the top of
            the Unitree H1 URDF's arm limits (9–20 rad/s), 5× the fastest joint of the simulated G1
            demo episodes (3.8 rad/s); a one-sample 0.3 rad jump at 100 Hz (30 rad/s) exceeds it.
            The Unitree G1 URDF states 20–37 rad/s (unloaded motor speeds); a real G1 arm driven by
            a human does not come near them.
        toggle_swing_fraction, toggle_count, toggle_window_s: a command joint that swings
            ``toggle_count`` (4) times within ``toggle_window_s`` (1 s), each swing travelling at
            least ``toggle_swing_fraction`` (0.5) of the joint's model range, is toggling (an
            open/close gripper command bouncing between its states; ``command_chatter``). A grasp is
            one swing, grasp and release two; 4 half-range swings in 1 s reverse the command every
            ≤ 0.33 s, while a Robotiq 2F-85 at its top speed (150 mm/s, 85 mm stroke, Robotiq 2F-85
            manual) needs ≥ 0.28 s for half its stroke: the gripper cannot follow such a command.
    Cameras
        black_level: mean intensity (0–255) below which a frame is black.
        saturated_level, saturated_fraction: a frame with more than ``saturated_fraction`` of its
            pixels ≥ ``saturated_level`` is saturated.
        frozen_frame_mad: mean absolute difference (0–255) between consecutive source frames below
            which they count as identical; ``frozen_s`` of identical frames is a frozen camera.
        max_bad_frame_fraction: largest tolerated fraction of black/saturated/frozen/undecodable
            frames per camera (and of exposure-shifted or blurred frames, below).
    Camera image statistics (:mod:`~hvla_platform.lib.processing.qa.image_stats`; colour cameras,
    each judged against its own median over the episode's frames that are neither black nor saturated)
        max_exposure_shift_levels: a frame whose mean level departs from the camera's episode median
            by more than this is exposure-shifted (``camera_exposure_shift``), levels 0–255 (sRGB
            levels are close to perceptually uniform; 40 levels ≈ one exposure stop at mid grey).
        exposure_step_levels, exposure_step_s: a step (lights switched, an auto-exposure jump) is
            where the median levels of the ``exposure_step_s`` windows before and after a frame
            differ by more than ``exposure_step_levels``; frames of a stretch between steps whose
            median differs from the longest stretch's by more than ``exposure_step_levels`` are
            exposure-shifted too (levels, seconds).
        min_sharpness_ratio: a frame whose sharpness (variance of the Laplacian, Pech-Pacheco et al.
            2000) is below this fraction of the camera's episode median is blurred (``camera_blur``;
            a Gaussian blur of σ = 2 px on a 480p frame keeps ≈ 0.33 of it, σ = 3 px ≈ 0.19; the demo
            episodes' least sharp frame keeps ≥ 0.46 of their median, the 480p test scene's ≥ 0.8).
        near_duplicate_hash_bits: two frame fingerprints (dHash samples,
            :func:`~hvla_platform.lib.processing.qa.duplicates.frame_fingerprint`) agree at a sample
            when their hashes differ in at most this many of 64 bits; a fingerprint takes part only
            when its samples differ from each other by more than twice this (the camera sees
            motion), so a sample can match one sample of the other episode only.
    The release threshold on the quality score is the release spec's ``min_quality``.
    """

    gap_factor: float = 1.8
    max_dropped_fraction: float = 0.02
    clock_jump_s: float = 0.5
    min_duration_s: float = 1.0
    max_duration_s: float = 600.0
    min_camera_frame_ratio: float = 0.9
    joint_limit_margin_rad: float = 0.01
    spike_k: float = 8.0
    spike_min_rad: float = 0.05
    frozen_s: float = 0.5
    state_spike_window: int = 5
    chatter_step_rad: float = 0.01
    chatter_reversals: int = 4
    stall_motion_rad: float = 0.05
    stall_grasp_motion_rad: float = 0.25
    max_tracking_error_rad: float = 0.15
    max_joint_limit_fraction: float = 0.02
    max_camera_offset_s: float = 0.05
    min_recorded_fraction: float = 0.9
    near_duplicate_rad: float = 0.005
    near_duplicate_duration_s: float = 0.1
    max_rms_jerk: float = 2000.0
    max_joint_speed_rad_s: float = 20.0
    toggle_swing_fraction: float = 0.5
    toggle_count: int = 4
    toggle_window_s: float = 1.0
    black_level: float = 8.0
    saturated_level: int = 250
    saturated_fraction: float = 0.5
    frozen_frame_mad: float = 0.25
    max_bad_frame_fraction: float = 0.02
    max_exposure_shift_levels: float = 40.0
    exposure_step_levels: float = 25.0
    exposure_step_s: float = 0.5
    min_sharpness_ratio: float = 0.35
    near_duplicate_hash_bits: int = 4

    def to_dict(self) -> dict[str, Any]:
        """JSON form (recorded in manifests)."""
        return asdict(self)
