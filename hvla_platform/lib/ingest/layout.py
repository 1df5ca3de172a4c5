"""Lake key layout (DESIGN.md "Storage") and validation of the ids that go into keys."""

from __future__ import annotations

import datetime as dt
import re

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

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
PARTITION_INDEX = "_partition.json"


class UnsafeIdError(ValueError):
    """An id (episode, robot, day) would not make a safe, single path segment."""


def check_id(value: object, what: str) -> str:
    """Return ``value`` if it is a safe id: ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}`` (ASCII only).

    This rejects ``..``, ``/``, absolute paths, whitespace and non-ASCII look-alikes, so an id from
    an untrusted ``metadata.yaml`` can never escape its folder.

    Raises:
        UnsafeIdError: naming ``what`` and the offending value.
    """
    if not isinstance(value, str) or not _ID_RE.match(value) or value in (".", ".."):
        raise UnsafeIdError(f"{what} {value!r} is not a safe id (allowed: letters, digits, '.', '_', '-'; "
                            "must start with a letter or digit; at most 128 characters)")
    return value


def check_day(value: object) -> str:
    """Return ``value`` as ``YYYY-MM-DD`` if it is a valid calendar date.

    Raises:
        UnsafeIdError: not an ISO date.
    """
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise UnsafeIdError(f"capture date {value!r} is not an ISO date (YYYY-MM-DD)")


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
