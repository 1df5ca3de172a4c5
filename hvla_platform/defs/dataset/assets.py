"""Dataset stage: LeRobot v3.0 release, norm stats, Robo-DM cache — partitioned by dataset release."""


import dagster as dg

from hvla_platform.defs.metadata import fmt_value, lineage_metadata, md_mapping, md_nested, md_table, rights_metadata
from hvla_platform.defs.automation.rights_flags import rights_check_result, rights_check_specs
from hvla_platform.defs.partitions import release_partitions
from hvla_platform.defs.resources import LakeResource
from hvla_platform.defs.stages import RELEASE
from hvla_platform.lib.dataset.lerobot_release import schema_diff
from hvla_platform.lib.dataset.norm_stats_build import MIN_STD, build_norm_stats, load_norm_stats
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.release_qa import RELEASE_CHECKS, ReleaseQA, ReleaseQAThresholds
from hvla_platform.lib.processing.qa.decisions import record_decision
from hvla_platform.lib.dataset.norm_stats_build import norm_stats_prefix
from hvla_platform.lib.dataset.releases import lerobot_prefix, load_release, previous_release_manifest
from hvla_platform.lib.dataset.versions import latest_release_spec
from hvla_platform.lib.dataset.robodm_build import robodm_prefix
from hvla_platform.lib.dataset.robodm_build import build_cache
from hvla_platform.lib.dataset.robodm_cache import DEFAULT_IMAGE_ATOL, DEFAULT_VIDEO_CODEC, IMAGE_PREFIX

ALL_UPSTREAM = dg.AllPartitionMapping()

_QA = ReleaseQAThresholds()  # the defaults; a release spec's `qa` block overrides them per release
#: What each release check of lib/dataset/release_qa.py judges (its AssetCheckSpec description).
RELEASE_CHECK_DESCRIPTIONS = {
    "episode_length_outliers": f"No episode's length is a modified-z outlier (|M| > {_QA.max_modified_z:g}, "
                               "Iglewicz & Hoaglin) among the release's episodes.",
    "constant_features": f"No observation.state / action dimension is constant (std < {_QA.min_std:g}) over the "
                         "train split.",
    "distribution_drift": f"No state/action dimension's mean moved by more than {_QA.max_drift_smd:g} pooled std "
                          "(standardized mean difference) since the previous version of the release line.",
    "task_coverage": f"Every task has at least {_QA.min_episodes_per_task} train episodes and the largest / smallest "
                     f"task count is at most {_QA.max_task_imbalance:g}.",
    "action_chunk_fit": f"No train episode is shorter than the action horizon ({_QA.action_horizon} frames: a "
                        "policy's action chunk).",
    "camera_image_outliers": "No episode's exposure or sharpness is a modified-z outlier against the same camera "
                             "in the release; episodes without camera statistics are reported as not measured.",
}
assert tuple(RELEASE_CHECK_DESCRIPTIONS) == RELEASE_CHECKS


def features_table(schema: dict) -> dg.MetadataValue:
    """A release's feature schema (``{"fps", "features": {name: {"dtype", "shape", "names"}}}``,
    lib/dataset/lerobot_release.py ``feature_schema``) as a markdown table: feature, dtype, shape
    (``30`` or ``3×224×224``), names (the first 8, then how many in all), under the fps."""
    def names(n: object) -> str:
        if isinstance(n, list):
            return ", ".join(map(str, n[:8])) + (f", … ({len(n)} in all)" if len(n) > 8 else "")
        return fmt_value(n)

    rows = [[name, f["dtype"], "×".join(map(str, f["shape"])), names(f.get("names"))]
            for name, f in schema.get("features", {}).items()]
    return dg.MetadataValue.md(f"fps {fmt_value(schema.get('fps'))}\n\n"
                               + md_table(["feature", "dtype", "shape", "names"], rows))


def norm_stats_table(doc: dict, names: dict) -> dg.MetadataValue:
    """An openpi ``norm_stats.json`` document (``{"norm_stats": {key: {"mean", "std", "q01", "q99":
    [float]}}}``) as a markdown table, one row per key × dimension, named by joint where
    ``names[key]`` says (feature units, radians for joints; 4 significant digits — the file in the
    lake keeps full precision)."""
    rows = []
    for key, st in doc.get("norm_stats", {}).items():
        dims = names.get(key) or []
        for i, mean in enumerate(st.get("mean", [])):
            rows.append([key, i, dims[i] if i < len(dims) else "–", mean, st["std"][i], st["q01"][i], st["q99"][i]])
    return dg.MetadataValue.md(md_table(["key", "dim", "name", "mean", "std", "q01", "q99"], rows))


def release_check_results(qa: ReleaseQA | None) -> list[dg.AssetCheckResult]:
    """One WARN-severity ``AssetCheckResult`` per release check from the findings recorded in the
    release manifest (``None``: a version built before release checks existed — every check then
    fails as a warning saying so, never passes unjudged). Metadata: ``hvla/status`` (passed,
    failed, not judged, not recorded), ``hvla/detail``, ``hvla/episodes``, ``hvla/features``,
    ``hvla/values``."""
    out = []
    for name in RELEASE_CHECKS:
        if qa is None:
            detail = ("not recorded: this version was built before release checks existed; the next version built "
                      "records them")
            out.append(dg.AssetCheckResult(check_name=name, passed=False, severity=dg.AssetCheckSeverity.WARN,
                                           description=detail,
                                           metadata={"hvla/status": "not recorded", "hvla/detail": detail}))
            continue
        c = qa.check(name)
        out.append(dg.AssetCheckResult(
            check_name=name, passed=c.passed, severity=dg.AssetCheckSeverity.WARN,
            description=f"{c.status.replace('_', ' ')}: {c.detail}",
            metadata={"hvla/status": c.status.replace("_", " "), "hvla/detail": c.detail,
                      "hvla/episodes": ", ".join(c.episodes) or "(none)",
                      "hvla/features": ", ".join(c.features) or "(none)",
                      "hvla/values": md_nested(dict(c.values)),
                      "hvla/thresholds": md_nested(qa.to_dict()["thresholds"])}))
    return out


class ReleaseConfig(dg.Config):
    """Optional supervisor decisions to record before building (the UI's way to approve a flagged
    episode or reject a passing one; the CLI's is ``hvla qa approve|reject``)."""

    approve: list[str] = []
    reject: list[str] = []
    reason: str = ""
    decided_by: str = ""


@dg.asset(
    partitions_def=release_partitions,
    deps=[dg.AssetDep("episodes_hdf5", partition_mapping=ALL_UPSTREAM)],
    group_name="dataset",
    owners=["team:dataset-curation"],
    kinds={"lerobot", "parquet", "mp4"},
    pool=RELEASE,
    description="LeRobot v3.0 dataset release (Parquet + MP4), written with LeRobot's own writer, with a rights dataset card.",
    check_specs=[
        dg.AssetCheckSpec("episode_count", asset="lerobot_dataset", partitions_def=release_partitions, blocking=True,
                          description="The dataset holds exactly the episodes the release spec selected."),
        dg.AssetCheckSpec("schema_stable", asset="lerobot_dataset", partitions_def=release_partitions, blocking=True,
                          description="Feature names, dtypes, shapes and fps equal the previous release of the same repo_id."),
        dg.AssetCheckSpec("tasks_non_empty", asset="lerobot_dataset", partitions_def=release_partitions,
                          description="Every episode has a non-empty task instruction."),
        dg.AssetCheckSpec("timestamps_regular", asset="lerobot_dataset", partitions_def=release_partitions, blocking=True,
                          description="In the written Parquet, every episode's timestamps start at 0 and step by 1/fps, "
                                      "frame_index is 0..n-1 and the global index is contiguous."),
        *[dg.AssetCheckSpec(name, asset="lerobot_dataset", partitions_def=release_partitions,
                            description=f"Release check (warning, never blocks or excludes an episode): {text}")
          for name, text in RELEASE_CHECK_DESCRIPTIONS.items()],
        *rights_check_specs("lerobot_dataset", release_partitions),
    ],
    metadata={"hvla/layer": "dataset", "hvla/canonical": "canonical for sharing"},
)
def lerobot_dataset(context: dg.AssetExecutionContext, config: ReleaseConfig, lake: LakeResource) -> dg.MaterializeResult:
    """Build the release named by the partition key from its registered spec (``release-specs/<name>.yaml``)
    as a new immutable version (``<name>``, ``<name>.1``, ...) when its content changed, else find the
    latest version ``cached`` (lib/dataset/versions.py). ``hvla/release`` names the version.

    Supervisor decisions given in the config (``approve`` / ``reject`` lists with a ``reason``) are
    recorded first, exactly as ``hvla qa approve|reject`` records them, and the release honours them."""
    lk = lake.get_lake()
    if (config.approve or config.reject) and not config.reason.strip():
        raise dg.Failure("approving or rejecting episodes needs a `reason` in the run config")
    for verb, eps in (("approve", config.approve), ("reject", config.reject)):
        for ep in eps:
            rec = record_decision(lk, ep, verb, config.reason, by=config.decided_by or "dagster-ui")
            context.log.info(f"recorded decision {rec}")
    build = build_release(lk, load_release(lk, context.partition_key), progress=context.log.info)
    m = build.manifest
    spec = build.spec  # the version built or found: spec.name == m.release
    selected = len(build.selection.episodes)
    prev = previous_release_manifest(lk, spec)
    diffs = schema_diff(prev.feature_schema, m.feature_schema) if prev else []
    tasks = m.tasks
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": build.uri,
            "dagster/row_count": m.num_frames,
            "hvla/release": spec.name,
            "hvla/release_version": dg.MetadataValue.text(f"{m.release} (version {m.version} of {spec.spec_name})"),
            "hvla/repo_id": spec.repo_id,
            "hvla/num_episodes": m.num_episodes,
            "hvla/num_frames": m.num_frames,
            "hvla/fps": m.fps,
            "hvla/train_episodes": ", ".join(m.train_episode_ids),
            "hvla/heldout_episodes": ", ".join(m.heldout_episode_ids) or "(none)",
            "hvla/excluded_episodes": md_mapping(m.excluded, "episode", "why excluded"),
            "hvla/approved_by_supervisor": md_mapping(m.approved, "episode", "approval"),
            "hvla/min_quality": spec.min_quality,
            "hvla/partitions": ", ".join(m.partitions),
            "hvla/codebase_version": str(m.codebase_version),
            "hvla/reload_probe": md_nested(m.probe),
            "hvla/features": features_table(m.feature_schema),
            "status": build.status,
            "hvla/build": md_nested({"how": build.how or build.status, "base": build.base,
                                     "reason": build.reason}),
            **lineage_metadata(lk, lerobot_prefix(spec)),
            **rights_metadata(build.rights),
        },
        check_results=[
            dg.AssetCheckResult(check_name="episode_count", passed=m.num_episodes == selected,
                                metadata={"hvla/selected": selected, "hvla/written": m.num_episodes}),
            dg.AssetCheckResult(
                check_name="schema_stable", passed=not diffs,
                metadata={"hvla/previous_release": prev.release if prev else "(none: first release of this repo_id)",
                          "hvla/differences": "\n".join(diffs) or "(none)"}),
            dg.AssetCheckResult(check_name="tasks_non_empty", passed=bool(tasks) and all(t.strip() for t in tasks),
                                metadata={"hvla/tasks": "\n".join(tasks) or "(none)"}),
            dg.AssetCheckResult(check_name="timestamps_regular", passed=not m.timestamp_problems,
                                metadata={"hvla/problems": md_mapping(m.timestamp_problems, "episode", "problem")}),
            *release_check_results(build.release_qa),
            rights_check_result(lk, "lerobot_dataset", lerobot_prefix(spec)),
        ],
    )


@dg.asset(
    partitions_def=release_partitions,
    deps=["lerobot_dataset"],
    group_name="dataset",
    owners=["team:ml-training"],
    kinds={"json"},
    pool=RELEASE,
    description="openpi norm_stats.json (mean, std, q01, q99 of state and actions) from the release's train split only.",
    check_specs=[
        dg.AssetCheckSpec("finite", asset="norm_stats", partitions_def=release_partitions, blocking=True, description="Every statistic is finite."),
        dg.AssetCheckSpec("min_std", asset="norm_stats", partitions_def=release_partitions,
                          description=f"No dimension has std below {MIN_STD} (feature units, radians for joints)."),
        *rights_check_specs("norm_stats", release_partitions),
    ],
    metadata={"hvla/layer": "derived", "hvla/computed_from": "train_split_only", "hvla/reusable_across_customers": False},
)
def norm_stats(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Compute column-wise from the Parquet files (no video decoding)."""
    lk = lake.get_lake()
    spec = latest_release_spec(lk, context.partition_key)  # the newest version: name is its id
    b = build_norm_stats(lk, spec)
    problems = b.manifest.problems
    nonfinite = [p for p in problems if "non-finite" in p or "missing" in p]
    low_std = [p for p in problems if "std" in p and p not in nonfinite]
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": b.uri,
            "hvla/release": spec.name,
            "hvla/num_frames": b.manifest.num_frames,
            "hvla/excluded_heldout_episodes": ", ".join(b.manifest.excluded_heldout_episode_ids) or "(none)",
            "hvla/norm_stats": norm_stats_table(load_norm_stats(lk, spec.name), b.manifest.names),
            "status": b.status,
            **lineage_metadata(lk, norm_stats_prefix(spec.name)),
            **rights_metadata(b.rights),
        },
        check_results=[
            dg.AssetCheckResult(check_name="finite", passed=not nonfinite,
                                metadata={"hvla/problems": "\n".join(nonfinite) or "(none)"}),
            dg.AssetCheckResult(check_name="min_std", passed=not low_std, severity=dg.AssetCheckSeverity.WARN,
                                metadata={"hvla/problems": "\n".join(low_std) or "(none)", "hvla/min_std": MIN_STD}),
            rights_check_result(lk, "norm_stats", norm_stats_prefix(spec.name)),
        ],
    )


class RoboDMConfig(dg.Config):
    """Robo-DM cache settings."""

    video_codec: str = DEFAULT_VIDEO_CODEC
    image_atol: float = DEFAULT_IMAGE_ATOL
    roundtrip_seed: int = 0


@dg.asset(
    partitions_def=release_partitions,
    deps=["lerobot_dataset"],
    group_name="dataset",
    owners=["team:ml-training"],
    kinds={"robodm", "parquet"},
    pool=RELEASE,
    description="Robo-DM .vla training cache (one file per episode) + manifest.parquet, built from the release's source HDF5 frames (libx264; size stated as hvla/bytes_ratio of the release).",
    check_specs=[
        dg.AssetCheckSpec("one_file_per_episode", asset="robodm_cache", partitions_def=release_partitions, blocking=True,
                          description="manifest.parquet lists exactly one .vla per episode of the release and every file exists with its size."),
        dg.AssetCheckSpec("codec_written", asset="robodm_cache", partitions_def=release_partitions, blocking=True,
                          description="Every image stream was written with the configured codec (robodm 0.1.0 silently falls back to rawvideo with PyAV ≥ 14)."),
        dg.AssetCheckSpec("roundtrip", asset="robodm_cache", partitions_def=release_partitions, blocking=True,
                          description="A sampled episode read back with robodm equals the release as LeRobot reads it (state/action exact, images within tolerance) and its HDF5 source frames (within tolerance, in order)."),
        *rights_check_specs("robodm_cache", release_partitions),
    ],
    metadata={"hvla/layer": "cache", "hvla/canonical": "derived, disposable"},
)
def robodm_cache(context: dg.AssetExecutionContext, config: RoboDMConfig, lake: LakeResource) -> dg.MaterializeResult:
    """Write the release's episodes from their source HDF5 frames through robodm's ``Trajectory``."""
    lk = lake.get_lake()
    spec = latest_release_spec(lk, context.partition_key)  # the newest version: name is its id
    b = build_cache(lk, spec, video_codec=config.video_codec, image_atol=config.image_atol,
                    roundtrip_seed=config.roundtrip_seed)
    m = b.manifest
    # check_cache re-reads every .vla with PyAV; its codec findings name the image stream
    codec_problems = [p for p in m.problems if IMAGE_PREFIX in p]
    other = [p for p in m.problems if p not in codec_problems]
    return dg.MaterializeResult(
        metadata={
            "dagster/uri": b.uri,
            "dagster/row_count": m.num_frames,
            "hvla/release": spec.name,
            "hvla/num_episodes": m.num_episodes,
            "hvla/bytes": m.bytes,
            "hvla/bytes_ratio": (dg.MetadataValue.float(m.bytes_ratio) if m.bytes_ratio is not None
                                 else dg.MetadataValue.null()),
            "hvla/video_codec": m.config["video_codec"],
            "hvla/codecs_written": md_nested(m.codecs),
            "status": b.status,
            **lineage_metadata(lk, robodm_prefix(spec.name)),
            **rights_metadata(b.rights),
        },
        check_results=[
            dg.AssetCheckResult(check_name="one_file_per_episode", passed=not other,
                                metadata={"hvla/problems": "\n".join(other) or "(none)"}),
            dg.AssetCheckResult(check_name="codec_written", passed=not codec_problems,
                                metadata={"hvla/problems": "\n".join(codec_problems) or "(none)",
                                          "hvla/configured": config.video_codec}),
            dg.AssetCheckResult(check_name="roundtrip", passed=bool(m.roundtrip.get("ok")),
                                metadata={"hvla/result": md_nested(m.roundtrip)}),
            rights_check_result(lk, "robodm_cache", robodm_prefix(spec.name)),
        ],
    )
