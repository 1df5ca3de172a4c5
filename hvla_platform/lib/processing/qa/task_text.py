"""Is a task instruction a real one? The ``task_non_empty`` QA check.

A language-conditioned policy learns the instruction as the label of the whole episode: an empty one,
a placeholder an operator left in the recorder ("TODO", "test", "<task>") or one with no letter at
all ("...", "123") labels the demonstration with nothing, so the episode is gated (seed 002's
checklist: "non-empty tasks"; LeRobot datasets carry one instruction per episode in ``tasks``).
"""

from __future__ import annotations

import string

#: Instructions that say nothing (compared case-insensitively, surrounding punctuation and spaces
#: removed): what recorders and operators leave in a task field they did not fill.
PLACEHOLDER_TASKS = frozenset({
    "todo", "tbd", "none", "null", "n/a", "na", "task", "test", "default", "untitled", "<task>", "placeholder",
    "...",
})

_SURROUNDING = string.punctuation + string.whitespace


def placeholder_reason(task: str) -> str:
    """Why ``task`` is not a usable instruction (``"empty"``, ``"a placeholder"``, ``"no letter"``),
    or ``""`` when it is one.

    A placeholder is one of :data:`PLACEHOLDER_TASKS` after lower-casing and stripping surrounding
    whitespace and punctuation (``"TODO:"``, ``" n/a."`` and ``"<TASK>"`` are placeholders; so is
    ``"..."``, and any instruction without a single letter).
    """
    text = task.strip()
    if not text:
        return "empty"
    key = text.lower()
    if key in PLACEHOLDER_TASKS or key.strip(_SURROUNDING) in PLACEHOLDER_TASKS:
        return "a placeholder"
    if not any(ch.isalpha() for ch in text):
        return "no letter"
    return ""
