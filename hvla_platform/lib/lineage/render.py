"""Output of lineage answers: JSON, a human-readable upstream tree, a downstream hit list."""

from __future__ import annotations

import json
from typing import Any

from hvla_platform.lib.lineage.downstream import DownstreamHit
from hvla_platform.lib.lineage.records import CLIP_TYPE, RAW_TYPE, RAW_TYPES, TELEOP_TYPE
from hvla_platform.lib.lineage.standing import UpstreamSummary, flag_note
from hvla_platform.lib.lineage.upstream import LineageNode


def to_json(result: LineageNode | list[DownstreamHit] | dict[str, Any], *, indent: int | None = 2) -> str:
    """JSON text of an upstream tree, a downstream hit list, or a dict holding them."""

    def conv(o: Any) -> Any:
        if isinstance(o, (LineageNode, DownstreamHit, UpstreamSummary)):
            return o.to_dict()
        if isinstance(o, dict):
            return {k: conv(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [conv(v) for v in o]
        return o

    return json.dumps(conv(result), indent=indent, sort_keys=False, default=str)


def _short(v: Any, width: int = 60) -> str:
    s = json.dumps(v, sort_keys=True, default=str, separators=(",", ":")) if not isinstance(v, str) else v
    return s if len(s) <= width else s[: width - 1] + "…"


def _withdrawal_text(withdrawn: dict[str, Any]) -> str:
    recs = list(withdrawn["episodes"].values())
    consents = ", ".join(sorted({str(r["consent"]) for r in recs}))
    return f"consent {consents} withdrawn {recs[0]['at']}: {recs[0]['reason']}; record {recs[0]['revocation']}"


def _node_line(n: LineageNode) -> str:
    label = n.key or n.uri
    if n.type in RAW_TYPES:
        i, r = n.info, n.rights
        if n.type == CLIP_TYPE:  # an action-free human video clip: a camera device and a demonstrator, no robot
            who = [f"raw clip {', '.join(n.episode_ids)}", f"video sha256 {n.sha256}",
                   f"device {i.get('device_id', '?')}", f"day {i.get('capture_day', '?')}",
                   f"role {i.get('learning_role', '?')}"]
        else:
            kind = {RAW_TYPE: "raw", TELEOP_TYPE: "raw teleop"}[n.type]
            content = {RAW_TYPE: "mcap", TELEOP_TYPE: "episode"}[n.type]
            who = [f"{kind} {', '.join(n.episode_ids)}", f"{content} sha256 {n.sha256}",
                   f"robot {i.get('robot_id', '?')}", f"day {i.get('capture_day', '?')}",
                   f"operator {i.get('operator', '?')}"]
        parts = [*who, f"site {i.get('site', '?')}", f"consents {','.join(r.get('consent_refs') or []) or '-'}",
                 f"licenses {','.join(r.get('licenses') or []) or '-'}"]
        line = " | ".join(parts)
        if n.withdrawn:  # kept in the lake (raw policy keep), but withdrawn
            line += f"  [WITHDRAWN: {_withdrawal_text(n.withdrawn)}]"
    elif n.withdrawn:
        line = f"WITHDRAWN input {n.key or n.uri}: episode(s) {', '.join(n.episode_ids)} ({_withdrawal_text(n.withdrawn)})"
    elif n.type in ("missing", "external"):
        line = f"{n.type.upper()} input {n.key or n.uri} (recorded sha256 {', '.join(n.recorded_sha256)[:16]}…)"
    else:
        line = f"{n.type} {label}  sha256 {n.sha256[:16]}…  {len(n.episode_ids)} episode(s)  code {n.code_version}"
    if n.sha256_matches is False and n.type not in ("missing", "external"):
        line += "  [CHANGED since consumed: recorded sha256 differs]"
    line += flag_note(n.flag)
    if n.repeated:
        line += "  (see above)"
    return line


def render_tree(node: LineageNode, *, max_children: int | None = None, show_config: bool = True,
                summary: UpstreamSummary | None = None) -> str:
    """Human-readable tree of an upstream answer (one artifact per line, box-drawing branches).

    Non-raw nodes get a ``config:`` line (top-level keys, long values cut to 60 characters).
    ``max_children`` cuts each node's children list (``… N more``). Flagged nodes end in
    ``[DO_NOT_USE: …]`` / ``[RETRAIN_REQUIRED: …]`` and withdrawn inputs read ``WITHDRAWN input``
    once the tree went through :func:`~hvla_platform.lib.lineage.standing.annotate_tree`, whose
    ``summary`` gives the last line (what the artifact was built from, with withdrawn episodes
    counted and named); without it the last line counts the raw leaves in the tree.
    """
    lines: list[str] = []

    def rec(n: LineageNode, prefix: str, child_prefix: str) -> None:
        lines.append(prefix + _node_line(n))
        if show_config and n.type not in RAW_TYPES and n.config and not n.repeated:
            cfg = ", ".join(f"{k}={_short(v)}" for k, v in sorted(n.config.items()))
            lines.append(child_prefix + ("│   " if n.children else "    ") + f"config: {cfg}")
        kids = n.children if max_children is None else n.children[:max_children]
        for i, c in enumerate(kids):
            last = i == len(kids) - 1 and len(kids) == len(n.children)
            rec(c, child_prefix + ("└── " if last else "├── "), child_prefix + ("    " if last else "│   "))
        if len(kids) < len(n.children):
            lines.append(child_prefix + f"└── … {len(n.children) - len(kids)} more")

    rec(node, "", "")
    if summary is not None:
        lines.append(summary.line())
        return "\n".join(lines)
    leaves = node.raw_episodes()
    raws = [r for r in leaves if r.type != CLIP_TYPE]
    clips = [r for r in leaves if r.type == CLIP_TYPE]
    line = (f"= {len(raws)} raw episode(s) from {len({r.info.get('robot_id') for r in raws})} robot(s), "
            f"{len({r.info.get('capture_day') for r in leaves})} capture day(s)")
    if clips:
        line += f", {len(clips)} human video clip(s) from {len({r.info.get('device_id') for r in clips})} device(s)"
    lines.append(line)
    return "\n".join(lines)


def render_hits(query: str, hits: list[DownstreamHit]) -> str:
    """Human-readable downstream answer grouped by artifact type."""
    if not hits:
        return f"nothing in this lake contains or derives from {query}"
    lines = [f"downstream of {query}: {len(hits)} artifact(s)"]
    cur = None
    for h in hits:
        if h.type != cur:
            cur = h.type
            lines.append(f"{cur}:")
        eps = h.episode_ids if len(h.episode_ids) <= 3 else h.episode_ids[:3] + [f"… {len(h.episode_ids) - 3} more"]
        lines.append(f"  {h.key}  ({len(h.episode_ids)} of the episodes: {', '.join(eps)}){flag_note(h.flag)}")
    return "\n".join(lines)
