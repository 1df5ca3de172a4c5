"""Benchmark: lineage queries on a synthetic lake (default 10,000 raw episodes; issue 18: 100,000).

Usage::

    .venv/bin/python benchmarks/lineage.py                          # 10k episodes, temp dir, deleted
    .venv/bin/python benchmarks/lineage.py --episodes 100000 --root DIR --keep   # reuse DIR next time
    .venv/bin/python benchmarks/lineage.py --episodes 2000 --s3     # also on a real S3 server (SeaweedFS)

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

Then measures, in fresh processes' terms (the in-process memo is cleared between runs):

* **reference** (same invocation): one core reading + parsing (orjson) + canonically hashing every
  manifest -- the work a cold build cannot avoid, so ``cold / reference`` says what the index adds
  and what the parallel read saves;
* **cold**: no index in the lake (first query on a lake/copy) -- list + read every manifest (in
  parallel) + write the shards, then each query;
* **warm**: shards valid -- list + stat + load the shards, then each query;
* **incremental**: one partition's manifest rewritten -- what is re-read and rewritten;

and prints each with its ratio to the targets (warm < 1 s, cold < 5 s), peak RSS and index bytes.
``--s3`` repeats cold/warm on a SeaweedFS S3 server started for the run (the tests' helper; only
the manifests are uploaded) and prints the cost per manifest. :func:`run` returns the numbers as a
dict (for ``benchmarks/scale.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import os
import resource
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

TARGET_S = 1.0  # warm, end to end
COLD_TARGET_S = 5.0  # cold (no index), end to end
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


def _peak_rss_mb() -> float:
    """Peak RSS of this process and of its (forked reader) children, MB."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def reference_seconds(lake: LocalLake) -> float:
    """One core: read + orjson-parse + canonically hash every manifest (the unavoidable cold work)."""
    import orjson

    from hvla_platform.lib.lineage.records import canonical_sha256
    from hvla_platform.lib.lineage.scan import local_stamps

    keys = sorted(local_stamps(lake.root))
    gc.disable()
    try:
        t0 = time.perf_counter()
        for k in keys:
            with open(f"{lake.root}/{k}/{MANIFEST_NAME}", "rb") as f:
                canonical_sha256(orjson.loads(f.read()))
        return time.perf_counter() - t0
    finally:
        gc.enable()


def _queries(lake, q: dict) -> dict:
    ck = q["releases"][-1]["checkpoints"][0]
    return {
        f"upstream {ck}": lambda idx: lin.upstream(lake, ck, index=idx),
        f"downstream {q['episode']}": lambda idx: lin.downstream(lake, q["episode"], index=idx),
        f"downstream consent:{q['consent']}": lambda idx: lin.downstream(lake, f"consent:{q['consent']}", index=idx),
        f"downstream customer:{q['customer']}": lambda idx: lin.downstream(lake, f"customer:{q['customer']}", index=idx),
    }


def _drop_index(lake) -> None:
    for key in lake.list_keys(lin.INDEX_PREFIX):
        lake.delete(key)
    lin._MEMO.clear()


def measure(lake, q: dict, *, repeat: int = 2, label: str = "local") -> dict:
    """Cold and warm load + every query on ``lake`` (any backend); prints a table, returns the numbers."""
    out: dict = {"queries": {}}
    _drop_index(lake)
    idx, cold = _timed(lambda: lin.load_index(lake))
    out.update(cold_index_s=cold, manifests=idx.stats["manifests"], shards=idx.stats["shards"],
               index_bytes=idx.stats["index_bytes"])
    warm = float("inf")
    for _ in range(repeat):
        lin._MEMO.clear()  # as a new process: parse the shards again
        idx2, t = _timed(lambda: lin.load_index(lake))
        assert idx2.stats["read"] == 0, idx2.stats
        warm = min(warm, t)
    out["warm_index_s"] = warm
    print(f"\n[{label}] cold index (list + read {idx.stats['read']} manifests + write {idx.stats['shards']} shards, "
          f"{idx.stats['index_bytes'] / 1e6:.1f} MB): {cold:.3f} s")
    print(f"[{label}] warm index (list + stat {idx2.stats['manifests']} manifests + load the shards): {warm:.3f} s")
    print(f"\n{'query':58s} {'query s':>8s} {'cold total':>11s} {'/5 s':>6s} {'warm total':>11s} {'/1 s':>6s}")
    for name, fn in _queries(lake, q).items():
        res, tq = _timed(lambda: fn(idx2))
        detail = f"{len(res)} artifacts" if isinstance(res, list) else f"{len(res.raw_episodes())} raw leaves"
        _drop_index(lake)
        _, tc = _timed(lambda: fn(lin.load_index(lake)))
        tw = float("inf")
        for _ in range(repeat):
            lin._MEMO.clear()
            tw = min(tw, _timed(lambda: fn(lin.load_index(lake)))[1])
        out["queries"][name] = {"query_s": tq, "cold_s": tc, "warm_s": tw, "answer": detail}
        print(f"{name:58s} {tq:8.3f} {tc:11.3f} {tc / COLD_TARGET_S:6.2f} {tw:11.3f} {tw / TARGET_S:6.2f}  ({detail})")
    out["worst_warm_s"] = max(v["warm_s"] for v in out["queries"].values())
    out["worst_cold_s"] = max(v["cold_s"] for v in out["queries"].values())
    return out


def incremental(lake: LocalLake, q: dict) -> dict:
    """Rewrite one partition's episodes_hdf5 manifest: how many manifests and shards a load redoes."""
    lin.load_index(lake)
    key = next(k for k in sorted(lin.load_index(lake).records) if k.startswith("episodes-hdf5/"))
    p = lake.path(f"{key}/{MANIFEST_NAME}")
    m = json.loads(p.read_text())
    m["skipped"] = ["re-materialized"]
    p.write_text(json.dumps(m, indent=2, sort_keys=True))
    time.sleep(0.05)  # out of the racy window (lineage.shards.RACY_NS)
    lin._MEMO.clear()
    idx, t = _timed(lambda: lin.load_index(lake))
    print(f"\nincremental: {key} rewritten -> load re-read {idx.stats['read']} manifest(s), rewrote "
          f"{idx.stats['shards_written']} of {idx.stats['shards']} shards, reused {idx.stats['reused']}: {t:.3f} s")
    return {"seconds": t, "read": idx.stats["read"], "shards_written": idx.stats["shards_written"]}


def _s3(root: Path, local: LocalLake, q: dict, repeat: int) -> dict:
    """Upload the lake's manifests to a SeaweedFS started for this run and measure there."""
    import uuid

    import boto3
    from botocore.config import Config

    from hvla_platform.lib.core.lake import S3Lake
    from hvla_platform_tests.fixtures.seaweedfs import seaweedfs_s3

    with seaweedfs_s3(root / "seaweedfs") as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench",
                              aws_secret_access_key="bench", config=Config(s3={"addressing_style": "path"},
                                                                           max_pool_connections=32))
        lake = S3Lake(f"lineage-{uuid.uuid4().hex[:8]}", client)
        keys = [k for k in local.list_keys("") if k.endswith(MANIFEST_NAME)]
        from concurrent.futures import ThreadPoolExecutor

        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: lake.put_file(local.path(k), k), keys))
        print(f"\nuploaded {len(keys)} manifests to SeaweedFS in {time.perf_counter() - t0:.1f} s")
        _, t_list = _timed(lambda: lake.list_objects(""))
        out = measure(lake, q, repeat=repeat, label="s3")
        n = out["manifests"]
        out["list_s"] = t_list
        print(f"[s3] per manifest: cold {out['cold_index_s'] / n * 1e3:.2f} ms, warm {out['warm_index_s'] / n * 1e3:.3f} ms "
              f"(listing alone {t_list / n * 1e3:.3f} ms)")
        return out


def run(episodes: int, *, root: Path | None = None, per_partition: int = 50, releases: int = 4, repeat: int = 2,
        s3: bool = False, keep: bool = False) -> dict:
    """Build (or reuse, when ``root`` already holds one of this size) the lake and measure it.

    Returns:
        ``{"episodes", "manifests", "shards", "index_bytes", "reference_s", "cold_index_s",
        "warm_index_s", "queries": {name: {"query_s", "cold_s", "warm_s", "answer"}}, "worst_warm_s",
        "worst_cold_s", "incremental": {...}, "peak_rss_mb", ("s3": {...})}`` (seconds, bytes, MB).
    """
    base = Path(root) if root else Path(tempfile.mkdtemp(prefix="hvla-lineage-bench-"))
    try:
        meta = base / f"lake-{episodes}.json"
        lake_root = base / f"lake-{episodes}"
        if meta.is_file() and lake_root.is_dir():
            q = json.loads(meta.read_text())
            print(f"reusing the lake of {episodes} raw episodes at {lake_root}")
        else:
            t0 = time.perf_counter()
            q = build_lake(lake_root, episodes, per_partition, releases)
            meta.write_text(json.dumps(q))
            print(f"built {episodes} raw episodes, {releases} releases in {time.perf_counter() - t0:.1f} s at {lake_root}")
        lake = LocalLake(lake_root)
        ref = reference_seconds(lake)
        out = {"episodes": episodes, "reference_s": ref}
        out.update(measure(lake, q, repeat=repeat))
        out["incremental"] = incremental(lake, q)
        out["peak_rss_mb"] = _peak_rss_mb()
        print(f"\nreference (one core: read + parse + hash {out['manifests']} manifests): {ref:.3f} s; "
              f"cold index / reference = {out['cold_index_s'] / ref:.2f}")
        print(f"worst warm end-to-end query: {out['worst_warm_s']:.3f} s = {out['worst_warm_s'] / TARGET_S:.2f} x the "
              f"{TARGET_S:.0f} s target; worst cold: {out['worst_cold_s']:.3f} s = "
              f"{out['worst_cold_s'] / COLD_TARGET_S:.2f} x the {COLD_TARGET_S:.0f} s target")
        print(f"peak RSS {out['peak_rss_mb']:.0f} MB; index {out['index_bytes'] / 1e6:.1f} MB in {out['shards']} shards "
              f"({out['index_bytes'] / out['manifests']:.0f} B per artifact); {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        if s3:
            out["s3"] = _s3(base, lake, q, repeat)
        return out
    finally:
        if not keep and not root:
            shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=None, help="where to build (and later reuse) the lake (default: a temp dir)")
    ap.add_argument("--episodes", type=int, default=10_000)
    ap.add_argument("--per-partition", type=int, default=50)
    ap.add_argument("--releases", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2, help="warm runs (best is reported)")
    ap.add_argument("--s3", action="store_true", help="also measure on a SeaweedFS S3 server (manifests uploaded)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    out = run(args.episodes, root=Path(args.root) if args.root else None, per_partition=args.per_partition,
              releases=args.releases, repeat=args.repeat, s3=args.s3, keep=args.keep)
    return 0 if out["worst_warm_s"] < TARGET_S and out["worst_cold_s"] < COLD_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
