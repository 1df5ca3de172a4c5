"""The contract of seed 003's ``episode_meta.json`` and its agreement with the frames.

Seed 003 ("Episode Metadata") writes one ``episode_meta.json`` per episode folder::

    {"skill_name": "cpu", "skill_outcome": "completed_after_correction", "grasp_verified": true,
     "grasp_commanded": 132, "grasp_actual": 85,
     "phase_counts": {"teleop": 45, "skill": 11, "correction": 10, "skill_resume": 5},
     "phase_segments": [{"phase": "teleop", "start": 0, "end": 44}, ...],
     "num_frames": 71, "fps": 30, "saved_at": "2026-02-18T14:30:15"}

:class:`EpisodeMeta` validates it strictly (a :class:`~hvla_platform.lib.core.contracts.StrictModel`:
an unknown or misspelled key is refused with the closest valid key); :func:`meta_problems` checks
that ``num_frames``, ``phase_counts`` and ``phase_segments`` agree with the phase labels of the
frames actually found (segments are inclusive frame ranges, as in the seed's example).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from hvla_platform.lib.core.contracts import StrictModel, validate_document
from hvla_platform.lib.formats.teleop.episode import PHASES

META_NAME = "episode_meta.json"

#: Seed 003's skill outcomes.
SKILL_OUTCOMES: tuple[str, ...] = ("completed", "completed_after_correction", "no_skill", "incomplete")

Phase = Literal["teleop", "skill", "correction", "skill_resume"]
_Int = Annotated[int, Field(strict=True, ge=0)]


class TeleopFormatError(ValueError):
    """A seed-003 episode folder breaks its format (a refused pickle global, a frame with a missing,
    unknown or mistyped key, a bad ``episode_meta.json``, frames that disagree with it). The message
    is one line starting with the file at fault."""


class PhaseSegment(StrictModel):
    """One entry of ``phase_segments``: frames ``start`` … ``end`` (inclusive) carry ``phase``."""

    phase: Phase
    start: _Int
    end: _Int


class EpisodeMeta(StrictModel):
    """``episode_meta.json`` of seed 003 (see the module docstring).

    ``grasp_verified`` / ``grasp_commanded`` / ``grasp_actual`` (Robotiq 0–255 positions) describe
    the skill's grasp verification; they are absent (or null) when no skill ran. ``saved_at`` is a
    local ISO date-time without zone, as the seed writes it.
    """

    skill_name: str
    skill_outcome: Literal["completed", "completed_after_correction", "no_skill", "incomplete"]
    grasp_verified: Annotated[bool, Field(strict=True)] | None = None
    grasp_commanded: Annotated[int, Field(strict=True, ge=0, le=255)] | None = None
    grasp_actual: Annotated[int, Field(strict=True, ge=0, le=255)] | None = None
    phase_counts: dict[Phase, _Int]
    phase_segments: list[PhaseSegment]
    num_frames: _Int
    fps: Annotated[float, Field(strict=True, gt=0)]
    saved_at: str

    @field_validator("saved_at")
    @classmethod
    def _iso(cls, value: str) -> str:
        try:
            dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected an ISO date-time (e.g. 2026-02-18T14:30:15), got {value!r}") from None
        return value


def parse_episode_meta(data: Any, *, source: str = META_NAME) -> EpisodeMeta:
    """Validate a parsed ``episode_meta.json`` strictly against :class:`EpisodeMeta`.

    Raises:
        TeleopFormatError: one line naming ``source`` and each problem (unknown key with the
            closest valid one, missing field, wrong type or range).
    """
    return validate_document(EpisodeMeta, data, source=source, error_cls=TeleopFormatError)


def phase_segments(phases: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """The runs of equal labels of ``phases`` as seed 003 writes them:
    ``[{"phase", "start", "end"}]`` with inclusive frame indices, in order."""
    out: list[dict[str, Any]] = []
    for i, p in enumerate(phases):
        if out and out[-1]["phase"] == p:
            out[-1]["end"] = i
        else:
            out.append({"phase": p, "start": i, "end": i})
    return out


def phase_counts(phases: list[str] | tuple[str, ...]) -> dict[str, int]:
    """``{phase: number of frames}`` for the phases present, in :data:`PHASES` order."""
    return {p: n for p in PHASES if (n := sum(1 for q in phases if q == p))}


def meta_problems(meta: EpisodeMeta, phases: list[str] | tuple[str, ...]) -> list[str]:
    """What in ``meta`` disagrees with the frames' phase labels ``phases`` (frame order): the
    frame count, the per-phase counts (a phase with 0 frames may be listed or left out) and the
    segments. Empty when they agree."""
    out = []
    if meta.num_frames != len(phases):
        out.append(f"num_frames is {meta.num_frames}, the folder holds {len(phases)} frame(s)")
    listed = {k: v for k, v in meta.phase_counts.items() if v}
    found = phase_counts(phases)
    if listed != found:
        out.append(f"phase_counts {listed} disagree with the frames' labels {found}")
    segs = [s.model_dump() for s in meta.phase_segments]
    want = phase_segments(phases)
    if segs != want:
        out.append(f"phase_segments {[(s['phase'], s['start'], s['end']) for s in segs]} disagree with the frames' "
                   f"labels {[(s['phase'], s['start'], s['end']) for s in want]}")
    return out
