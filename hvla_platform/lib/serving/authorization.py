"""May this checkpoint be served for this deployment target? Decided before a server starts.

A checkpoint directory carries seed 000's ``checkpoint_manifest.yaml`` with ``serving_allowed`` /
``serving_blocked`` derived from its training data's rights. Serving is refused when the target is
not in ``serving_allowed``, when the checkpoint's training data has passed its retention date, or
when the checkpoint is flagged by a consent withdrawal (``retrain_required``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from hvla_platform.lib.core.withdrawals import artifact_flags
from hvla_platform.lib.core.rights import SERVING_USES, Rights, RightsError
from hvla_platform.lib.core.lake import MANIFEST_NAME, Lake


class ServingRefused(RightsError):
    """The checkpoint may not be served for the requested use (the message says why)."""


def authorize_serving(step_dir: str | Path, use: str, *, lake: Lake | None = None, checkpoint_key: str | None = None,
                      today: dt.date | None = None) -> dict[str, Any]:
    """Check that the checkpoint at ``step_dir`` may be served for ``use``; return its manifest.

    Args:
        step_dir: ``checkpoints/<config>/<exp>/<step>/`` on local disk.
        use: a deployment target (one of ``rights.SERVING_USES``).
        lake, checkpoint_key: where to look for a consent-withdrawal flag on the checkpoint.

    Raises:
        ServingRefused: unknown target, target blocked by the data's rights, retention passed, or
            the checkpoint is flagged.
    """
    if use not in SERVING_USES:
        raise ServingRefused(f"unknown deployment target {use!r}; known: {list(SERVING_USES)}")
    step_dir = Path(step_dir)
    manifest = yaml.safe_load((step_dir / "checkpoint_manifest.yaml").read_text())
    allowed = list(manifest.get("serving_allowed") or [])
    if use not in allowed:
        raise ServingRefused(f"checkpoint {manifest.get('checkpoint', step_dir)} may not be served for {use!r}: its "
                             f"training data allows serving only for {allowed or 'nothing'} "
                             f"(blocked: {manifest.get('serving_blocked')})")
    hv = step_dir / MANIFEST_NAME
    if hv.exists():
        import json

        rights = Rights.from_dict(json.loads(hv.read_text())["rights"])
        if rights.is_expired(today or dt.date.today()):
            raise ServingRefused(f"the training data's retention ended on {rights.retention_until.isoformat()}")
    if lake is not None and checkpoint_key:
        flag = artifact_flags(lake, checkpoint_key)
        if flag:
            raise ServingRefused(f"checkpoint {checkpoint_key} is flagged {flag['status']}: {flag['reason']} "
                                 f"(consent {flag.get('consent')})")
    return manifest
