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
    Cameras
        black_level: mean intensity (0–255) below which a frame is black.
        saturated_level, saturated_fraction: a frame with more than ``saturated_fraction`` of its
            pixels ≥ ``saturated_level`` is saturated.
        frozen_frame_mad: mean absolute difference (0–255) between consecutive source frames below
            which they count as identical; ``frozen_s`` of identical frames is a frozen camera.
        max_bad_frame_fraction: largest tolerated fraction of black/saturated/frozen/undecodable
            frames per camera.
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
    max_tracking_error_rad: float = 0.15
    max_joint_limit_fraction: float = 0.02
    max_camera_offset_s: float = 0.05
    min_recorded_fraction: float = 0.9
    near_duplicate_rad: float = 0.005
    near_duplicate_duration_s: float = 0.1
    max_rms_jerk: float = 2000.0
    black_level: float = 8.0
    saturated_level: int = 250
    saturated_fraction: float = 0.5
    frozen_frame_mad: float = 0.25
    max_bad_frame_fraction: float = 0.02

    def to_dict(self) -> dict[str, Any]:
        """JSON form (recorded in manifests)."""
        return asdict(self)
