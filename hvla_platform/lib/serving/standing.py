"""A served checkpoint's standing: is it flagged by a consent withdrawal in the lake, now?

``hvla rights revoke`` (:func:`hvla_platform.lib.ops.revocation.revoke_consent`) writes
``flags/<checkpoint key>.json`` naming the revocation record. A running server asks a
:class:`Standing` before each new connection and each inference; the answer is a cached value (no
I/O on the server's event loop), refreshed from the lake every ``interval_s`` by a background
thread (:meth:`Standing.start`). So a revocation reaches a running server within ``interval_s``
plus one lake read. A flag, once seen, is kept (flags are never lifted while a server runs). A
refresh that fails (the lake unreachable) keeps the last standing and is reported through
``on_error``.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.withdrawals import artifact_flags
from hvla_platform.lib.serving.authorization import ServingRefused, flag_reason

#: default seconds between re-reads of the checkpoint's flag while serving (``--standing-interval``)
DEFAULT_INTERVAL_S = 10.0


def standing_lake(checkpoint_key: str, configured: Lake, named: Lake | None) -> Lake:
    """The lake whose revocation records decide a checkpoint's standing: ``named`` (``hvla serve
    --lake``) when given, else the ``configured`` HVLA lake — provided it knows the checkpoint (a
    committed artifact or a flag at ``checkpoint_key``, the key from the folder's committed
    manifest). A copy of a checkpoint is thereby looked up by its identity, wherever it lies.

    Raises:
        ServingRefused: the lake holds neither the checkpoint nor a flag for it (the message says to
            give ``--lake`` or ``--offline``).
    """
    lake = named if named is not None else configured
    if lake.read_manifest(checkpoint_key) is None and artifact_flags(lake, checkpoint_key) is None:
        which = "the lake given by --lake" if named is not None else "the configured HVLA lake"
        raise ServingRefused(f"checkpoint {checkpoint_key} is not in {which} ({lake.root_uri()}), so its standing "
                             "(consent revocations) cannot be checked; give --lake PATH_OR_URI naming the lake it "
                             "was trained in, or --offline to serve it without checking")
    return lake


class Standing:
    """The revocation standing of one checkpoint, re-read from the lake at most every ``interval_s``.

    Call the object (``standing()``) for the cached answer: ``None`` while the checkpoint may be
    served, else the refusal reason (one line naming the flag and its revocation record).

    Args:
        lake: the lake holding the checkpoint's revocation records (``flags/``).
        checkpoint_key: the checkpoint's lake key (from its committed manifest).
        interval_s: seconds between refreshes by the background thread (> 0).
        on_revoked: called once, from the refreshing thread, with the reason when a flag is first seen
            (an attribute: may be set after construction).
        on_error: called with the exception when a refresh fails (the last standing is kept; an
            attribute too).

    Raises:
        ValueError: ``interval_s`` is not > 0.
    """

    def __init__(self, lake: Lake, checkpoint_key: str, *, interval_s: float = DEFAULT_INTERVAL_S,
                 on_revoked: Callable[[str], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None):
        if not interval_s > 0:
            raise ValueError(f"the standing interval must be > 0 s, got {interval_s}")
        self.lake = lake
        self.checkpoint_key = checkpoint_key
        self.interval_s = float(interval_s)
        self.on_revoked = on_revoked
        self.on_error = on_error
        self._reason: str | None = None
        self.checked_at: float | None = None  # time.monotonic() of the last successful read
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self) -> str | None:
        """The cached standing: ``None`` (may be served) or the refusal reason. No I/O."""
        return self._reason

    def refresh(self) -> str | None:
        """Re-read the checkpoint's flag from the lake (blocking I/O); return the standing.

        Raises:
            OSError and the lake backend's errors: the flag could not be read (standing unchanged).
        """
        flag = artifact_flags(self.lake, self.checkpoint_key)
        self.checked_at = time.monotonic()
        if flag and self._reason is None:
            self._reason = flag_reason(flag, self.checkpoint_key)
            if self.on_revoked is not None:
                self.on_revoked(self._reason)
        return self._reason

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - reported; the server keeps its last standing
                if self.on_error is not None:
                    self.on_error(exc)

    def start(self) -> "Standing":
        """Refresh every ``interval_s`` on a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name=f"standing-{self.checkpoint_key}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the refreshing thread (waits at most one lake read)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 30.0)
