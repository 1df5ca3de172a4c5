"""Errors raised while reading raw logs. Every message names the file and the reason."""

from __future__ import annotations

import os


class RawLogError(Exception):
    """A raw log could not be read or does not satisfy the recording contract.

    Attributes:
        path: the offending file.
        reason: a short machine-friendly reason code (``unreadable``, ``missing_topic``...).
        detail: a human-readable explanation.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, detail: str):
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(f"{self.path}: {reason}: {detail}")
