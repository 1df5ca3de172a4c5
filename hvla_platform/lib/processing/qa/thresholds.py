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
        spike_min_rad: absolute floor for a spike, radians per frame.
        frozen_s: a joint (or the whole state) reporting bit-identical values for at least this
            long is frozen/dead, seconds (real encoders always show noise).
        max_tracking_error_rad: median |commanded target − measured position| over the action
            joints above which the episode's action/state divergence check fails, radians.
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
    max_tracking_error_rad: float = 0.15
    max_rms_jerk: float = 2000.0
    black_level: float = 8.0
    saturated_level: int = 250
    saturated_fraction: float = 0.5
    frozen_frame_mad: float = 0.25
    max_bad_frame_fraction: float = 0.02

    def to_dict(self) -> dict[str, Any]:
        """JSON form (recorded in manifests)."""
        return asdict(self)
