"""Lake key layout (DESIGN.md "Storage") and validation of the ids that go into keys."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # used with fullmatch: no trailing newline
_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_ID = 128

LANDING = "landing"
RAW = "raw-mcap"
EPISODES = "episodes-hdf5"
QUARANTINE = "quarantine"
LEROBOT = "lerobot"
NORM_STATS = "norm-stats"
ROBODM = "robodm-cache"
CHECKPOINTS = "checkpoints"
EVAL_REPORTS = "eval-reports"
RELEASE_SPECS = "release-specs"
RELEASE_VERSIONS = "release-versions"
PARTITION_INDEX = "_partition.json"


class UnsafeIdError(ValueError):
    """An id (episode, robot, day) would not make a safe, single path segment."""


def _shown(value: object) -> str:
    """``repr`` of an untrusted value, cut to 80 characters (a 10 000-character id stays readable)."""
    r = repr(value)
    return r if len(r) <= 80 else f"{r[:77]}... ({len(value) if isinstance(value, str) else len(r)} characters)"


def _why_unsafe(value: str) -> str:
    if value in (".", ".."):
        return "'.' and '..' would name a parent or the current folder"
    if len(value) > _MAX_ID:
        return f"it has {len(value)} characters, more than {_MAX_ID}"
    if not value:
        return "it is empty"
    for i, ch in enumerate(value):
        if ch == "/" or ch == "\\":
            return f"it contains a path separator {ch!r} at position {i}"
        if not ch.isascii():
            name = unicodedata.name(ch, unicodedata.category(ch))
            return f"it contains the non-ASCII character U+{ord(ch):04X} ({name}) at position {i}"
        if not (ch.isalnum() or ch in "._-"):
            return f"it contains {ch!r} at position {i}"
    return "it must start with a letter or digit"


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a safe id: ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}`` (ASCII only).

    The whole string must match (a trailing newline is not allowed). This rejects ``..``, ``/``,
    absolute paths, whitespace, control characters (NUL, RTL marks) and non-ASCII look-alikes,
    so an id from an untrusted ``metadata.yaml`` can never escape its folder. The message says
    which character is at fault (e.g. ``U+0435 (CYRILLIC SMALL LETTER IE) at position 1``) and
    shows at most 80 characters of the value.

    Raises:
        UnsafeIdError: naming ``what``, the offending value and why it is unsafe.
    """
    if value is None:
        raise UnsafeIdError(f"{what} is missing")
    if not isinstance(value, str):
        raise UnsafeIdError(f"{what} {_shown(value)} is not a string (it is a {type(value).__name__})")
    if not _ID_RE.fullmatch(value) or value in (".", ".."):
        raise UnsafeIdError(f"{what} {_shown(value)} is not a safe id: {_why_unsafe(value)} (allowed: ASCII "
                            "letters, digits, '.', '_', '-'; must start with a letter or digit; at most "
                            f"{_MAX_ID} characters)")
    return value


def check_day(value: object) -> str:
    """Return ``value`` as ``YYYY-MM-DD`` if it is a valid calendar date.

    Accepts a ``datetime.date`` (YAML's unquoted ``2026-11-10``) or a string of exactly
    ``YYYY-MM-DD``. A timestamp (``datetime``), a week date, a number or any other text is refused:
    the capture date becomes a key segment and must be unambiguous.

    Raises:
        UnsafeIdError: not an ISO calendar date.
    """
    if isinstance(value, dt.datetime):
        raise UnsafeIdError(f"capture date {_shown(value)} is a timestamp, not a date (YYYY-MM-DD)")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str) and _DAY_RE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError as exc:
            raise UnsafeIdError(f"capture date {_shown(value)} is not a valid calendar date: {exc}") from exc
    if value is None:
        raise UnsafeIdError("capture date is missing")
    raise UnsafeIdError(f"capture date {_shown(value)} is not an ISO date (YYYY-MM-DD)")


def mcap_name(episode_id: str) -> str:
    """File name of an episode's (first) MCAP, as ``ros2 bag record`` names split files."""
    return f"{episode_id}_0.mcap"


def landing_prefix(day: str, robot: str, episode: str | None = None) -> str:
    """``landing/<day>/<robot>[/<episode>]``."""
    return "/".join([LANDING, day, robot] + ([episode] if episode else []))


def raw_prefix(day: str, robot: str, episode: str | None = None) -> str:
    """``raw-mcap/<day>/<robot>[/<episode>]``."""
    return "/".join([RAW, day, robot] + ([episode] if episode else []))


def quarantine_prefix(day: str, robot: str, episode: str) -> str:
    """``quarantine/<day>/<robot>/<episode>``."""
    return "/".join([QUARANTINE, day, robot, episode])


def episodes_prefix(day: str, robot: str) -> str:
    """``episodes-hdf5/<day>/<robot>``: one artifact per partition holding ``<episode>.h5`` files."""
    return "/".join([EPISODES, day, robot])


def spec_key(release: str) -> str:
    """``release-specs/<release>.yaml``: a registered release spec."""
    return f"{RELEASE_SPECS}/{release}.yaml"


def release_version_key(spec_name: str, version: int) -> str:
    """``release-versions/<spec_name>/<version:06d>.json``: the write-once record of one immutable
    version of a release (lib/dataset/versions.py)."""
    return f"{RELEASE_VERSIONS}/{spec_name}/{version:06d}.json"


def lerobot_release_prefix(repo_id: str, release: str) -> str:
    """``lerobot/<repo_id>/<release>``: releases of one repo_id are kept side by side."""
    return f"{LEROBOT}/{repo_id}/{release}"


def norm_stats_prefix(release: str) -> str:
    """``norm-stats/<release>``: the release's openpi ``norm_stats.json``."""
    return f"{NORM_STATS}/{release}"


def robodm_prefix(release: str) -> str:
    """``robodm-cache/<release>``: the release's Robo-DM ``.vla`` cache + ``manifest.parquet``."""
    return f"{ROBODM}/{release}"


def checkpoint_key(config_name: str, exp_name: str, step: int) -> str:
    """``checkpoints/<config_name>/<exp_name>/<step>`` (DESIGN.md)."""
    return f"{CHECKPOINTS}/{config_name}/{exp_name}/{int(step)}"


def eval_report_prefix(exp_name: str, step: int | str) -> str:
    """``eval-reports/<exp_name>/<step>``: the evaluation of one checkpoint step."""
    return f"{EVAL_REPORTS}/{exp_name}/{step}"


# Supervisor QA decisions (append-only): qa-decisions/<episode>/<time>-<id>.json
QA_DECISIONS = "qa-decisions"
# Run-failure alerts: alerts/<day>/<run id>.json
ALERTS = "alerts"
# Landing refusals and drop-area conflicts, kept as evidence
REJECTED = f"{QUARANTINE}/_rejected"
CONFLICTS = f"{QUARANTINE}/_conflicts"

# Consent withdrawals (hvla_platform.lib.core.withdrawals / lib.ops.revocation)
REVOCATIONS = "rights-revocations"
AUDIT = "audit"
FLAGS = "flags"
RESTRICTED = "restricted"


def flag_key(artifact_prefix: str) -> str:
    """``flags/<artifact prefix>.json``: an artifact's do-not-use flag."""
    return f"{FLAGS}/{artifact_prefix.strip('/')}.json"


# openpi-ready exports of a release (lib/dataset/openpi_export.py)
OPENPI_EXPORTS = "openpi-exports"


def openpi_export_prefix(release: str) -> str:
    """``openpi-exports/<release>``: the release's LeRobot v2.1 export for openpi (train split and
    held-out split as two datasets under ``lerobot/``, norm stats under ``assets/``)."""
    return f"{OPENPI_EXPORTS}/{release}"


# Dataset mixtures over published releases (lib/dataset/mixture.py, docs/mixtures.md)
MIXTURE_SPECS = "mixture-specs"
MIXTURES = "mixtures"


def mixture_spec_key(name: str) -> str:
    """``mixture-specs/<name>.yaml``: a registered mixture spec."""
    return f"{MIXTURE_SPECS}/{name}.yaml"


def mixture_prefix(name: str, mixture_id: str) -> str:
    """``mixtures/<name>/<mixture id>``: one immutable version of a mixture (id ``<name>`` for
    version 0, ``<name>.<n>`` after, like release versions)."""
    return f"{MIXTURES}/{name}/{mixture_id}"


# Action-free human video (docs/human_video.md): landed and raw clips per capture day × device,
# kept apart from the robot recordings' landing/ and raw-mcap/ so neither ingest sees the other's.
HUMAN_VIDEO_LANDING = "landing-human-video"
HUMAN_VIDEO_RAW = "raw-human-video"
HUMAN_VIDEO_QUARANTINE = f"{QUARANTINE}/_human_video"


def human_video_landing_prefix(day: str, device: str, clip: str | None = None) -> str:
    """``landing-human-video/<day>/<device>[/<clip>]``."""
    return "/".join([HUMAN_VIDEO_LANDING, day, device] + ([clip] if clip else []))


def human_video_raw_prefix(day: str, device: str, clip: str | None = None) -> str:
    """``raw-human-video/<day>/<device>[/<clip>]``: one write-once raw clip (MP4 + metadata + manifest)."""
    return "/".join([HUMAN_VIDEO_RAW, day, device] + ([clip] if clip else []))


def human_video_quarantine_prefix(day: str, device: str, clip: str) -> str:
    """``quarantine/_human_video/<day>/<device>/<clip>``: why a landed clip was not published."""
    return "/".join([HUMAN_VIDEO_QUARANTINE, day, device, clip])


# Seed-003 teleop episodes (lib/ingest/teleop.py, docs/teleop.md): landed under landing/_teleop/,
# published write-once under raw-teleop/, quarantined under quarantine/_teleop/, each
# <day>/<robot>/<episode> as robot recordings are.
RAW_TELEOP = "raw-teleop"
TELEOP_LANDING = f"{LANDING}/_teleop"
TELEOP_QUARANTINE = f"{QUARANTINE}/_teleop"


def teleop_landing_prefix(day: str, robot: str, episode: str | None = None) -> str:
    """``landing/_teleop/<day>/<robot>[/<episode>]``: a landed seed-003 teleop episode folder."""
    return "/".join([TELEOP_LANDING, day, robot] + ([episode] if episode else []))


def raw_teleop_prefix(day: str, robot: str, episode: str | None = None) -> str:
    """``raw-teleop/<day>/<robot>[/<episode>]``: a write-once raw seed-003 teleop episode."""
    return "/".join([RAW_TELEOP, day, robot] + ([episode] if episode else []))


def teleop_quarantine_prefix(day: str, robot: str, episode: str) -> str:
    """``quarantine/_teleop/<day>/<robot>/<episode>``: why a teleop episode is not usable."""
    return "/".join([TELEOP_QUARANTINE, day, robot, episode])


# Rollout telemetry (docs/rollouts.md): the before_retraining_from_runtime checklist of a landed rollout
ROLLOUT_CHECKS = "rollout-checks"


def rollout_check_prefix(day: str, robot: str, episode: str | None = None) -> str:
    """``rollout-checks/<day>/<robot>[/<episode>]``: the checklist artifact of one rollout episode (its
    inputs: the raw episode and the checkpoint that produced it)."""
    return "/".join([ROLLOUT_CHECKS, day, robot] + ([episode] if episode else []))


# RLDS (TensorFlow Datasets) exports of seed 003's teleop targets (lib/dataset/rlds_export.py)
RLDS = "rlds"


def rlds_prefix(dataset_name: str) -> str:
    """``rlds/<dataset_name>``: a TFDS ``data_dir`` holding ``<dataset_name>/<version>/`` (read with
    ``tfds.builder(dataset_name, data_dir=...)``) and the dataset card."""
    return f"{RLDS}/{dataset_name}"
