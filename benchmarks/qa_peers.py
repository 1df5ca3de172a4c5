"""The peer graders of ``benchmarks/qa_coverage.py``: how each is installed, run, and read.

Each peer is installed from PyPI into its own venv under ``<work>/peers/<name>`` and run the way
its README tells a user to grade a dataset, in its strictest mode that works on our data. Its
report is read by a small parser written from its installed source (severities, per-episode
fields), which yields :class:`PeerFinding` s: (our episode id, finding key, label, partners).

* **lerobot-doctor 0.2.0** (LeRobot release): ``lerobot-doctor check DS --ci --json`` (JSON on
  stdout; exit 1 only when a check group is FAIL) parsed by
  ``hvla_platform_tests/peer/doctor.py`` (WARN/FAIL messages, their LeRobot episode indices), plus
  its per-episode mode ``lerobot-doctor score DS --json`` (``recommended_drops``: episodes whose
  score is an outlier). Key: doctor's finding kind and feature.
* **lerobot-lint 0.1.1** (LeRobot release): ``lelint check DS --no-video --units radians --json F``.
  Severities ``warning``/``error`` count (``info`` does not); ``episode`` is the LeRobot index.
  ``--units radians`` because its ``auto`` guess reads our radians as "normalized" and then skips
  its velocity check (JITTER). ``--no-video``: its README's command; its video checks are not wired
  to real decoding in 0.1.1 either way. Checks that crash (``*_CRASHED``, e.g. its action/state
  checks, which assume one action per state dimension) are reported as notes, not findings.
  Key: check and joint. Its pip requirement ``lerobot[dataset]`` pulls ``lerobot`` 0.4.4, which pins
  ``torch<2.11``: no such torch lies on this machine's disk, so pip downloads torch 2.10 with 14
  ``nvidia-*-cu12`` wheels (several GB), which is why a plain install timed out. We install it
  ``--no-deps`` (plus ``typer==0.29.2``) into a venv that sees the project's own venv (its LeRobot 0.4.4)
  through a ``.pth`` file.
* **lerobot-quality-gates 0.1.7** (LeRobot release): ``lerobot-quality-gates check DS --format json
  --fail-on none``; findings name an episode only in their message (``Episode N``); every severity
  counts. It reads episodes only from ``meta/episodes.json``, which LeRobot v3 does not have, so on
  our release it sees 0 episodes (said in its notes).
* **kalanos 0.8.2** (``kalanos[mcap,video,numeric]``), two runs, two columns:
  ``kalanos`` grades the folder of MCAP recordings (``kalanos grade RECS --json``, its default scope
  ``numeric-core-v1``; one episode per file, id = its relative path); ``kalanos-vision`` grades the
  LeRobot release under its vision profile (``--profile vision-imitation-v1 --full-frame-scan``),
  since on MCAP that profile sees no frames in ROS ``CompressedImage`` topics ("the stream carries
  no frames") and marks every episode ``unknown``. Findings of severity ``warning``/``critical``
  count, and an episode decision of ``review``/``blocked`` (its reasons' ids). Key: metric, source
  field and channel.
* **deepen-grade 0.4.1** (``deepen-grade[mcap,lerobot]``), two columns: ``deepen-grade`` runs
  ``deepen grade FILE.mcap --json --quiet`` once per recording (it reads one ``.mcap`` file, not a
  folder of them, so its cross-episode checks say "not assessed"); ``deepen-grade-lerobot`` runs
  ``deepen grade DS --json --quiet`` on the release, where its cross-episode checks (duplicates,
  trajectory consistency, endpoint agreement) run. Per-episode checks of severity ``warn``/``fail``
  count. Key: check id.

**Catch rule.** A peer catches an episode when it reports, for that episode, a finding of its own
warn/fail severity whose key it does not also report for most (3 or more of 4) clean episodes;
dataset-level findings (no episode) never count. The same on a clean episode is a false positive,
except a duplicate-pair finding whose partners are all planted duplicates (a pair names both the
copy and its clean original; the clean original is marked ``pair`` and not counted).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hvla_platform_tests.peer.doctor import parse_doctor_json  # noqa: E402


class PeerError(Exception):
    """A peer did not install or its command line failed; the message is one line for the table."""


@dataclass(frozen=True)
class PeerFinding:
    """One problem a peer reports for one of our episodes.

    ``key`` identifies the finding across episodes (for the "reported on most clean episodes"
    rule); ``label`` is what the table shows; ``partners``: for a duplicate-pair finding, the other
    episode(s) of the pair (our ids)."""

    episode: str
    key: str
    label: str
    partners: tuple[str, ...] = ()


@dataclass
class PeerRun:
    """What one peer said: its findings, the commands run, and notes (crashes, blind spots)."""

    findings: list[PeerFinding] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    """What a peer is pointed at: the LeRobot release, its episode-index map, and the recordings."""

    release: Path
    index_to_episode: dict[int, str]
    recordings: Path
    mcap_by_episode: dict[str, Path]
    raw_dir: Path


@dataclass(frozen=True)
class Peer:
    """A peer grader: column name, PyPI version, venv name, what it reads (``"release"``: the
    LeRobot release; ``"recordings"``: the MCAP files), pip steps, runner."""

    column: str
    package: str
    version: str
    venv_name: str
    reads: str
    pip_steps: tuple[tuple[str, ...], ...]
    run: Callable[[Path, Target, float], PeerRun]
    sees_project_venv: bool = False


# --- install and run -----------------------------------------------------------------------------

def install(work: Path, peer: Peer, timeout: float) -> Path:
    """Create ``<work>/peers/<venv_name>`` and run the pip steps; reuse it when the marker records
    the same steps. Raises :class:`PeerError` (one line) on a timeout or a pip failure."""
    venv = work / "peers" / peer.venv_name
    marker = venv / ".installed"
    wanted = json.dumps({"steps": peer.pip_steps, "project_venv": peer.sees_project_venv})
    if marker.exists() and marker.read_text() == wanted:
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    if peer.sees_project_venv:  # the project's own packages (LeRobot 0.4.4, torch from this disk)
        site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
        (site / "_hvla_project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for step in peer.pip_steps:
        try:
            pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *step]
            proc = subprocess.run(pip, check=False, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PeerError(f"pip install {' '.join(step)} timed out after {timeout:.0f} s") from None
        if proc.returncode != 0:
            err = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: ")]
            why = err[-1] if err else f"exit {proc.returncode}"
            raise PeerError(f"pip install {' '.join(step)} failed: {why}")
    marker.write_text(wanted)
    return venv


def _exec(venv: Path, argv: list[str], timeout: float, raw: Path,
          ok: tuple[int, ...]) -> subprocess.CompletedProcess:
    """Run ``argv`` (its first item a script of the venv) offline; save stdout/stderr to ``raw``
    (``.out``/``.err``); raise :class:`PeerError` on a timeout or an exit code not in ``ok``."""
    env = {"HF_HUB_OFFLINE": "1", "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv), "NO_COLOR": "1",
           "COLUMNS": "200"}
    cmd = [str(venv / "bin" / argv[0]), *argv[1:]]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PeerError(f"`{' '.join(argv[:2])}` timed out after {timeout:.0f} s") from None
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.with_suffix(".out").write_text(proc.stdout)
    raw.with_suffix(".err").write_text(proc.stderr + f"\nexit code {proc.returncode}\n")
    if proc.returncode not in ok:
        last = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = last[-1][:160] if last else "no message"
        raise PeerError(f"`{' '.join(argv[:2])}` exit {proc.returncode}: {why}")
    return proc


def _json(text: str, what: str) -> dict:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise PeerError(f"{what}: output is not JSON ({exc})") from None


# --- per-peer runners ----------------------------------------------------------------------------

_PAIR = re.compile(r"\((\d+),\s*(\d+)\)")


def run_doctor(venv: Path, t: Target, timeout: float) -> PeerRun:
    """lerobot-doctor ``check --ci --json`` and ``score --json`` on the release."""
    out = PeerRun()
    argv = ["lerobot-doctor", "check", str(t.release), "--ci", "--json"]
    proc = _exec(venv, argv, timeout, t.raw_dir / "lerobot-doctor_check", ok=(0, 1))
    out.commands.append(" ".join(argv[:2] + ["DS"] + argv[3:]))
    report = parse_doctor_json(_json(proc.stdout, "lerobot-doctor check"), dataset_root=t.release,
                               exit_code=proc.returncode, stderr=proc.stderr)
    for f in report.findings:
        if f.severity not in ("WARN", "FAIL"):
            continue
        key = f"{f.kind}:{f.feature or ''}"
        pairs = [(int(a), int(b)) for a, b in _PAIR.findall(f.message)] if f.kind == "near_duplicate" else []
        for i in f.episodes:
            ep = t.index_to_episode.get(i)
            if ep is None:
                continue
            partners = tuple(t.index_to_episode[b if a == i else a] for a, b in pairs if i in (a, b))
            out.findings.append(PeerFinding(ep, key, "/".join(f.kinds), partners))
    argv = ["lerobot-doctor", "score", str(t.release), "--json"]
    proc = _exec(venv, argv, timeout, t.raw_dir / "lerobot-doctor_score", ok=(0,))
    out.commands.append(" ".join(argv[:2] + ["DS"] + argv[3:]))
    for i in _json(proc.stdout, "lerobot-doctor score").get("recommended_drops", []):
        out.findings.append(PeerFinding(t.index_to_episode[int(i)], "score:recommended_drop", "score:drop"))
    return out


def run_lelint(venv: Path, t: Target, timeout: float) -> PeerRun:
    """lerobot-lint ``check --no-video --units radians --json`` on the release."""
    out = PeerRun()
    report_path = t.raw_dir / "lerobot-lint.json"
    argv = ["lelint", "check", str(t.release), "--no-video", "--units", "radians", "--json", str(report_path)]
    _exec(venv, argv, timeout, t.raw_dir / "lerobot-lint", ok=(0, 1, 2))
    out.commands.append("lelint check DS --no-video --units radians --json F")
    if not report_path.exists():
        raise PeerError("lelint wrote no JSON report (see lerobot-lint.err)")
    crashed: Counter[str] = Counter()
    for f in _json(report_path.read_text(), "lerobot-lint")["findings"]:
        if f["severity"] not in ("warning", "error") or f["episode"] is None:
            continue
        if f["check"].endswith("_CRASHED"):
            crashed[f["check"]] += 1
            continue
        ep = t.index_to_episode[int(f["episode"])]
        out.findings.append(PeerFinding(ep, f"{f['check']}:{f['joint']}", f["check"]))
    out.notes += [f"{c} on {n} episodes" for c, n in sorted(crashed.items())]
    return out


_LQG_EP = re.compile(r"\bepisode (\d+)\b", re.IGNORECASE)


def run_quality_gates(venv: Path, t: Target, timeout: float) -> PeerRun:
    """lerobot-quality-gates ``check --format json --fail-on none`` on the release."""
    out = PeerRun()
    argv = ["lerobot-quality-gates", "check", str(t.release), "--format", "json", "--fail-on", "none"]
    proc = _exec(venv, argv, timeout, t.raw_dir / "lerobot-quality-gates", ok=(0,))
    out.commands.append("lerobot-quality-gates check DS --format json --fail-on none")
    doc = _json(proc.stdout, "lerobot-quality-gates")
    out.notes.append(f"read {doc.get('episode_count')} episodes (from meta/episodes.json, not in LeRobot v3);"
                     " "
                     f"{doc.get('finding_count')} dataset findings {doc.get('counts')}")
    for f in doc["findings"]:
        m = _LQG_EP.search(f["message"])
        if m and int(m.group(1)) in t.index_to_episode:
            ep = t.index_to_episode[int(m.group(1))]
            out.findings.append(PeerFinding(ep, f"{f['gate']}:{f['severity']}", f["gate"]))
    return out


def _kalanos_findings(doc: dict, episode_of: Callable[[str], str | None]) -> list[PeerFinding]:
    found: list[PeerFinding] = []
    for f in doc["findings"]:
        ep = episode_of(f.get("episode_id") or "")
        if ep is None or f["severity"] not in ("warning", "critical"):
            continue
        metric = f["metric_id"]
        key = f"{metric}@{f.get('source_field')}[{f.get('channel')}]"
        ev = f.get("evidence") or {}
        partners = [episode_of(p) for p in ev.get("partners", []) + ev.get("repeated_in", [])]
        found.append(PeerFinding(ep, key, metric.split(".")[-1], tuple(p for p in partners if p)))
    for e in doc["episodes"]:
        ep = episode_of(e["id"])
        if ep is not None and e["eligibility"]["status"] in ("review", "blocked"):
            for r in e["eligibility"]["reasons"]:  # a reason id ends with its metric id
                partners = {p for f in found if f.episode == ep and r["id"].endswith(f.key.split("@")[0])
                            for p in f.partners}
                found.append(PeerFinding(ep, f"decision:{r['id']}", e["eligibility"]["status"],
                                         tuple(sorted(partners))))
    return found


def run_kalanos_mcap(venv: Path, t: Target, timeout: float) -> PeerRun:
    """kalanos ``grade RECS --json`` (default scope numeric-core-v1) on the folder of recordings."""
    out = PeerRun()
    argv = ["kalanos", "grade", str(t.recordings), "--json"]
    proc = _exec(venv, argv, timeout, t.raw_dir / "kalanos_mcap", ok=(0, 1))
    out.commands.append("kalanos grade RECS --json")
    doc = _json(proc.stdout, "kalanos")
    by_file = {p.relative_to(t.recordings).as_posix(): e for e, p in t.mcap_by_episode.items()}
    out.notes.append(f"decisions {doc['eligibility_counts']}")
    out.findings = _kalanos_findings(doc, by_file.get)
    return out


def run_kalanos_vision(venv: Path, t: Target, timeout: float) -> PeerRun:
    """kalanos ``grade DS --json --profile vision-imitation-v1 --full-frame-scan`` on the release."""
    out = PeerRun()
    argv = ["kalanos", "grade", str(t.release), "--json", "--profile", "vision-imitation-v1",
            "--full-frame-scan"]
    proc = _exec(venv, argv, timeout, t.raw_dir / "kalanos_vision", ok=(0, 1))
    out.commands.append("kalanos grade DS --json --profile vision-imitation-v1 --full-frame-scan")
    doc = _json(proc.stdout, "kalanos")
    out.notes.append(f"decisions {doc['eligibility_counts']}")

    def episode_of(eid: str) -> str | None:
        m = re.search(r"episode_(\d+)$", eid)
        return t.index_to_episode.get(int(m.group(1))) if m else None

    out.findings = _kalanos_findings(doc, episode_of)
    return out


def _deepen_findings(doc: dict, episode_of: Callable[[str], str | None]) -> list[PeerFinding]:
    found = []
    for e in doc["episodes"]:
        ep = episode_of(e["episode_id"])
        for c in e["checks"] if ep is not None else ():
            if c["severity"] in ("warn", "fail"):
                partners = [episode_of(x) for x in (c.get("details") or {}).get("exact_duplicate_of", [])]
                found.append(PeerFinding(ep, c["check_id"], c["check_id"].split(".")[-1],
                                         tuple(p for p in partners if p)))
    return found


def run_deepen(venv: Path, t: Target, timeout: float) -> PeerRun:
    """deepen-grade ``grade FILE.mcap --json --quiet``, one run per recording."""
    out = PeerRun(commands=["deepen grade FILE.mcap --json --quiet (one run per recording)"])
    for ep, mcap in sorted(t.mcap_by_episode.items()):
        proc = _exec(venv, ["deepen", "grade", str(mcap), "--json", "--quiet"], timeout,
                     t.raw_dir / f"deepen_{ep}", ok=(0,))
        out.findings += _deepen_findings(_json(proc.stdout, "deepen grade"), lambda _id, ep=ep: ep)
    return out


def run_deepen_lerobot(venv: Path, t: Target, timeout: float) -> PeerRun:
    """deepen-grade ``grade DS --json --quiet`` on the release (its cross-episode checks run)."""
    out = PeerRun(commands=["deepen grade DS --json --quiet"])
    proc = _exec(venv, ["deepen", "grade", str(t.release), "--json", "--quiet"], timeout,
                 t.raw_dir / "deepen_release", ok=(0,))

    def episode_of(eid: str) -> str | None:
        m = re.fullmatch(r"episode_(\d+)", eid)
        return t.index_to_episode.get(int(m.group(1))) if m else None

    out.findings = _deepen_findings(_json(proc.stdout, "deepen grade"), episode_of)
    return out


PEERS: tuple[Peer, ...] = (
    Peer("lerobot-doctor", "lerobot-doctor", "0.2.0", "lerobot-doctor", "release",
         (("lerobot-doctor==0.2.0",),), run_doctor),
    Peer("lerobot-lint", "lerobot-lint", "0.1.1", "lerobot-lint", "release",
         (("typer==0.29.2",), ("--no-deps", "lerobot-lint==0.1.1")), run_lelint, sees_project_venv=True),
    Peer("lerobot-quality-gates", "lerobot-quality-gates", "0.1.7", "lerobot-quality-gates", "release",
         (("lerobot-quality-gates==0.1.7",),), run_quality_gates),
    Peer("kalanos", "kalanos", "0.8.2", "kalanos", "recordings",
         (("kalanos[mcap,video,numeric]==0.8.2",),), run_kalanos_mcap),
    Peer("kalanos-vision", "kalanos", "0.8.2", "kalanos", "release",
         (("kalanos[mcap,video,numeric]==0.8.2",),), run_kalanos_vision),
    Peer("deepen-grade", "deepen-grade", "0.4.1", "deepen-grade", "recordings",
         (("deepen-grade[mcap,lerobot]==0.4.1",),), run_deepen),
    Peer("deepen-grade-lerobot", "deepen-grade", "0.4.1", "deepen-grade", "release",
         (("deepen-grade[mcap,lerobot]==0.4.1",),), run_deepen_lerobot),
)


# --- the catch rule ------------------------------------------------------------------------------

def catches(findings: list[PeerFinding], episodes: list[str], clean: list[str],
            planted_duplicates: set[str]) -> dict[str, str | None]:
    """Episode id → the labels of the findings that catch it (``"a,b"``), ``"pair"`` for a clean
    episode named only by duplicate pairs with planted duplicates, or ``None`` (not caught).

    Noise: a key reported for more than half of the clean episodes. Raises nothing."""
    per_clean = Counter(k for e in clean for k in {f.key for f in findings if f.episode == e})
    noise = {k for k, n in per_clean.items() if n > len(clean) / 2}
    out: dict[str, str | None] = {}
    for ep in episodes:
        mine = [f for f in findings if f.episode == ep and f.key not in noise]
        if ep in clean:
            real = [f for f in mine if not (f.partners and set(f.partners) <= planted_duplicates)]
            out[ep] = ",".join(sorted({f.label for f in real})) if real else ("pair" if mine else None)
        else:
            out[ep] = ",".join(sorted({f.label for f in mine})) or None
    return out
