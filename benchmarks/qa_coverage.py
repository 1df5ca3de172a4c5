"""QA coverage on the planted-defect suite: which check of ours catches each planted defect, its
score, whether it is gated, false positives on the clean episodes, and the peer graders beside it.

    .venv/bin/python benchmarks/qa_coverage.py [--work DIR] [--no-peers] [--peer-timeout S]

The suite is ``hvla_platform_tests/fixtures/planted.py`` (13 defect kinds × 2 variants, 4 clean
episodes; real MCAP written through the recorder's encoder), sent through the real pipeline
(landing → raw → conversion with QA). "Gated" means the episode fails a gate (score 0) or is refused
at conversion, so a default release (``min_quality`` 0.6) leaves it out unless a supervisor approves
it; the last column says whether a default release built from the lake takes it.

Peers run each in its own venv under ``<work>/peers/<name>`` (``python -m venv`` + ``pip install
<name>==<version>``); a peer that does not install or whose command line is not recognised is
skipped with the reason printed. LeRobot-dataset peers run once on a LeRobot v3 release of every
converted episode (built with ``min_quality: 0`` and the defects approved, so they reach it); MCAP
peers run on each recording. A peer *catches* an episode when its output names something for that
episode (lines that mention its episode index, or its own per-file run; numbers masked) that it
does not name for half or more of all episodes (dataset-wide remarks), or, per file, its exit code
differs from the most common one; the same rule on a clean episode is a false positive. This is a
benchmark, not a test: peers and their output formats change.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hvla_platform.lib.core.lake import LocalLake  # noqa: E402
from hvla_platform.lib.dataset.build import build_release  # noqa: E402
from hvla_platform.lib.dataset.releases import select_episodes  # noqa: E402
from hvla_platform.lib.dataset.spec import ReleaseSpec  # noqa: E402
from hvla_platform.lib.processing.qa.decisions import record_decision  # noqa: E402
from hvla_platform.lib.processing.qa.score import GATES  # noqa: E402
from hvla_platform_tests.fixtures.planted import DAY, DAY2, KINDS, ROBOT, SUITE, run_suite, write_suite  # noqa: E402

#: (name, version, target, candidate argument lists; ``{path}`` is the dataset dir or MCAP file).
PEERS = [
    ("lerobot-doctor", "0.2.0", "lerobot", [["lerobot-doctor", "check", "{path}", "--ci", "--json"]]),
    ("lerobot-quality-gates", "0.1.7", "lerobot", [["lerobot-quality-gates", "check", "{path}", "--format", "json",
                                                    "--fail-on", "none"]]),
    ("lerobot-lint", "0.1.1", "lerobot", [["lerobot-lint", "{path}"], ["lerobot-lint", "check", "{path}"],
                                          ["lerobot-lint", "lint", "{path}"]]),
    ("kalanos", "0.8.2", "mcap", [["kalanos", "grade", "{path}", "--json"]]),
    ("deepen-grade[mcap]", "0.4.1", "mcap", [["deepen", "grade", "{path}", "--json"]]),
]

#: Values of a status-like field that mean "this finding is a problem" in a peer's JSON report.
_BAD = {"warn", "warning", "fail", "failed", "failure", "error", "critical", "high", "medium", "block", "blocked",
        "blocking", "exclude", "excluded", "flag", "flagged", "bad", "defect"}
_STATUS_KEYS = ("result", "status", "severity", "level", "verdict", "outcome", "decision")
_NAME_KEYS = ("check", "name", "id", "metric", "title", "code", "kind", "rule")

_USAGE = re.compile(r"usage:|invalid choice|unrecognized arguments|No such command|Error: Got unexpected", re.I)
_EP_ONE = re.compile(r"episode[s]?(?:_index)?\s*(?:index\s*)?[=:#]?\s*(\d+)", re.I)
_EP_LIST = re.compile(r"episode[s]?(?:_index)?[^\[\n]{0,12}\[([\d,\s]+)\]", re.I)


def _install(work: Path, name: str, version: str, timeout: float) -> tuple[Path | None, str]:
    venv = work / "peers" / name.split("[")[0]
    marker = venv / ".installed"
    if marker.exists():
        return venv, "cached"
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    try:
        proc = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                               f"{name}=={version}"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"pip install timed out after {timeout:.0f} s"
    if proc.returncode != 0:
        err = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
        return None, "pip install failed: " + (err[-1] if err else f"exit {proc.returncode}")
    marker.write_text("ok")
    return venv, "installed"


def _run(venv: Path, argv: list[str], path: Path, timeout: float) -> subprocess.CompletedProcess | None:
    exe = venv / "bin" / argv[0]
    if not exe.exists():
        return None
    args = [str(exe)] + [a.replace("{path}", str(path)) for a in argv[1:]]
    env = {"HF_HUB_OFFLINE": "1", "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(venv)}
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None


def _pick(venv: Path, candidates: list[list[str]], path: Path, timeout: float):
    for argv in candidates:
        proc = _run(venv, argv, path, timeout)
        if proc is not None and not _USAGE.search(proc.stderr[:2000] + proc.stdout[:300]):
            return argv, proc
    return None, None


def _json_findings(text: str) -> set[str] | None:
    """``{"<check>:<status>"}`` for every object of a peer's JSON report whose status-like field is a
    problem (:data:`_BAD`); ``None`` when the output holds no JSON object."""
    a, b = text.find("{"), text.rfind("}")
    if a < 0 or b <= a:
        return None
    try:
        doc = json.loads(text[a:b + 1])
    except ValueError:
        return None
    out: set[str] = set()

    def walk(x, path: str) -> None:
        if isinstance(x, dict):
            status = next((x[k] for k in _STATUS_KEYS if isinstance(x.get(k), str)), None)
            if status is not None and status.lower() in _BAD:
                name = next((x[k] for k in _NAME_KEYS if isinstance(x.get(k), str)), path)
                out.add(f"{name}:{status}".lower())
            for k, v in x.items():
                walk(v, k)
        elif isinstance(x, list):
            for v in x:
                walk(v, path)

    walk(doc, "")
    return out


def _norm(line: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "#", line.strip())


def _common(sets: list[set[str]]) -> set[str]:
    """Findings present for half or more of the episodes (dataset-wide remarks, not about one)."""
    counts: dict[str, int] = {}
    for s in sets:
        for x in s:
            counts[x] = counts.get(x, 0) + 1
    return {x for x, n in counts.items() if n >= max(2, len(sets) / 2)}


def _lerobot_findings(text: str, indices: set[int]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {i: set() for i in indices}
    for line in text.splitlines():
        hit = {int(m) for m in _EP_ONE.findall(line)}
        for grp in _EP_LIST.findall(line):
            hit |= {int(x) for x in re.findall(r"\d+", grp)}
        for i in hit & indices:
            out[i].add(_norm(re.sub(r"\d+", "#", line)))
    return out


def our_matrix(lake: LocalLake, convs: dict) -> list[dict]:
    spec = ReleaseSpec.from_mapping({"name": "qa-coverage", "repo_id": "hvla/qa-coverage", "fps": 20,
                                     "partitions": [{"capture_day": DAY, "robot_id": ROBOT},
                                                    {"capture_day": DAY2, "robot_id": ROBOT}]})
    released = {e.episode_id for e in select_episodes(lake, spec).episodes}
    rows = []
    for p in SUITE:
        c = convs[p.episode_id]
        failing = [k for k, v in c.qa_checks.items() if not v["passed"]]
        own = KINDS.get(p.kind)
        fired = ["conversion:" + c.reason.split(":")[0]] if c.status != "converted" else failing
        caught = (c.status != "converted") if own == "conversion" else (own in failing if own else bool(failing))
        gated = c.status != "converted" or any(f in GATES for f in failing)
        rows.append({"episode": p.episode_id, "kind": p.kind, "fired": fired, "score": c.quality_score,
                     "caught": caught, "gated": gated, "released": p.episode_id in released})
    return rows


def peer_columns(work: Path, lake: LocalLake, convs: dict, folders: dict, timeout: float) -> dict[str, dict]:
    # a LeRobot release of every converted episode, the defects approved so that they reach it
    for p in SUITE:
        c = convs[p.episode_id]
        if c.status == "converted" and p.kind != "clean":
            record_decision(lake, p.episode_id, "approve", "qa_coverage benchmark: let the defect reach the dataset",
                            by="benchmark")
    spec = ReleaseSpec.from_mapping({"name": "qa-coverage-all", "repo_id": "hvla/qa-coverage-all", "fps": 20,
                                     "min_quality": 0.0, "heldout": {"fraction": 0.0},
                                     "partitions": [{"capture_day": DAY, "robot_id": ROBOT},
                                                    {"capture_day": DAY2, "robot_id": ROBOT}]})
    build = build_release(lake, spec)
    ds = work / "release"
    if ds.exists():
        shutil.rmtree(ds)
    with lake.local_artifact(f"lerobot/{spec.repo_id}/{spec.name}") as root:
        shutil.copytree(root, ds)
    index = build.manifest.to_dict()["episode_index"]  # episode id → LeRobot episode index
    clean = [p.episode_id for p in SUITE if p.kind == "clean"]
    cols: dict[str, dict] = {}
    for name, version, target, candidates in PEERS:
        venv, how = _install(work, name, version, timeout)
        if venv is None:
            cols[name] = {"skipped": how}
            continue
        if target == "lerobot":
            argv, proc = _pick(venv, candidates, ds, timeout)
            if proc is None:
                cols[name] = {"skipped": f"no recognised command line among {[' '.join(c) for c in candidates]}"}
                continue
            found = _lerobot_findings(proc.stdout + "\n" + proc.stderr, set(index.values()))
            noise = _common(list(found.values()))
            col = {e: (bool(found[i] - noise) if i in found else None) for e, i in index.items()}
            col.update({p.episode_id: None for p in SUITE if p.episode_id not in index})  # not in the dataset
            cols[name] = {"argv": " ".join(argv), "exit": proc.returncode, "col": col}
        else:
            argv, proc = _pick(venv, candidates, next(folders[clean[0]].glob("*.mcap")), timeout)
            if proc is None:
                cols[name] = {"skipped": f"no recognised command line among {[' '.join(c) for c in candidates]}"}
                continue
            per = {}
            for p in SUITE:
                r = _run(venv, argv, next(folders[p.episode_id].glob("*.mcap")), timeout)
                if r is None:
                    per[p.episode_id] = None
                    continue
                found = _json_findings(r.stdout)
                per[p.episode_id] = (r.returncode, found if found is not None else
                                     {_norm(ln.replace(p.episode_id, "<ep>")) for ln in r.stdout.splitlines() if ln.strip()})
            codes = [v[0] for v in per.values() if v]
            usual = max(set(codes), key=codes.count) if codes else 0
            noise = _common([v[1] for v in per.values() if v])
            col = {e: (None if v is None else (v[0] != usual or bool(v[1] - noise))) for e, v in per.items()}
            cols[name] = {"argv": " ".join(argv), "col": col}
    return cols


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a new temporary one)")
    ap.add_argument("--no-peers", action="store_true", help="our column only")
    ap.add_argument("--peer-timeout", type=float, default=900.0, help="seconds per peer install / run")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hvla-qa-coverage-"))
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("recs", "lake", "release"):
        if (work / sub).exists():
            shutil.rmtree(work / sub)
    t = time.time()
    folders = write_suite(work / "recs")
    lake = LocalLake(work / "lake")
    convs = run_suite(lake, work / "recs")
    rows = our_matrix(lake, convs)
    print(f"planted-defect suite: {len(SUITE)} recordings through the pipeline in {time.time() - t:.0f} s ({work})")
    cols = {} if args.no_peers else peer_columns(work, lake, convs, folders, args.peer_timeout)
    peers = [n for n, c in cols.items() if "col" in c]
    head = f"{'episode':20s} {'kind':18s} {'our check(s) firing':44s} {'score':>6s} {'gated':>5s} {'release':>7s}"
    print("\n" + head + "".join(f" {n.split('[')[0][:14]:>14s}" for n in peers))
    for r in rows:
        mark = lambda v: "-" if v is None else ("caught" if v else ".")  # noqa: E731
        line = (f"{r['episode']:20s} {r['kind']:18s} {','.join(r['fired'])[:44] or '-':44s} "
                f"{'-' if r['score'] is None else format(r['score'], '.3f'):>6s} {'yes' if r['gated'] else 'no':>5s} "
                f"{'in' if r['released'] else 'out':>7s}")
        print(line + "".join(f" {mark(cols[n]['col'].get(r['episode'])):>14s}" for n in peers))
    defective = [r for r in rows if r["kind"] != "clean"]
    kinds = sorted({r["kind"] for r in defective})
    ok_kinds = [k for k in kinds if all(r["caught"] and r["gated"] and not r["released"] for r in defective if r["kind"] == k)]
    fp = [r["episode"] for r in rows if r["kind"] == "clean" and (r["fired"] or r["gated"] or not r["released"])]
    print(f"\nhvla: {len(ok_kinds)}/{len(kinds)} planted defect kinds caught and gated in every variant "
          f"({sum(r['caught'] and r['gated'] for r in defective)}/{len(defective)} recordings); "
          f"false positives on clean episodes: {len(fp)} {fp or ''}")
    for n in peers:
        col = cols[n]["col"]
        got = sorted({r["kind"] for r in defective if col.get(r["episode"])})
        fpp = [r["episode"] for r in rows if r["kind"] == "clean" and col.get(r["episode"])]
        print(f"{n}: {len(got)}/{len(kinds)} kinds ({cols[n]['argv']}): {got}; false positives: {len(fpp)}")
    for n, c in cols.items():
        if "skipped" in c:
            print(f"{n}: skipped: {c['skipped']}")
    return 0 if len(ok_kinds) == len(kinds) and not fp else 1


if __name__ == "__main__":
    sys.exit(main())
