"""A training-data summary per checkpoint, in the spirit of the EU AI Act's public summary of
training content (Art. 53(1)(d); the Commission's template, 2025): which datasets, their provenance,
how data was obtained and selected, what cleaning and QA was applied, and known gaps — generated
from the lineage manifests, not written by hand (seed 001, "EU AI Act's training-data
documentation")."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hvla_platform.lib.core.keys import episodes_prefix
from hvla_platform.lib.core.manifest import EpisodesManifest, LeRobotDatasetManifest, load_manifest
from hvla_platform.lib.dataset.spec import ReleaseSpec
from hvla_platform.lib.formats.recording.profile import DEFAULT_PROFILE
from hvla_platform.lib.core.lake import Lake


def _fmt(items) -> str:
    items = list(items)
    return ", ".join(str(i) for i in items) if items else "(none)"


def training_data_summary(lake: Lake, *, release_manifest: LeRobotDatasetManifest, spec: ReleaseSpec, checkpoint_key: str,
                          train_episode_ids: list[str], norm_stats_release: str, config: dict[str, Any]) -> str:
    """Markdown training-data summary of one checkpoint.

    Args:
        release_manifest: the LeRobot release's manifest (``lerobot/<repo>/<release>``).
        train_episode_ids: the episodes the checkpoint was trained on.
    """
    train = set(train_episode_ids)
    inputs = [i for i in release_manifest.inputs if set(i.episode_ids) & train]
    extra = [i.extra or {} for i in inputs]
    robots = Counter(e.get("robot_id") for e in extra)
    sites = Counter(e.get("site") for e in extra)
    days = sorted({e.get("capture_day") for e in extra})
    operators = sorted({e.get("operator") for e in extra if e.get("operator")})
    rights = release_manifest.rights
    qa_cfg: dict[str, Any] = {}
    for part in release_manifest.partitions:
        day, robot = part.split("|")
        m = load_manifest(lake, episodes_prefix(day, robot), EpisodesManifest)
        if m:
            qa_cfg = m.config.get("qa", qa_cfg)
    excluded = release_manifest.excluded
    approved = release_manifest.approved
    scores = [s for e, s in release_manifest.quality_scores.items() if e in train and s is not None]
    lines = [
        f"# Training-data summary — `{checkpoint_key}`",
        "",
        "## 1. Datasets used",
        f"- LeRobot v3.0 release `{spec.name}` of `{spec.repo_id}` (`{release_manifest.artifact_key}`), "
        f"train split: {len(train)} episodes; held-out episodes not used for training or norm stats: "
        f"{_fmt(release_manifest.heldout_episode_ids)}.",
        f"- Robot profile `{spec.profile}` (robot type `{spec.robot_type}`): `observation.state` "
        f"{len(spec.state_joints)} joints, `action` {len(spec.action_joints)} joints, cameras "
        f"{_fmt(spec.cameras)}; episodes of other profiles are not in the release.",
        f"- Normalization statistics: release `{norm_stats_release}` (train split only).",
        f"- Training config: {', '.join(f'{k}={v}' for k, v in sorted(config.items()) if k in ('config_name', 'steps', 'seed', 'batch_size', 'learning_rate', 'action_horizon'))}.",
        "",
        "## 2. Provenance",
        f"- Robots: {_fmt(f'{r} ({n} episodes)' for r, n in sorted(robots.items()))}.",
        f"- Sites: {_fmt(f'{s} ({n})' for s, n in sorted(sites.items()))}; capture days: {_fmt(days)}.",
        f"- Operators (pseudonymous): {_fmt(operators)}.",
        f"- Data owners: {_fmt(rights['data_owners'])}; customers: {_fmt(rights['customers'])}; "
        f"consent records: {_fmt(rights['consent_refs'])}; licenses: {_fmt(rights['licenses'])}.",
        f"- Contains human video: {rights['contains_human_video']}; contains customer environment: "
        f"{rights['contains_customer_environment']}; retention until {rights['retention_until']}.",
        f"- Every episode is traceable to its raw MCAP by sha256 (release manifest inputs; `hvla lineage upstream {checkpoint_key}`).",
        "",
        "## 3. How the data was obtained and selected",
        "- Robot logs (ROS 2 MCAP) landed write-once, validated (readable, required topics, monotonic "
        "timestamps, rights block), synchronised to "
        f"{release_manifest.fps} fps.",
        f"- Release selection: partitions {_fmt(release_manifest.partitions)}; episodes with a quality score "
        f"below {spec.min_quality} or a failed QA gate left out unless approved; expired or supervisor-rejected "
        "episodes left out.",
        f"- Left out of the release: {_fmt(f'{e} ({why})' for e, why in sorted(excluded.items()))}.",
        f"- Included by supervisor approval despite QA flags: {_fmt(f'{e} ({why})' for e, why in sorted(approved.items()))}.",
        "",
        "## 4. Cleaning and QA applied",
        "- Episode QA (docs/qa.md): timing (dropped messages, clock jumps, duration, camera frame count), "
        "signals (NaN/Inf, joint limits from the robot model, action spikes, frozen joints, smoothness, "
        "action/state divergence), cameras (black, saturated, frozen, undecodable frames), labels (task).",
        f"- Quality scores of the training episodes: min {min(scores):.3f}, mean {sum(scores) / len(scores):.3f}." if scores
        else "- Quality scores: not available.",
        f"- QA thresholds: {_fmt(f'{k}={v}' for k, v in sorted(qa_cfg.items()))}.",
        "",
        "## 5. Known gaps and limitations",
        f"- Tasks: {_fmt(release_manifest.tasks)} — a narrow task distribution; "
        f"{len(robots)} robot(s), {len(sites)} site(s).",
        "- Episodes marked `source: simulation` in their metadata come from the platform's MuJoCo "
        f"recorder (`hvla sim record --profile {spec.profile}`), not a physical robot; no contact-rich "
        "manipulation" + (", no locomotion (pelvis fixed)." if spec.profile == DEFAULT_PROFILE else "."),
        "- Held-out episodes come from the same distribution as the training episodes.",
    ]
    return "\n".join(lines) + "\n"
