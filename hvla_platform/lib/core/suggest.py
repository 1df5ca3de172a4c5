"""Unknown ids are errors, with a "did you mean" suggestion drawn from the ids the lake knows.

Every verb that takes an episode, consent, customer, release or experiment id refuses one the lake
does not know (instead of recording a decision on a typo, or answering "nothing found"), naming the
closest known id (:func:`difflib.get_close_matches`) or, when nothing is close, a few known ones.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class UnknownIdError(LookupError):
    """An id names nothing in the lake (the message names what was looked for and the closest ids)."""


def did_you_mean(value: str, known: Iterable[str], *, show: int = 3) -> str:
    """A suffix for an "unknown id" message: ``" (did you mean 'x'?)"`` when an id in ``known`` is
    close to ``value``, else ``" (known: a, b, c, … N in all)"``, or ``" (none known in this lake)"``."""
    ids = sorted({str(k) for k in known})
    if not ids:
        return " (none known in this lake)"
    close = difflib.get_close_matches(str(value), ids, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    more = f", … {len(ids)} in all" if len(ids) > show else ""
    return f" (known: {', '.join(ids[:show])}{more})"


def require_known(value: str, known: Iterable[str], what: str, *, hint: str = "") -> str:
    """``value`` if it is one of ``known``.

    Raises:
        UnknownIdError: ``unknown <what> '<value>' (did you mean '<closest>'?)<hint>``.
    """
    ids = set(known)
    if value in ids:
        return value
    raise UnknownIdError(f"unknown {what} {value!r}{did_you_mean(value, ids)}{hint}")
