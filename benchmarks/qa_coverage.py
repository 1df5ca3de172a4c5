"""QA coverage on the planted-defect suite: which check of ours catches each planted defect, its
score, whether it is gated, false positives on the clean episodes, and the peer graders beside it.

    .venv/bin/python benchmarks/qa_coverage.py [--work DIR] [--no-peers] [--peers NAME,...]
        [--peer-timeout S] [--json PATH]

The suite is ``hvla_platform_tests/fixtures/planted.py`` (13 defect kinds × 2 variants, 4 clean
episodes; real MCAP written through the recorder's encoder), sent through the real pipeline
(landing → raw → conversion with QA). "Gated" means the episode fails a gate (score 0) or is refused
at conversion, so a default release (``min_quality`` 0.6) leaves it out unless a supervisor approves
it; the last column says whether a default release built from the lake takes it.

Peers (``benchmarks/qa_peers.py``: which command, which mode, how its report is read, the catch
rule) run each in its own venv under ``<work>/peers/<name>``. LeRobot-dataset peers run on a LeRobot
v3 release of every converted episode (built with ``min_quality: 0`` and the defects approved, so
they reach it; LeRobot ``episode_index`` → our id through the release's ``meta/hvla_episodes.parquet``);
MCAP peers on the recordings. A peer that does not install within ``--peer-timeout`` or whose
command fails is shown as ``not run: <reason>``. Raw peer outputs are kept in ``<work>/peer-raw``.
``--json PATH`` writes the table and totals. This is a benchmark, not a test: peers and their
output formats change.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hvla_platform.lib.core.lake import LocalLake  # noqa: E402
from hvla_platform.lib.dataset.build import build_release  # noqa: E402
from hvla_platform.lib.dataset.releases import select_episodes  # noqa: E402
from hvla_platform.lib.dataset.spec import ReleaseSpec  # noqa: E402
from hvla_platform.lib.processing.qa.decisions import record_decision  # noqa: E402
from hvla_platform.lib.processing.qa.score import GATES  # noqa: E402
from hvla_platform_tests.fixtures.planted import (  # noqa: E402
    DAY,
    DAY2,
    KINDS,
    ROBOT,
    SUITE,
    run_suite,
    write_suite,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qa_peers import PEERS, PeerError, Target, catches, install  # noqa: E402


def our_matrix(lake: LocalLake, convs: dict) -> list[dict]:
    """One row per recording of the suite: kind, variant, our failing checks (or the conversion
    refusal), score, caught/gated, and whether a default release (``min_quality`` 0.6) takes it."""
    spec = ReleaseSpec.from_mapping({"name": "qa-coverage", "repo_id": "hvla/qa-coverage", "fps": 20,
                                     "partitions": [{"capture_day": DAY, "robot_id": ROBOT},
                                                    {"capture_day": DAY2, "robot_id": ROBOT}]})
    released = {e.episode_id for e in select_episodes(lake, spec).episodes}
    rows = []
    for p in SUITE:
        c = convs[p.episode_id]
        failing = [k for k, v in c.qa_checks.items() if not v["passed"]]
        own = KINDS.get(p.kind)
        refused = c.status != "converted"
        fired = ["conversion:" + c.reason.split(":")[0]] if refused else failing
        caught = refused if own == "conversion" else (own in failing) if own else bool(failing)
        gated = refused or any(f in GATES for f in failing)
        rows.append({"episode": p.episode_id, "kind": p.kind, "variant": p.episode_id.rsplit("-", 1)[-1],
                     "fired": fired, "score": c.quality_score, "caught": caught, "gated": gated,
                     "released": p.episode_id in released})
    return rows




def peer_target(work: Path, lake: LocalLake, convs: dict, folders: dict) -> Target:
    """Build the LeRobot release every LeRobot peer reads (every converted episode, the defects
    approved so that they reach it), copy it to ``<work>/release``, and map LeRobot
    ``episode_index`` → our episode id from its ``meta/hvla_episodes.parquet``."""
    for p in SUITE:
        c = convs[p.episode_id]
        if c.status == "converted" and p.kind != "clean":
            record_decision(lake, p.episode_id, "approve",
                            "qa_coverage benchmark: let the defect reach the dataset", by="benchmark")
    spec = ReleaseSpec.from_mapping({"name": "qa-coverage-all", "repo_id": "hvla/qa-coverage-all", "fps": 20,
                                     "min_quality": 0.0, "heldout": {"fraction": 0.0},
                                     "partitions": [{"capture_day": DAY, "robot_id": ROBOT},
                                                    {"capture_day": DAY2, "robot_id": ROBOT}]})
    build_release(lake, spec)
    ds = work / "release"
    with lake.local_artifact(f"lerobot/{spec.repo_id}/{spec.name}") as root:
        shutil.copytree(root, ds)
    rows = pq.read_table(ds / "meta" / "hvla_episodes.parquet",
                         columns=["episode_index", "episode_id"]).to_pylist()
    mcaps = {}
    for ep, folder in folders.items():
        found = sorted(folder.glob("*.mcap"))
        if len(found) != 1:
            raise RuntimeError(f"{folder}: expected one .mcap, found {len(found)}")
        mcaps[ep] = found[0]
    return Target(release=ds, index_to_episode={int(r["episode_index"]): r["episode_id"] for r in rows},
                  recordings=work / "recs", mcap_by_episode=mcaps, raw_dir=work / "peer-raw")


def peer_columns(target: Target, work: Path, names: set[str] | None, timeout: float) -> dict[str, dict]:
    """Install and run every peer (or those in ``names``); per column: ``version``, ``commands``,
    ``notes`` and ``cells`` (episode id → finding labels / ``"pair"`` / ``None``; an episode not in
    the peer's input is absent) or ``not_run`` (one line)."""
    clean = [p.episode_id for p in SUITE if p.kind == "clean"]
    dups = {p.episode_id for p in SUITE if p.kind == "duplicate"}
    if target.raw_dir.exists():
        shutil.rmtree(target.raw_dir)
    cols: dict[str, dict] = {}
    for peer in PEERS:
        if names is not None and peer.column not in names:
            continue
        col: dict = {"package": peer.package, "version": peer.version}
        t = time.time()
        try:
            venv = install(work, peer, timeout)
            run = peer.run(venv, target, timeout)
        except PeerError as exc:
            col["not_run"] = str(exc)
        except Exception as exc:  # noqa: BLE001 -- a report we cannot read: "not run", with the reason
            first = str(exc).splitlines()[0][:160] if str(exc) else ""
            col["not_run"] = f"{type(exc).__name__}: {first}"
        else:
            seen = (set(target.index_to_episode.values()) if peer.reads == "release"
                    else set(target.mcap_by_episode))
            col.update(commands=run.commands, notes=run.notes,
                       cells=catches(run.findings, sorted(seen), clean, dups))
        col["seconds"] = round(time.time() - t, 1)
        cols[peer.column] = col
        print(f"  {peer.column}: " + (f"not run: {col['not_run']}" if "not_run" in col else
                                      f"{len(run.findings)} findings in {col['seconds']} s"), flush=True)
    return cols


def totals(rows: list[dict], cells: dict[str, str | None]) -> dict:
    """Kinds caught in both variants / in at least one, recordings caught, false positives."""
    defective = [r for r in rows if r["kind"] != "clean"]
    kinds = sorted({r["kind"] for r in defective})
    hit = {r["episode"] for r in defective if cells.get(r["episode"])}
    fp = [r["episode"] for r in rows
          if r["kind"] == "clean" and cells.get(r["episode"]) not in {None, "pair"}]
    per_kind = [[r["episode"] in hit for r in defective if r["kind"] == k] for k in kinds]
    return {"kinds_all_variants": sum(all(v) for v in per_kind),
            "kinds_any_variant": sum(any(v) for v in per_kind),
            "kinds": len(kinds), "recordings": len(hit), "of_recordings": len(defective),
            "clean": sum(r["kind"] == "clean" for r in rows),
            "false_positives": len(fp), "false_positive_episodes": fp}


def our_cells(rows: list[dict]) -> dict[str, str | None]:
    """Our column in the peers' terms: ``"caught"`` for a planted episode caught, gated and left out
    of a default release; ``"fp"`` for a clean episode that a check fails, a gate stops or the
    default release leaves out; else ``None``."""
    out: dict[str, str | None] = {}
    for r in rows:
        if r["kind"] == "clean":
            out[r["episode"]] = "fp" if r["fired"] or r["gated"] or not r["released"] else None
        else:
            out[r["episode"]] = "caught" if r["caught"] and r["gated"] and not r["released"] else None
    return out


def render(rows: list[dict], cols: dict[str, dict]) -> list[str]:
    """The printed table: one row per recording, our columns then one per peer, then totals."""
    run = [n for n, c in cols.items() if "cells" in c]
    width = {n: min(34, max([len(n)] + [len(v or "-") for v in c.get("cells", {}).values()]))
             for n, c in cols.items()}
    fw = min(70, max(len(",".join(r["fired"])) for r in rows))
    head = (f"{'kind':18s} {'var':5s} {'our check(s) firing':{fw}s} {'score':>5s} {'gated':>5s} "
            f"{'in rel':>6s}"
            + "".join(f" | {n[:width[n]]:{width[n]}s}" for n in cols))
    lines = [head, "-" * len(head)]
    for r in rows:
        score = "-" if r["score"] is None else f"{r['score']:.2f}"
        line = (f"{r['kind']:18s} {r['variant']:5s} {(','.join(r['fired']) or '-')[:fw]:{fw}s} {score:>5s} "
                f"{'yes' if r['gated'] else 'no':>5s} {'yes' if r['released'] else 'no':>6s}")
        for n, c in cols.items():
            cell = c["cells"].get(r["episode"], "(not in input)") if "cells" in c else "not run"
            line += f" | {(cell or '-')[:width[n]]:{width[n]}s}"
        lines.append(line)
    lines.append("")
    for name, cells in [("hvla (ours)", our_cells(rows))] + [(n, cols[n]["cells"]) for n in run]:
        t = totals(rows, cells)
        lines.append(f"{name:22s} kinds caught {t['kinds_all_variants']:2d}/{t['kinds']} in both variants "
                     f"({t['kinds_any_variant']} in at least one), recordings "
                     f"{t['recordings']:2d}/{t['of_recordings']}, false positives on clean "
                     f"{t['false_positives']}/{t['clean']} {t['false_positive_episodes'] or ''}")
    for n, c in cols.items():
        if "not_run" in c:
            lines.append(f"{n:22s} not run: {c['not_run']}")
    lines.append("")
    for n, c in cols.items():
        if "cells" in c:
            notes = f" -- {'; '.join(c['notes'])}" if c["notes"] else ""
            lines.append(f"{n} {c['version']} ({c['seconds']} s): {'; '.join(c['commands'])}{notes}")
    return lines


def main() -> int:
    """Run the suite through the pipeline, then the peers; print the table; exit 1 unless ours
    catches and gates every kind with no false positive."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a new temporary one)")
    ap.add_argument("--no-peers", action="store_true", help="our column only")
    ap.add_argument("--peers", default=None, help="comma-separated peer columns to run (default: all)")
    ap.add_argument("--peer-timeout", type=float, default=900.0, help="seconds per peer install step / run")
    ap.add_argument("--json", type=Path, default=None, help="also write the table and totals as JSON here")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="hvla-qa-coverage-"))
    work = work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("recs", "lake", "release"):
        if (work / sub).exists():
            shutil.rmtree(work / sub)
    t = time.time()
    folders = write_suite(work / "recs")
    lake = LocalLake(work / "lake")
    convs = run_suite(lake, work / "recs")
    rows = our_matrix(lake, convs)
    print(f"planted-defect suite: {len(SUITE)} recordings through the pipeline in {time.time() - t:.0f} s "
          f"({work})")
    cols: dict[str, dict] = {}
    if not args.no_peers:
        target = peer_target(work, lake, convs, folders)
        print(f"LeRobot release of {len(target.index_to_episode)} converted episodes: {target.release}")
        names = set(args.peers.split(",")) if args.peers else None
        cols = peer_columns(target, work, names, args.peer_timeout)
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(f"\n{date}; peers: " + (", ".join(sorted({f"{c['package']} {c['version']}" for c in cols.values()}))
                                  or "not run"))
    print("\n".join(render(rows, cols)))
    ours = totals(rows, our_cells(rows))
    print(f"\nhvla: {ours['kinds_all_variants']}/{ours['kinds']} planted defect kinds caught and gated in "
          f"every variant ({ours['recordings']}/{ours['of_recordings']} recordings); false positives on "
          f"clean episodes: {ours['false_positives']} {ours['false_positive_episodes'] or ''}")
    if args.json:
        doc = {"date": date, "rows": rows, "hvla_totals": ours,
               "peers": {n: {**c, **({"totals": totals(rows, c["cells"])} if "cells" in c else {})}
                         for n, c in cols.items()}}
        args.json.write_text(json.dumps(doc, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0 if ours["kinds_all_variants"] == ours["kinds"] and not ours["false_positives"] else 1


if __name__ == "__main__":
    sys.exit(main())
