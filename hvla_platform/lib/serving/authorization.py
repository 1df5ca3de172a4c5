"""May this checkpoint be served for this deployment target? Decided before a server starts.

A served checkpoint folder must be a committed lake artifact, unmodified: its ``_hvla_manifest.json``
(:data:`~hvla_platform.lib.core.lake.MANIFEST_NAME`, written last when the artifact was published)
lists every file with its sha256 (:func:`verify_checkpoint`). Its rights, allowed serving uses and
identity (``artifact_key``) are taken from that committed manifest, never from the editable
``checkpoint_manifest.yaml`` (which must agree with it). Serving is refused when the target is not
in the committed ``serving_allowed``, when the training data has passed its retention date, or when
the checkpoint is flagged by a consent withdrawal (``retrain_required``; see
:mod:`hvla_platform.lib.serving.standing` for the re-checks while serving).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import yaml

from hvla_platform.lib.core.withdrawals import artifact_flags
from hvla_platform.lib.core.rights import SERVING_USES, RightsError
from hvla_platform.lib.core.lake import MANIFEST_NAME, Lake, sha256_file
from hvla_platform.lib.core.manifest import CheckpointManifest, ManifestError, parse_manifest

#: the editable copy of the serving allowance inside a checkpoint folder (training's ``MANIFEST_FILE``)
EDITABLE_MANIFEST = "checkpoint_manifest.yaml"
#: fields of the editable copy that must equal the committed manifest's
_MIRRORED = ("serving_allowed", "serving_blocked")


class ServingRefused(RightsError):
    """The checkpoint may not be served for the requested use (the message says why)."""


class CheckpointTampered(ServingRefused):
    """The checkpoint folder is not committed, or differs from its committed manifest."""


def verify_checkpoint(step_dir: str | Path) -> CheckpointManifest:
    """Check every file of a checkpoint folder against its committed ``_hvla_manifest.json``.

    Order: the manifest exists and is a checkpoint manifest; ``checkpoint_manifest.yaml``'s
    ``serving_allowed``/``serving_blocked`` equal the committed ones; no file was added or removed;
    every file has its committed size and sha256 (sizes first, then hashes: about 2 s per GiB at the
    ~500 MiB/s sha256 measured on a shared 2-core host; the 1.5 MB demo checkpoint takes 10-17 ms).

    Args:
        step_dir: a checkpoint folder (in a lake or a copy of one).

    Returns:
        The committed manifest (identity: ``artifact_key``; rights; serving allowance).

    Raises:
        CheckpointTampered: no manifest (an uncommitted folder), a manifest that is not a checkpoint's,
            an editable manifest disagreeing with it, or a file added, missing or changed (named).
    """
    d = Path(step_dir)
    committed = d / MANIFEST_NAME
    if not committed.is_file():
        raise CheckpointTampered(f"checkpoint folder {d} is not committed: it has no {MANIFEST_NAME}; serve a "
                                 "checkpoint published to the lake (or an unmodified copy of one)")
    try:
        manifest = parse_manifest(json.loads(committed.read_text()), source=str(committed), model=CheckpointManifest)
    except (ValueError, ManifestError) as exc:
        raise CheckpointTampered(f"checkpoint folder {d}: {MANIFEST_NAME} is not a valid checkpoint manifest: "
                                 f"{exc}") from exc
    if not manifest.files:
        raise CheckpointTampered(f"checkpoint folder {d}: {MANIFEST_NAME} lists no files, so it cannot be verified")
    editable_path = d / EDITABLE_MANIFEST
    if editable_path.is_file():
        editable = yaml.safe_load(editable_path.read_text()) or {}
        for field in _MIRRORED:
            mine, theirs = sorted(editable.get(field) or []), sorted(getattr(manifest, field))
            if mine != theirs:
                added, dropped = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
                raise CheckpointTampered(
                    f"checkpoint folder {d}: {EDITABLE_MANIFEST} disagrees with the committed {MANIFEST_NAME}: "
                    f"{field} {mine} ≠ committed {theirs}" + (f" (adds {added})" if added else "")
                    + (f" (drops {dropped})" if dropped else ""))
    on_disk = {p.relative_to(d).as_posix(): p for p in d.rglob("*") if p.is_file() and p.name != MANIFEST_NAME}
    listed = {f.path: f for f in manifest.files}
    modified = f"checkpoint folder {d} differs from its committed {MANIFEST_NAME}:"
    for rel in sorted(set(on_disk) - set(listed)):
        raise CheckpointTampered(f"{modified} {rel} was added")
    for rel in sorted(set(listed) - set(on_disk)):
        raise CheckpointTampered(f"{modified} {rel} is missing")
    for rel, entry in sorted(listed.items()):
        size = on_disk[rel].stat().st_size
        if size != entry.bytes:
            raise CheckpointTampered(f"{modified} {rel} changed ({size} bytes, committed {entry.bytes})")
    for rel, entry in sorted(listed.items()):
        got = sha256_file(on_disk[rel])
        if got != entry.sha256:
            raise CheckpointTampered(f"{modified} {rel} changed (sha256 {got[:12]}…, committed {entry.sha256[:12]}…)")
    return manifest


def flag_reason(flag: dict[str, Any], checkpoint_key: str) -> str:
    """One line naming a checkpoint's do-not-use flag and the revocation record behind it."""
    return (f"checkpoint {checkpoint_key} is flagged {flag['status']}: {flag['reason']} "
            f"(consent {flag.get('consent')} withdrawn {flag.get('at')}; revocation record "
            f"{flag.get('revocation') or 'not named'})")


def authorize_serving(step_dir: str | Path, use: str, *, lake: Lake | None = None, checkpoint_key: str | None = None,
                      today: dt.date | None = None) -> CheckpointManifest:
    """Check that the checkpoint at ``step_dir`` may be served for ``use``; return its committed manifest.

    Args:
        step_dir: ``checkpoints/<config>/<exp>/<step>/`` on local disk (a committed artifact or a copy).
        use: a deployment target (one of ``rights.SERVING_USES``).
        lake: where to look for a consent-withdrawal flag on the checkpoint (by its committed
            ``artifact_key``); None: not looked up here (the caller says why).
        checkpoint_key: the lake key the caller expects (e.g. the key it fetched); refused when the
            committed manifest names another.

    Raises:
        CheckpointTampered: see :func:`verify_checkpoint`.
        ServingRefused: another ``checkpoint_key``, unknown target, target not in the committed ``serving_allowed``, retention
            passed, or the checkpoint is flagged in ``lake``.
    """
    if use not in SERVING_USES:
        raise ServingRefused(f"unknown deployment target {use!r}; known: {list(SERVING_USES)}")
    manifest = verify_checkpoint(step_dir)
    key = manifest.artifact_key
    if checkpoint_key is not None and checkpoint_key.strip("/") != key:
        raise CheckpointTampered(f"checkpoint folder {step_dir} was committed as {key}, not {checkpoint_key}")
    if use not in manifest.serving_allowed:
        raise ServingRefused(f"checkpoint {key} may not be served for {use!r}: its training data allows serving "
                             f"only for {manifest.serving_allowed or 'nothing'} (blocked: {manifest.serving_blocked})")
    rights = manifest.rights_obj
    if rights.is_expired(today or dt.date.today()):
        raise ServingRefused(f"the training data's retention ended on {rights.retention_until.isoformat()}")
    if lake is not None:
        flag = artifact_flags(lake, key)
        if flag:
            raise ServingRefused(flag_reason(flag, key))
    return manifest
