"""Benchmark: lineage queries on a synthetic lake of 10,000 raw episodes.

Usage::

    .venv/bin/python benchmarks/lineage.py                       # build in a temp dir, time, delete
    .venv/bin/python benchmarks/lineage.py --root DIR --episodes 10000 --keep

Builds a lake of **manifests only** (plus an empty MCAP per raw episode, so the raw folders look
real to the folder walk) with the platform's schema (:func:`hvla_platform.lib.core.manifest.build_manifest`,
:class:`~hvla_platform.lib.core.rights.Rights`):

* ``--episodes`` raw episodes over 10 robots × N days (``--per-partition`` per partition), with 4
  operators, 5 consents, 3 customers;
* one ``episodes_hdf5`` manifest per partition (one ``conversions`` entry per episode, with a QA-
  sized payload, and one file entry per HDF5);
* ``--releases`` releases, release *i* taking the first ``(i+1)/releases`` of the partitions, each
  with per-episode HDF5 inputs (carrying raw URI/sha/robot/day/operator/site, as the real ones),
  10 % held out; per release a norm-stats, a robodm cache, 2 checkpoints, 2 eval reports.

Then times, in fresh processes' terms (the in-process memo is cleared between runs):

* cold: no index file (first query on a lake/copy) -- walk + read every manifest + write the index;
* warm: index valid -- walk + stat + load the index;
* the queries on top of a loaded index: ``upstream`` of the largest release's checkpoint,
  ``downstream`` of an episode, a consent and a customer;

and prints each total (index + query) and its ratio to the 1 s target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hvla_platform.lib.lineage import graph as lin  # noqa: E402
from hvla_platform.lib.core.manifest import InputRef, build_manifest, manifest_sha256  # noqa: E402
from hvla_platform.lib.core.rights import Rights, combine_rights  # noqa: E402
from hvla_platform.lib.core.lake import MANIFEST_NAME, LocalLake  # noqa: E402

TARGET_S = 1.0
ROBOTS = [f"g1-{i:03d}" for i in range(1, 11)]
OPERATORS = [f"op-{i:02d}" for i in range(4)]
CONSENTS = [f"consent-2026-{i:04d}" for i in range(5)]
CUSTOMERS = ["internal", "acme", "globex"]
QA_PAYLOAD = {f"check_{i}": {"passed": True, "detail": "x" * 40, "frames": []} for i in range(15)}


def _h(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def _write(lake: LocalLake, key: str, manifest: dict) -> None:
    p = lake.path(f"{key}/{MANIFEST_NAME}")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))


def build_lake(root: Path, episodes: int, per_partition: int, releases: int) -> dict:
    """Write the synthetic lake under ``root``; returns what to query (keys, ids)."""
    lake = LocalLake(root)
    partitions: list[tuple[str, str, list[dict]]] = []
    n_parts = (episodes + per_partition - 1) // per_partition
    for p in range(n_parts):
        robot, day = ROBOTS[p % len(ROBOTS)], f"2026-{1 + (p // len(ROBOTS)) // 28:02d}-{1 + (p // len(ROBOTS)) % 28:02d}"
        eps = []
        for j in range(per_partition):
            n = p * per_partition + j
            if n >= episodes:
                break
            ep = f"ep-{n:06d}"
            customer = CUSTOMERS[n % len(CUSTOMERS)] if n % 10 == 0 else "internal"
            rights = Rights(data_owners=frozenset({"hvla-lab"}), sites=frozenset({f"site-{robot}"}),
                            customers=frozenset({customer}), consent_refs=frozenset({CONSENTS[n % len(CONSENTS)]}),
                            licenses=frozenset({"proprietary"}), allowed_uses=frozenset({"internal_training", "lab_robot"}), retention_until=dt.date(2031, 1, 1))
            key = f"raw-mcap/{day}/{robot}/{ep}"
            mcap = f"{key}/{ep}_0.mcap"
            lake.path(key).mkdir(parents=True, exist_ok=True)
            lake.path(mcap).write_bytes(b"")
            sha = _h(ep)
            m = build_manifest(artifact_type="raw_mcap_episode", artifact_key=key,
                               inputs=[InputRef(key=f"landing/{day}/{robot}/{ep}/{ep}_0.mcap", sha256=sha,
                                                kind="landing", episode_ids=[ep])],
                               config={}, rights=rights, episode_ids=[ep],
                               extra={"mcap_key": mcap, "mcap_sha256": sha, "capture_day": day,
                                      "robot_id": robot, "operator": OPERATORS[n % 4], "site": f"site-{robot}",
                                      "customer": customer, "task": "touch the red cube"})
            _write(lake, key, m)
            eps.append({"ep": ep, "key": key, "mcap": mcap, "sha": sha, "rights": rights, "day": day,
                        "robot": robot, "operator": OPERATORS[n % 4]})
        pkey = f"episodes-hdf5/{day}/{robot}"
        inputs = [InputRef(key=e["mcap"], sha256=e["sha"], kind="raw_mcap", episode_ids=[e["ep"]]) for e in eps]
        m = build_manifest(artifact_type="episodes_hdf5", artifact_key=pkey, inputs=inputs,
                           config={"fps": 20.0, "qa": {"spike_k": 8.0}}, rights=combine_rights(e["rights"] for e in eps),
                           extra={"capture_day": day, "robot_id": robot,
                                  "conversions": [{"episode_id": e["ep"], "file": f"{e['ep']}.h5", "sha256": _h("h5" + e["ep"]),
                                                   "qa_checks": QA_PAYLOAD, "status": "converted"} for e in eps],
                                  "skipped": [],
                                  "files": [{"path": f"{e['ep']}.h5", "sha256": _h("h5" + e["ep"]), "bytes": 1} for e in eps]})
        _write(lake, pkey, m)
        partitions.append((pkey, day, eps))

    out = {"releases": [], "episode": partitions[0][2][0]["ep"], "consent": CONSENTS[1], "customer": CUSTOMERS[1]}
    for r in range(releases):
        name = f"rel-v{r + 1}"
        parts = partitions[: max(1, n_parts * (r + 1) // releases)]
        eps = [(pkey, e) for pkey, _, es in parts for e in es]
        ids = [e["ep"] for _, e in eps]
        held = set(ids[:: 10])
        train = [e for e in ids if e not in held]
        rkey = f"lerobot/hvla/bench/{name}"
        inputs = [InputRef(key=f"{pkey}/{e['ep']}.h5", sha256=_h("h5" + e["ep"]), kind="episodes_hdf5",
                           episode_ids=[e["ep"]],
                           extra={"raw_mcap_key": e["mcap"], "raw_sha256": e["sha"], "capture_day": e["day"],
                                  "robot_id": e["robot"], "operator": e["operator"], "site": f"site-{e['robot']}"})
                  for pkey, e in eps]
        rights = combine_rights(e["rights"] for _, e in eps)
        rel_m = build_manifest(artifact_type="lerobot_dataset", artifact_key=rkey, inputs=inputs,
                               config={"spec": {"name": name}}, rights=rights,
                               extra={"release": name, "repo_id": "hvla/bench", "codebase_version": "v3.0",
                                      "num_episodes": len(ids), "num_frames": 90 * len(ids), "fps": 20.0,
                                      "episode_index": {e: i for i, e in enumerate(ids)},
                                      "train_episode_ids": train, "heldout_episode_ids": sorted(held),
                                      "train_episode_indices": [i for i, e in enumerate(ids) if e not in held],
                                      "heldout_episode_indices": [i for i, e in enumerate(ids) if e in held],
                                      "excluded": {}, "approved": {}, "quality_scores": {e: 0.9 for e in ids},
                                      "partitions": [f"{d}|{r}" for _, d, es in parts for r in {es[0]["robot"]}],
                                      "feature_schema": {}, "tasks": ["touch the red cube"], "probe": {},
                                      "video_codec": "h264", "timestamp_problems": {},
                                      "partition_inputs": [{"key": p[0], "partition": p[0]} for p in parts]})
        _write(lake, rkey, rel_m)
        ns_key, cache_key = f"norm-stats/{name}", f"robodm-cache/{name}"
        ns_m = build_manifest(artifact_type="norm_stats", artifact_key=ns_key,
                              inputs=[InputRef(key=rkey, sha256=manifest_sha256(rel_m), kind="lerobot_dataset",
                                               episode_ids=train)],
                              config={"min_std": 1e-4}, rights=rights,
                              extra={"release": name, "repo_id": "hvla/bench", "computed_from": "train_split_only",
                                     "excluded_heldout_episode_ids": sorted(held), "num_frames": 90 * len(train),
                                     "names": {}, "problems": [], "reusable_across_customers": False,
                                     "customers": sorted(rights.customers)})
        _write(lake, ns_key, ns_m)
        cache_m = build_manifest(artifact_type="robodm_cache", artifact_key=cache_key,
                                 inputs=[InputRef(key=rkey, sha256=manifest_sha256(rel_m), kind="lerobot_dataset",
                                                  episode_ids=ids)],
                                 config={"video_codec": "ffv1"}, rights=rights,
                                 extra={"release": name, "repo_id": "hvla/bench", "num_episodes": len(ids),
                                        "num_frames": 90 * len(ids), "bytes": 1, "codecs": {}, "problems": [],
                                        "roundtrip": {}, "probe_fix_applied": False, "train_episode_ids": train,
                                        "heldout_episode_ids": sorted(held)})
        _write(lake, cache_key, cache_m)
        ckpts = []
        for exp in ("a", "b"):
            ck = f"checkpoints/bench_cfg/{name}-{exp}/1000"
            ck_m = build_manifest(artifact_type="checkpoint", artifact_key=ck,
                                  inputs=[InputRef(key=cache_key, sha256=manifest_sha256(cache_m),
                                                   kind="robodm_cache", episode_ids=train),
                                          InputRef(key=f"{ns_key}/norm_stats.json", sha256=manifest_sha256(ns_m),
                                                   kind="norm_stats", episode_ids=train)],
                                  config={"release": name, "steps": 1000}, rights=rights,
                                  extra={"experiment": f"{name}-{exp}", "config_name": "bench_cfg", "step": 1000,
                                         "release": name, "repo_id": "hvla/bench", "initial_loss": 1.0,
                                         "final_loss": 0.5, "mlflow_run_id": None, "num_train_frames": 90 * len(train),
                                         "num_params": 1, "train_seconds": 1.0, "timings": {},
                                         "serving_allowed": ["lab_robot"], "serving_blocked": []})
            _write(lake, ck, ck_m)
            ev = f"eval-reports/{name}-{exp}/1000"
            _write(lake, ev, build_manifest(
                artifact_type="eval_report", artifact_key=ev,
                inputs=[InputRef(key=ck, sha256=manifest_sha256(ck_m), kind="checkpoint", episode_ids=train),
                        InputRef(key=cache_key, sha256=manifest_sha256(cache_m), kind="robodm_cache",
                                 episode_ids=sorted(held))],
                config={"seed": 1000}, rights=rights,
                extra={"experiment": f"{name}-{exp}", "checkpoint": ck, "step": 1000, "release": name,
                       "mlflow_run_id": None}))
            ckpts.append(ck)
        out["releases"].append({"release": rkey, "checkpoints": ckpts, "episodes": len(ids), "train": len(train)})
    return out


def _timed(fn):
    gc.collect()  # do not charge this measurement for the garbage of the previous one
    t0 = time.perf_counter()
    res = fn()
    return res, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="where to build the lake (default: a temp dir)")
    ap.add_argument("--episodes", type=int, default=10_000)
    ap.add_argument("--per-partition", type=int, default=50)
    ap.add_argument("--releases", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="warm runs (best is reported)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="hvla-lineage-bench-"))
    try:
        t0 = time.perf_counter()
        q = build_lake(root / "lake", args.episodes, args.per_partition, args.releases)
        lake = LocalLake(root / "lake")
        print(f"built {args.episodes} raw episodes, {args.releases} releases in {time.perf_counter() - t0:.1f} s "
              f"at {lake.root}")
        ck = q["releases"][-1]["checkpoints"][0]
        queries = {
            f"upstream {ck}": lambda idx: lin.upstream(lake, ck, index=idx),
            f"downstream {q['episode']}": lambda idx: lin.downstream(lake, q["episode"], index=idx),
            f"downstream consent:{q['consent']}": lambda idx: lin.downstream(lake, f"consent:{q['consent']}", index=idx),
            f"downstream customer:{q['customer']}": lambda idx: lin.downstream(lake, f"customer:{q['customer']}", index=idx),
        }

        lin.index_path(lake).unlink(missing_ok=True)
        lin._MEMO.clear()
        idx, cold = _timed(lambda: lin.load_index(lake))
        print(f"\ncold index (walk + read {idx.stats['read']} manifests + write index): {cold:.3f} s")
        warm = float("inf")
        for _ in range(args.repeat):
            lin._MEMO.clear()  # as a new process: parse the index file again
            idx2, t = _timed(lambda: lin.load_index(lake))
            assert idx2.stats["read"] == 0, idx2.stats
            warm = min(warm, t)
        print(f"warm index (walk + stat {idx2.stats['manifests']} manifests + load index file): {warm:.3f} s")

        print(f"\n{'query':58s} {'query s':>8s} {'cold total':>11s} {'warm total':>11s} {'warm/1s':>8s}")
        worst = 0.0
        for name, fn in queries.items():
            res, tq = _timed(lambda: fn(idx2))
            if isinstance(res, list):
                detail = f"{len(res)} artifacts"
            else:
                detail = f"{len(res.raw_episodes())} raw leaves"
            # a fresh index for this query's cold number
            lin.index_path(lake).unlink(missing_ok=True)
            lin._MEMO.clear()
            _, tc = _timed(lambda: fn(lin.load_index(lake)))
            lin._MEMO.clear()
            _, tw = _timed(lambda: fn(lin.load_index(lake)))
            worst = max(worst, tw)
            print(f"{name:58s} {tq:8.3f} {tc:11.3f} {tw:11.3f} {tw / TARGET_S:8.2f}  ({detail})")
        print(f"\nworst warm end-to-end query: {worst:.3f} s = {worst / TARGET_S:.2f} × the {TARGET_S:.0f} s target")
        return 0 if worst < TARGET_S else 1
    finally:
        if not args.keep and not args.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
