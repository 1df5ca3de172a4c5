"""Dataset stage: co-training mixtures over published releases (docs/mixtures.md) — partitioned by
mixture name (``mixture-specs/<name>.yaml``), built by ``hvla mixture build`` or the launchpad."""


from pathlib import Path

import dagster as dg

from hvla_platform.defs.automation.rights_flags import rights_check_result, rights_check_specs
from hvla_platform.defs.metadata import fmt_value, lineage_metadata, md_table, rights_metadata
from hvla_platform.defs.resources import LakeResource
from hvla_platform.defs.stages import RELEASE, STAGE_TAG
from hvla_platform.lib.core import features
from hvla_platform.lib.core.manifest import LeRobotDatasetManifest, MixtureManifest, load_manifest
from hvla_platform.lib.core.rights import combine_rights, uses_blocked
from hvla_platform.lib.core.tables import read_mixture_weights
from hvla_platform.lib.dataset.mixture import build_mixture, load_mixture_spec, weights_consistent

#: Mixture partitions: one per registered mixture spec (``hvla mixture register`` adds it).
MIXTURE_PARTITIONS_NAME = "mixture"
mixture_partitions = dg.DynamicPartitionsDefinition(name=MIXTURE_PARTITIONS_NAME)


def sources_table(m: MixtureManifest) -> dg.MetadataValue:
    """The mixture's sources as a markdown table: source, release version (pinned or latest), role,
    weight, effective share (weight / Σ weights), natural share (its fraction of the frames),
    episodes, frames, fps, action-free, losses."""
    rows = [[s["name"], f"{s['release']} ({'pinned' if s['pinned'] else 'latest'})", s["role"], s["weight"],
             f"{100 * s['share']:.1f} %", f"{100 * s['natural_share']:.1f} %", s["num_episodes"], s["num_frames"],
             s["fps"], s["action_free"], ", ".join(s["losses"])] for s in m.sources]
    return dg.MetadataValue.md(md_table(["source", "release", "role", "weight", "share", "natural share", "episodes",
                                         "frames", "fps", "action-free", "losses"], rows))


def feature_map_table(m: MixtureManifest) -> dg.MetadataValue:
    """Per source, which of its features fills which mixture feature and how many dimensions of it."""
    rows = []
    for s in m.sources:
        for src, target in sorted(s["feature_map"].items(), key=lambda kv: kv[1]):
            d = s["dims"].get(target)
            rows.append([s["name"], src, target, f"{d[0]} of {d[1]}" if d else "camera slot"])
        if s["unused_features"]:
            rows.append([s["name"], ", ".join(s["unused_features"]), "(not used)", "–"])
    return dg.MetadataValue.md(md_table(["source", "source feature", "mixture feature", "dims"], rows))


def feature_map_problems(lake, m: MixtureManifest) -> list[str]:
    """What is incomplete in the recorded feature mapping, checked against each release's feature
    schema read from the lake now (empty = complete): a mapped feature the release lacks, a vector
    feature without its dims or wider than the target, an action source without ``action``
    mapped, an action-free source claiming the action loss, a source without a loss, a target
    feature without its mask feature."""
    problems = []
    for s in m.sources:
        rel = load_manifest(lake, s["prefix"], LeRobotDatasetManifest)
        if rel is None:
            problems.append(f"{s['name']}: release {s['release']} is not in the lake")
            continue
        have = rel.feature_schema.get("features", {})
        problems += [f"{s['name']}: maps {f!r}, which release {s['release']} does not have"
                     for f in s["feature_map"] if f not in have]
        for f, t in s["feature_map"].items():
            if t.startswith(features.IMAGE_PREFIX):
                continue
            d = s["dims"].get(t)
            if d is None or f not in have or d[0] != int(have[f]["shape"][0]) or d[0] > d[1]:
                problems.append(f"{s['name']}: {f} → {t} has dims {d}, the release's shape is "
                                f"{have.get(f, {}).get('shape')}")
        mapped_action = features.ACTION in s["feature_map"].values()
        if mapped_action == s["action_free"]:
            problems.append(f"{s['name']}: action_free is {s['action_free']} but action is "
                            f"{'' if mapped_action else 'not '}mapped")
        if s["action_free"] and "action" in s["losses"]:
            problems.append(f"{s['name']}: action-free but supervises the action loss")
        if not s["losses"]:
            problems.append(f"{s['name']}: supervises no loss")
    for t, f in m.target_features.items():
        if f["mask"] is not None and f["mask"] not in m.target_features:
            problems.append(f"target feature {t}: its mask {f['mask']} is not a mixture feature")
    return problems


def rights_problems(lake, m: MixtureManifest) -> list[str]:
    """Whether the recorded rights are those of the sources, recomputed from their manifests now
    (``combine_rights``), and allow every intended use (empty = computed and allowing)."""
    rels = {s["name"]: load_manifest(lake, s["prefix"], LeRobotDatasetManifest) for s in m.sources}
    missing = [n for n, r in rels.items() if r is None]
    if missing:
        return [f"source release(s) not in the lake: {missing}"]
    named = {n: r.rights_obj for n, r in rels.items()}
    problems = []
    expected = combine_rights(named.values()).to_dict()
    if m.rights != expected:
        diff = sorted(k for k in expected if m.rights.get(k) != expected[k])
        problems.append(f"recorded rights differ from the sources' combined rights in {diff}")
    problems += [f"source {n} does not allow {', '.join(u)}" for n, u in uses_blocked(named, m.intended_uses).items()]
    return problems


@dg.asset(
    partitions_def=mixture_partitions,
    deps=[dg.AssetDep("lerobot_dataset", partition_mapping=dg.AllPartitionMapping())],
    group_name="dataset",
    owners=["team:ml-training", "team:dataset-curation"],
    kinds={"parquet", "markdown"},
    pool=RELEASE,
    description="A weighted co-training mixture of published LeRobot releases (robot teleop, simulation, human video, "
                "rollouts): references to the immutable release versions, a per-episode sampling-weights table, the "
                "feature mapping (padding + masks) and a dataset card; rights computed over every source.",
    check_specs=[
        dg.AssetCheckSpec("weights_sum", asset="mixture_release", partitions_def=mixture_partitions, blocking=True,
                          description="Read back from the lake: the episode weights sum to 1, each source's rows sum "
                                      "to its recorded share (weight / Σ weights) and the shares sum to 1."),
        dg.AssetCheckSpec("rights_computed", asset="mixture_release", partitions_def=mixture_partitions, blocking=True,
                          description="The recorded rights equal combine_rights over the sources' release manifests "
                                      "(intersection of uses, union of consents, earliest retention, flags OR-ed) and "
                                      "allow every intended use."),
        dg.AssetCheckSpec("feature_map_complete", asset="mixture_release", partitions_def=mixture_partitions,
                          blocking=True,
                          description="Every mapped feature exists in its release with the recorded width, no source "
                                      "is wider than the target, action-free sources supervise no action loss, every "
                                      "padded feature has its mask."),
        *rights_check_specs("mixture_release", mixture_partitions),
    ],
    metadata={"hvla/layer": "dataset", "hvla/canonical": "references to immutable releases"},
)
def mixture_release(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Build the mixture named by the partition key from its registered spec as a new immutable
    version when a source resolved to another release version or the spec changed, else find the
    latest version ``cached`` (lib/dataset/mixture.py)."""
    lk = lake.get_lake()
    b = build_mixture(lk, load_mixture_spec(lk, context.partition_key), progress=context.log.info)
    m = b.manifest
    with lk.local_artifact(m.artifact_key) as root:
        table = read_mixture_weights(Path(root) / m.weights_table)
    weight_problems = weights_consistent(m, table)
    fmap_problems = feature_map_problems(lk, m)
    right_problems = rights_problems(lk, m)
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": b.uri,
            "dagster/row_count": len(table),
            "hvla/mixture": m.mixture,
            "hvla/mixture_version": dg.MetadataValue.text(f"{m.mixture} (version {m.version} of {m.name})"),
            "hvla/repo_id": m.repo_id,
            "hvla/sources": sources_table(m),
            "hvla/feature_map": feature_map_table(m),
            "hvla/target_features": dg.MetadataValue.md(md_table(
                ["feature", "dtype", "shape", "mask"],
                [[t, f["dtype"], fmt_value(f["shape"]) if f["shape"] is not None else "per source", f["mask"] or "–"]
                 for t, f in m.target_features.items()])),
            "hvla/intended_uses": ", ".join(m.intended_uses),
            "hvla/within_source": m.within_source,
            "hvla/fps": fmt_value(m.fps) if m.fps is not None else f"per source ({m.mixed_fps})",
            "hvla/num_episodes": m.num_episodes,
            "hvla/num_frames": m.num_frames,
            "status": b.status,
            **lineage_metadata(lk, m.artifact_key),
            **rights_metadata(b.rights),
        },
        check_results=[
            dg.AssetCheckResult(check_name="weights_sum", passed=not weight_problems,
                                metadata={"hvla/problems": "\n".join(weight_problems) or "(none)",
                                          "hvla/sum": float(sum(table["episode_weight"].to_list()))}),
            dg.AssetCheckResult(check_name="rights_computed", passed=not right_problems,
                                metadata={"hvla/problems": "\n".join(right_problems) or "(none)",
                                          "hvla/allowed_uses": ", ".join(m.rights["allowed_uses"]) or "(none)"}),
            dg.AssetCheckResult(check_name="feature_map_complete", passed=not fmap_problems,
                                metadata={"hvla/problems": "\n".join(fmap_problems) or "(none)"}),
            rights_check_result(lk, "mixture_release", m.artifact_key),
        ],
    )


mixture_job = dg.define_asset_job(
    "mixture_job",
    selection=dg.AssetSelection.assets("mixture_release"),
    description="Build one co-training mixture over the latest (or pinned) published releases, with its checks.",
    run_tags={STAGE_TAG: RELEASE},
)
