"""Peer validation of our LeRobot releases with ``lerobot-doctor`` (an independent dataset linter).

:func:`run_lerobot_doctor` runs ``lerobot-doctor check <root> --ci --json`` on a **local** LeRobot
v3.0 dataset directory in a subprocess and parses its JSON into a :class:`DoctorReport`: one
:class:`DoctorFinding` per WARN/FAIL message, with the check group, the LeRobot episode indices and
frame indices the message names, and the feature/dimension when it names one.

How lerobot-doctor 0.2.0 finds the dataset: ``check <dataset>`` loads a local directory when the
path exists and is a directory (``meta/info.json`` must be there), a ``.zip`` when it is a file,
raises for an absolute path that does not exist, and otherwise treats the argument as a Hugging
Face ``repo_id`` and downloads it (``huggingface_hub.snapshot_download``). We therefore pass an
absolute path that we checked exists, and set ``HF_HUB_OFFLINE=1`` so that no code path can reach
the network. With ``--ci`` it prints the JSON report on stdout whatever ``--json`` says, a one-line
summary on stderr, and exits 1 when any check group is FAIL (``--fail-on fail``, the default); a
dataset it cannot load gives exit 1, no JSON and ``Error loading dataset: ...`` on stderr.

:func:`doctor_findings_to_our_checks` maps every finding to the check(s) of ours that look for the
same problem. Ours are the episode QA checks of :data:`hvla_platform.lib.processing.qa.metrics.QA_CHECKS` (on
the raw streams, before resampling), the release build's own validation, and
:func:`check_lerobot_timestamps` below (a dataset-level check on the written LeRobot parquet; it
lives in :mod:`hvla_platform.lib.dataset.timestamps` and runs on every release). Mapping table (doctor finding kind → ours):

===========================  ==========================================  ===================================
kind                         lerobot-doctor message (group)               our check(s)
===========================  ==========================================  ===================================
nan_inf                      "N NaN/Inf values", "NaN in action"          nan_inf
timestamp_non_monotonic      "non-monotonic timestamp(s)" (Temporal,      clock_jumps, dataset_timestamps
                             Per-Episode)
timestamp_gap                "dropped frame gap(s) at frame indices",     clock_jumps, dropped_messages,
                             "N dropped frame(s)"                         dataset_timestamps
fps_mismatch                 "Mean interval ... differs from expected"    dataset_timestamps
frame_index                  "frame_index not sequential", "Global        dataset_timestamps
                             index ... not sequential", "Missing
                             episode indices"
action_jump                  "sudden large action jumps", "action         action_spikes
                             jump(s)"
stuck_actuator               "col[d]: stuck/static in k/N episodes"       frozen_joints
short_episode                "shorter than N frames", "too short",        duration
                             "<=1 frame", "empty episode"
format                       metadata / info.json / data files / episode  lerobot_reload (build_release
                             meta / length mismatch / feature shape,        reloads the dataset with LeRobot
                             dtype / video missing, undecodable, fps,       and decodes a frame),
                             resolution, frame count                        episode_count, schema_stable
frozen_action                "% of ... consecutive identical actions"     — (none: ours looks for frozen
                                                                            *measured* joints, not held
                                                                            commands)
action_at_bound              "x% of values at minimum/maximum"            — (joint_limits only fails past
                                                                            the model's limits)
outlier_values               "extreme outlier(s) (>10 std from mean)"     joint_limits, action_spikes
zero_variance,               "zero variance", "constant across ALL        — (feature design, not an
constant_feature             episodes"                                      episode defect)
length_outlier               "abnormally short/long", "High episode       — (ours has absolute duration
                             length variance"                               bounds only)
chunk_size                   "shorter than chunk_size", "too short for    — (training configuration)
                             delta_timestamps"
near_duplicate               "near-duplicate episode pair(s)"             — (none)
distribution_shift           "distribution shift detected"                — (none)
stats                        "stats.json ..."                             finite, min_std (norm_stats asset)
portability                  Portability group                            — (none)
other                        anything not recognised above                — (unmapped: read the message)
===========================  ==========================================  ===================================

A finding whose set is empty is something lerobot-doctor reports that none of our checks covers;
docs/peer_validation.md discusses each of them. This module has no Dagster imports.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


#: Name of the dataset-level timestamp check implemented by :func:`check_lerobot_timestamps`.
DATASET_TIMESTAMPS = "dataset_timestamps"
#: Our release-build validation: ``build_release`` reloads the written dataset with LeRobot itself.
LEROBOT_RELOAD = "lerobot_reload"

#: doctor finding kind → our checks that look for the same problem (see the module docstring).
KIND_TO_OUR_CHECKS: dict[str, frozenset[str]] = {
    "nan_inf": frozenset({"nan_inf"}),
    "timestamp_non_monotonic": frozenset({"clock_jumps", DATASET_TIMESTAMPS}),
    "timestamp_gap": frozenset({"clock_jumps", "dropped_messages", DATASET_TIMESTAMPS}),
    "fps_mismatch": frozenset({DATASET_TIMESTAMPS}),
    "frame_index": frozenset({DATASET_TIMESTAMPS}),
    "action_jump": frozenset({"action_spikes"}),
    "stuck_actuator": frozenset({"frozen_joints"}),
    "short_episode": frozenset({"duration"}),
    "format": frozenset({LEROBOT_RELOAD, "episode_count", "schema_stable"}),
    "outlier_values": frozenset({"joint_limits", "action_spikes"}),
    "stats": frozenset({"finite", "min_std"}),
    "frozen_action": frozenset(),
    "action_at_bound": frozenset(),
    "zero_variance": frozenset(),
    "constant_feature": frozenset(),
    "length_outlier": frozenset(),
    "chunk_size": frozenset(),
    "near_duplicate": frozenset(),
    "distribution_shift": frozenset(),
    "portability": frozenset(),
    "summary": frozenset(),
    "other": frozenset(),
}

# (kind, regex) tried in order on each WARN/FAIL message; the first match wins.
_KIND_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((k, re.compile(p, re.I)) for k, p in (
    ("summary", r"^\d+/\d+ episode\(s\) flagged$|^Total (dropped|non-monotonic)|\.\.\.and \d+ more"),
    ("nan_inf", r"\b(NaN|Inf)\b"),
    ("timestamp_non_monotonic", r"non-monotonic timestamp"),
    ("timestamp_gap", r"dropped frame"),
    ("fps_mismatch", r"Mean interval .* differs from expected"),
    ("frame_index", r"frame_index not sequential|Global index column|Missing episode indices"),
    ("action_jump", r"action jump|sudden large action jumps"),
    ("stuck_actuator", r"stuck/static in"),
    ("frozen_action", r"consecutive identical"),
    ("action_at_bound", r"of values at (minimum|maximum)"),
    ("outlier_values", r"extreme outlier"),
    ("zero_variance", r"zero variance|zero std"),
    ("constant_feature", r"constant across ALL episodes|constant dimension"),
    ("chunk_size", r"chunk_size|delta_timestamps"),
    ("short_episode", r"too short|shorter than \d+ frames|<=1 frame|single frame|empty episode"),
    ("length_outlier", r"abnormally (short|long)|length variance"),
    ("near_duplicate", r"near-duplicate"),
    ("distribution_shift", r"distribution shift"),
    ("stats", r"stats\.json"),
))
# Check groups whose every non-PASS message is a format / integrity problem.
_FORMAT_GROUPS = {"Metadata & Format Compliance", "Video Integrity", "Feature Consistency"}

_EPISODE_RE = re.compile(r"\b[Ee]pisode (\d+)\b")
_EPISODE_LIST_RE = re.compile(r"(?:episodes?|short|long|frames?\))[^\[]*?:?\s*\[([\d,\s]+)\]", re.I)
_FRAMES_RE = re.compile(r"at frame indices \[([\d,\s]*)\]")
_FEATURE_DIM_RE = re.compile(r"^([A-Za-z_][\w.]*)(?:\[(\d+)\])?:")
_NEAR_DUP_RE = re.compile(r"near-duplicate episode pair\(s\) detected:")
_COUNT_RE = re.compile(r"in (\d+)/(\d+) episodes")


class DoctorError(RuntimeError):
    """lerobot-doctor could not be run, timed out, or gave no parseable report."""


@dataclass(frozen=True)
class DoctorFinding:
    """One WARN/FAIL message of a lerobot-doctor report.

    Attributes:
        group: doctor's check group (``"Temporal Consistency"``, ``"Per-Episode Summary"``, ...).
        severity: ``"WARN"`` or ``"FAIL"`` (FAIL is what doctor's ``--ci`` exit code fails on).
        message: doctor's text, verbatim.
        kind: our classification of the message (a key of :data:`KIND_TO_OUR_CHECKS`).
        episodes: LeRobot ``episode_index`` values the message names (empty: dataset-level).
        frames: frame indices within the episode the message names (``frame_index``), if any.
        feature, dim: the feature (``observation.state``) and dimension the message names, if any.
        episodes_affected: ``k`` of a ``"k/N episodes"`` message that does not list them.
        reasons: for Per-Episode Summary lines, the ``;``-separated reasons, each with its own kind.
    """

    group: str
    severity: str
    message: str
    kind: str
    episodes: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()
    feature: str | None = None
    dim: int | None = None
    episodes_affected: int | None = None
    reasons: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """Stable identifier: ``"<group> | <severity> | <message>"``."""
        return f"{self.group} | {self.severity} | {self.message}"

    @property
    def kinds(self) -> tuple[str, ...]:
        """Kinds of this finding: its reasons' kinds for a multi-reason per-episode line, else ``(kind,)``."""
        return tuple(k for k, _ in self.reasons) if self.reasons else (self.kind,)


@dataclass
class DoctorReport:
    """Parsed ``lerobot-doctor check --ci --json`` output.

    Attributes:
        dataset_root: the directory checked.
        exit_code: the CLI's exit code (1 when a group is FAIL under ``--ci``).
        overall_severity: doctor's ``PASS``/``WARN``/``FAIL``.
        groups: check group → its severity.
        findings: every WARN/FAIL message, parsed.
        raw: the JSON report as doctor printed it.
        stderr: doctor's stderr (its ``--ci`` summary line).
    """

    dataset_root: Path
    exit_code: int
    overall_severity: str
    groups: dict[str, str]
    findings: list[DoctorFinding]
    raw: dict[str, Any] = field(repr=False)
    stderr: str = ""

    @property
    def errors(self) -> list[DoctorFinding]:
        """FAIL findings."""
        return [f for f in self.findings if f.severity == "FAIL"]

    @property
    def warnings(self) -> list[DoctorFinding]:
        """WARN findings."""
        return [f for f in self.findings if f.severity == "WARN"]

    def by_group(self) -> dict[str, list[DoctorFinding]]:
        """Findings grouped by doctor check group (groups without findings are absent)."""
        out: dict[str, list[DoctorFinding]] = {}
        for f in self.findings:
            out.setdefault(f.group, []).append(f)
        return out

    def flagged_episodes(self) -> dict[int, list[DoctorFinding]]:
        """LeRobot episode index → the findings that name it."""
        out: dict[int, list[DoctorFinding]] = {}
        for f in self.findings:
            for e in f.episodes:
                out.setdefault(e, []).append(f)
        return out

    def summary_lines(self) -> list[str]:
        """Human-readable ``[SEV] group: message`` lines (for assertion messages and docs)."""
        return [f"[{f.severity}] {f.group}: {f.message}" for f in self.findings]


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


def _classify(group: str, message: str) -> str:
    for kind, pat in _KIND_PATTERNS:
        if pat.search(message):
            return kind
    if group in _FORMAT_GROUPS:
        return "format"
    if group == "Portability":
        return "portability"
    return "other"


def parse_finding(group: str, severity: str, message: str) -> DoctorFinding:
    """Parse one doctor message into a :class:`DoctorFinding` (episode/frame/feature extraction
    follows lerobot-doctor 0.2.0's message formats; unknown formats get kind ``"other"``)."""
    episodes = set(int(m) for m in _EPISODE_RE.findall(message))
    m = _EPISODE_LIST_RE.search(message)
    if m and group in ("Episode Health", "Video Integrity"):
        episodes |= set(_ints(m.group(1)))
    if _NEAR_DUP_RE.search(message):  # "N near-duplicate episode pair(s) detected: [(0, 1), ...]"
        episodes |= set(_ints(message.split("detected:", 1)[1]))
    fm = _FRAMES_RE.search(message)
    frames = _ints(fm.group(1)) if fm else ()
    feature = dim = None
    fd = _FEATURE_DIM_RE.match(message)
    if fd and not message.startswith(("Episode ", "Total ")):
        feature, dim = fd.group(1), (int(fd.group(2)) if fd.group(2) is not None else None)
    cm = _COUNT_RE.search(message)
    reasons: tuple[tuple[str, str], ...] = ()
    kind = _classify(group, message)
    if group == "Per-Episode Summary" and message.startswith("Episode ") and ":" in message:
        parts = [p.strip() for p in message.split(":", 1)[1].split(";") if p.strip()]
        reasons = tuple((_classify(group, p), p) for p in parts)
        kind = reasons[0][0] if len(reasons) == 1 else "per_episode"
    return DoctorFinding(group=group, severity=severity, message=message, kind=kind,
                         episodes=tuple(sorted(episodes)), frames=frames, feature=feature, dim=dim,
                         episodes_affected=int(cm.group(1)) if cm else None, reasons=reasons)


def parse_doctor_json(data: dict[str, Any], *, dataset_root: Path, exit_code: int, stderr: str = "") -> DoctorReport:
    """Build a :class:`DoctorReport` from doctor's JSON (``report_to_json`` layout).

    Raises:
        DoctorError: the JSON lacks ``checks`` / ``overall_severity``.
    """
    if not isinstance(data, dict) or "checks" not in data or "overall_severity" not in data:
        raise DoctorError(f"unexpected lerobot-doctor JSON (keys {sorted(data) if isinstance(data, dict) else type(data)})")
    findings: list[DoctorFinding] = []
    groups: dict[str, str] = {}
    for chk in data["checks"]:
        groups[chk["name"]] = chk["severity"]
        for msg in chk.get("messages", []):
            if msg["severity"] in ("WARN", "FAIL"):
                findings.append(parse_finding(chk["name"], msg["severity"], msg["message"]))
    return DoctorReport(dataset_root=dataset_root, exit_code=exit_code, overall_severity=data["overall_severity"],
                        groups=groups, findings=findings, raw=data, stderr=stderr)


def _doctor_executable(executable: str | os.PathLike[str] | None) -> str:
    if executable is not None:
        return str(executable)
    beside = Path(sys.executable).parent / "lerobot-doctor"  # the interpreter's own environment first
    if beside.exists():
        return str(beside)
    found = shutil.which("lerobot-doctor")
    if found is None:
        raise DoctorError("lerobot-doctor is not installed (pip install lerobot-doctor==0.2.0; see requirements/test.txt)")
    return found


def run_lerobot_doctor(dataset_root: str | os.PathLike[str], *, timeout_s: float = 300.0,
                       executable: str | os.PathLike[str] | None = None,
                       checks: list[str] | None = None) -> DoctorReport:
    """Run ``lerobot-doctor check <root> --ci --json`` on a local LeRobot dataset and parse it.

    ``HF_HUB_OFFLINE=1`` (and ``HF_DATASETS_OFFLINE=1``) are set for the subprocess, and the root
    must be an existing local directory with ``meta/info.json`` — doctor would otherwise take the
    argument for a Hugging Face repo id and try to download it.

    Args:
        dataset_root: the LeRobot dataset directory (the one holding ``meta/``, ``data/``, ``videos/``).
        timeout_s: wall-clock limit for doctor, seconds.
        executable: the ``lerobot-doctor`` script; default: next to ``sys.executable``, else on PATH.
        checks: doctor check names (``--checks``), default all.

    Raises:
        FileNotFoundError: ``dataset_root`` is not a directory with ``meta/info.json``.
        DoctorError: doctor missing, timed out, failed to load the dataset, or printed no JSON.
    """
    root = Path(dataset_root).resolve()
    if not (root / "meta" / "info.json").is_file():
        raise FileNotFoundError(f"{root} is not a local LeRobot dataset (no meta/info.json)")
    cmd = [_doctor_executable(executable), "check", str(root), "--ci", "--json"]
    if checks:
        cmd += ["--checks", ",".join(checks)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise DoctorError(f"lerobot-doctor timed out after {timeout_s} s on {root}") from exc
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise DoctorError(f"lerobot-doctor exited {proc.returncode} without a JSON report on {root}: "
                          f"{proc.stderr.strip()[-2000:]}") from exc
    report = parse_doctor_json(data, dataset_root=root, exit_code=proc.returncode, stderr=proc.stderr)
    expected = 1 if report.overall_severity == "FAIL" else 0
    if proc.returncode != expected:
        raise DoctorError(f"lerobot-doctor exit code {proc.returncode} disagrees with its report "
                          f"({report.overall_severity}): {proc.stderr.strip()[-2000:]}")
    return report


def doctor_findings_to_our_checks(report: DoctorReport) -> dict[str, set[str]]:
    """Map each finding (by :attr:`DoctorFinding.key`) to the names of our checks that look for the
    same problem, per the table in the module docstring. An empty set: none of ours covers it. A
    per-episode line with several reasons maps to the union over its reasons."""
    out: dict[str, set[str]] = {}
    for f in report.findings:
        out.setdefault(f.key, set()).update(*(KIND_TO_OUR_CHECKS[k] for k in f.kinds))
    return out


def uncovered(report: DoctorReport, ours_failing: dict[int, set[str]]) -> list[tuple[int, str, set[str]]]:
    """Episodes doctor flags that none of the mapped checks of ours flags.

    Args:
        report: the doctor report.
        ours_failing: LeRobot episode index → names of our checks failing on it.

    Returns ``[(episode_index, finding key, mapped checks)]`` for every (episode, finding) pair where
    the finding names the episode and no mapped check fails on that episode (an unmapped finding
    is always uncovered).
    """
    mapping = doctor_findings_to_our_checks(report)
    gaps: list[tuple[int, str, set[str]]] = []
    for f in report.findings:
        for ep in f.episodes:
            if not mapping[f.key] & ours_failing.get(ep, set()):
                gaps.append((ep, f.key, mapping[f.key]))
    return gaps
