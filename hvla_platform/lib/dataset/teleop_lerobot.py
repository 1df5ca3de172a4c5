"""Seed 003's training targets as LeRobot v3.0 releases, written with LeRobot's own writer.

Seed 003 ("LeRobot Conversion (OpenPI)", "LeRobot Schema")::

    observation.state:              (7,)          float32  [q0-q5, gripper/255]
    observation.images.base_rgb:    (256,256,3)   video    Base camera RGB
    observation.images.wrist_rgb:   (256,256,3)   video    Wrist camera RGB
    action:                         (7,)          float32  [q0_next..q5_next, gripper_next/255]
    task:                           string                 Language instruction

``action[t]`` is frame ``t+1``'s ``[q, gripper/255]`` (absolute next step; openpi's ``DeltaActions``
turns the joints into deltas while training); the last frame repeats its own. A stop frame's next
frame is the next stop frame, so every stop frame's action is ``[q_last, 1.0]`` — what the seed
repository's converter writes for them. The frames are the derivation's
(:mod:`hvla_platform.lib.dataset.teleop_targets`: phase filter, no-op removal, stop signal,
images resized to the target's size).

The dataset is written by LeRobot 0.4.4 itself: ``LeRobotDataset.create`` (``vcodec`` as the
release spec's default, ``h264``; LeRobot's PNG-then-encode path: its ``streaming_encoding`` lost
the last frame of an episode's video here, seen on a 43-frame episode), ``add_frame`` per frame,
``save_episode`` per training episode, ``finalize``; it is then
loaded back with ``LeRobotDataset`` and a first and last frame decoded
(:func:`~hvla_platform.lib.dataset.lerobot_release.load_and_probe`). Timestamps are LeRobot's
``frame_index / fps``.

Published by :func:`publish_teleop_lerobot` at ``lerobot/<repo_id>/teleop-<target>`` with a
:class:`~hvla_platform.lib.core.manifest.LeRobotDatasetManifest` whose inputs are the raw teleop
episodes (so lineage reaches the same raw episodes from all three targets), the sources' combined
rights, and a dataset card (``README.md``) that states the target, its phases, the no-op threshold,
the stop-signal rule and the counts removed and added.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hvla_platform.lib.core.compat import import_lerobot_dataset
from hvla_platform.lib.core.keys import lerobot_release_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import Content, Published, publish_if_changed
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.dataset.codec_log import codec_log_path, codec_output_to
from hvla_platform.lib.dataset.lerobot_release import feature_schema, load_and_probe, read_info
from hvla_platform.lib.dataset.teleop_targets import (
    MIN_FRAMES, STOP_SIGNAL_GRIPPER, TargetDerivation, TargetError, TargetOptions, TeleopSource, derive_target,
    sources_rights, target_spec, task_of)
from hvla_platform.lib.dataset.timestamps import check_lerobot_timestamps

#: LeRobot feature keys of seed 003's schema.
STATE_KEY, ACTION_KEY = "observation.state", "action"
IMAGE_KEYS = {"base_rgb": "observation.images.base_rgb", "wrist_rgb": "observation.images.wrist_rgb"}
#: Names of the 7 state / action entries (the seed repository's converter).
MOTOR_NAMES = ["joint_0", "joint_1", "joint_2", "joint_3", "joint_4", "joint_5", "gripper"]
#: LeRobot ``robot_type`` (seed 003's arm).
ROBOT_TYPE = "ur5e"
#: Default LeRobot video codec (the release spec's default: SVT-AV1 is ~4x slower on 2 cores).
DEFAULT_VCODEC = "h264"


def default_repo_id(target: str) -> str:
    """``hvla/ur5e_<target>`` (seed 003 publishes ``<org>/ur5e_<target>``)."""
    return f"hvla/ur5e_{target}"


def release_id(target: str) -> str:
    """``teleop-<target>``: the release id of a target's LeRobot dataset."""
    return f"teleop-{target}"


def teleop_lerobot_prefix(target: str, repo_id: str | None = None) -> str:
    """``lerobot/<repo_id>/teleop-<target>``: where a target's LeRobot release is published."""
    return lerobot_release_prefix(repo_id or default_repo_id(target), release_id(target))


def lerobot_features(image_size: int) -> dict[str, dict[str, Any]]:
    """LeRobot ``features`` of seed 003's schema with ``image_size``-square cameras."""
    motors = {"motors": list(MOTOR_NAMES)}
    feats: dict[str, dict[str, Any]] = {
        key: {"dtype": "video", "shape": (image_size, image_size, 3), "names": ["height", "width", "channel"]}
        for key in IMAGE_KEYS.values()}
    feats[STATE_KEY] = {"dtype": "float32", "shape": (7,), "names": motors}
    feats[ACTION_KEY] = {"dtype": "float32", "shape": (7,), "names": motors}
    return feats


def state_and_action(joint_positions: np.ndarray, gripper01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seed 003's LeRobot state and action of one training episode.

    Args:
        joint_positions: ``(N, 6)`` radians.
        gripper01: ``(N,) float32`` gripper / 255.

    Returns:
        ``(state, action)``, each ``(N, 7) float32``: ``state[t] = [q[t], g[t]]``,
        ``action[t] = state[t + 1]``, ``action[N-1] = state[N-1]``.
    """
    state = np.concatenate([np.asarray(joint_positions, np.float32), np.asarray(gripper01, np.float32)[:, None]],
                           axis=1)
    action = np.concatenate([state[1:], state[-1:]], axis=0)
    return state, action


@dataclass
class TeleopLeRobotResult:
    """What :func:`write_target_lerobot` wrote.

    Attributes:
        root: the dataset root.
        episode_ids: training episode ids in ``episode_index`` order.
        tasks: distinct tasks.
        num_frames: frames written.
        probe: :func:`~hvla_platform.lib.dataset.lerobot_release.load_and_probe` of the written dataset.
    """

    root: Path
    episode_ids: list[str]
    tasks: list[str]
    num_frames: int
    probe: dict[str, Any]


def write_target_lerobot(derivation: TargetDerivation, tasks: dict[str, str], root: Path, repo_id: str, *,
                         vcodec: str = DEFAULT_VCODEC) -> TeleopLeRobotResult:
    """Write one target's training episodes as a LeRobot v3.0 dataset with LeRobot's writer
    (module docstring) and load it back.

    Args:
        derivation: :func:`~hvla_platform.lib.dataset.teleop_targets.derive_target`'s result.
        tasks: source episode id → task string.
        root: dataset root; must not exist.
        repo_id: LeRobot repo id.
        vcodec: LeRobot video codec (``h264``, ``libsvtav1``, ...).

    Raises:
        TargetError: no training episode, or the sources disagree on fps.
        FileExistsError: ``root`` exists (LeRobot's ``create`` needs a fresh directory).
        whatever LeRobot raises writing or reading the dataset.
    """
    eps = derivation.episodes
    if not eps:
        raise TargetError(f"target {derivation.target.name}: no training episode to write "
                          f"({'; '.join(derivation.counts.to_dict()['dropped']) or 'no sources'})")
    rates = sorted({e.fps for e in eps})
    if len(rates) != 1 or abs(rates[0] - round(rates[0])) > 1e-9:
        raise TargetError(f"target {derivation.target.name}: sources at {rates} fps; a LeRobot dataset has one "
                          "integer fps")
    if root.exists():
        raise FileExistsError(f"{root} exists; LeRobotDataset.create needs a fresh directory")
    LeRobotDataset = import_lerobot_dataset()
    ds = LeRobotDataset.create(repo_id=repo_id, fps=int(round(rates[0])), root=root, robot_type=ROBOT_TYPE,
                               features=lerobot_features(int(derivation.options.image_size)), use_videos=True,
                               vcodec=vcodec)
    try:
        for te in eps:
            state, action = state_and_action(te.joint_positions, te.gripper01)
            task = tasks[te.source_episode_id]
            for t in range(te.num_frames):
                frame = {STATE_KEY: state[t], ACTION_KEY: action[t], "task": task}
                for cam, key in IMAGE_KEYS.items():
                    frame[key] = te.images[cam][t]
                ds.add_frame(frame)
            ds.save_episode()
    finally:
        ds.finalize()
    probe = load_and_probe(root, repo_id)
    return TeleopLeRobotResult(root=root, episode_ids=[e.episode_id for e in eps],
                               tasks=sorted({tasks[e.source_episode_id] for e in eps}),
                               num_frames=sum(e.num_frames for e in eps), probe=probe)


def derivation_record(derivation: TargetDerivation) -> dict[str, Any]:
    """The manifest's ``derivation`` field: target, phases, the rules applied and the counts
    (:class:`~hvla_platform.lib.dataset.teleop_targets.TargetCounts`)."""
    t, o = derivation.target, derivation.options
    return {"source": "teleop", "target": t.name, "phases": list(t.phases), "stop_signal": t.stop_signal,
            "stop_signal_rule": (f"{o.stop_signal_frames} copies of each segment's last kept frame with gripper = "
                                 f"{STOP_SIGNAL_GRIPPER}") if t.stop_signal else "none",
            "noop_rule": ("none (keep_noops)" if o.keep_noops else
                          f"drop a frame when max_j |q[t,j] - q[previous kept, j]| <= {o.noop_threshold_rad} rad"),
            "order": ["phase filtering", "no-op removal", "stop-signal synthesis", "delta joints (RLDS)",
                      "image resizing"],
            "options": o.to_dict(), "counts": derivation.counts.to_dict(),
            "segments": "each contiguous run of the target's phases is its own training episode "
                        "(<episode>.seg<k> when an episode has several)"}


def derivation_card_lines(derivation: TargetDerivation) -> list[str]:
    """The dataset card's "Derivation" section (shared by the LeRobot and RLDS cards)."""
    rec = derivation_record(derivation)
    c = rec["counts"]
    lines = [
        "## Derivation (seed 003, in this order)",
        f"- Target: `{rec['target']}` — {derivation.target.purpose}.",
        f"- 1. Phase filtering: phases {', '.join(f'`{p}`' for p in rec['phases'])}; "
        f"{c['outside_phases']} frame(s) outside them removed. {rec['segments'].capitalize()}.",
        f"- 2. No-op removal: {rec['noop_rule']} (L∞ over the six joints, against the previous kept frame; "
        f"the gripper is not compared); {c['noops_removed']} frame(s) removed.",
        f"- 3. Stop signal: {rec['stop_signal_rule']}; {c['stop_frames']} frame(s) added. No-op removal runs "
        "first: the stop frames repeat the last joints and would otherwise be removed as no-ops.",
        "- 4. Delta joints `q[t+1] - q[t]` (the RLDS action; the LeRobot action is the next frame's absolute "
        "`[q, gripper/255]`).",
        f"- 5. Images resized to {rec['options']['image_size']}×{rec['options']['image_size']} (PIL LANCZOS).",
        f"- Sources: {c['source_episodes']} raw episode(s), {c['source_frames']} frame(s) → {c['episodes']} "
        f"training episode(s), {c['frames']} frame(s). Segments shorter than {MIN_FRAMES} frames are dropped.",
    ]
    if c["dropped"]:
        lines.append("- Left out: " + "; ".join(c["dropped"]) + ".")
    lines += ["", "| raw episode | frames | outside phases | no-ops removed | stop frames | training episodes |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {s['episode_id']} | {s['frames']} | {s['outside_phases']} | {s['noops_removed']} | "
              f"{s['stop_frames']} | {s['kept_episodes']} |" for s in c["per_source"]]
    return lines


def rights_card_lines(rights: Rights) -> list[str]:
    """The dataset card's "Data rights" section (the combined rights of the raw episodes)."""
    r = rights.to_dict()
    fields = [("License", "licenses"), ("Allowed uses", "allowed_uses"), ("Data owners", "data_owners"),
              ("Sites", "sites"), ("Customers", "customers"), ("Consent references", "consent_refs"),
              ("Retention until", "retention_until"), ("Contains human video", "contains_human_video"),
              ("Contains customer environment", "contains_customer_environment")]
    out = ["## Data rights (combined over every raw episode read: uses intersected, owners united, "
           "earliest retention)"]
    for label, key in fields:
        v = r.get(key)
        out.append(f"- {label}: {', '.join(map(str, v)) if isinstance(v, list) else v}")
    return out


def card_tail_lines(derivation: TargetDerivation, sources: list[TeleopSource], rights: Rights) -> list[str]:
    """The end of a target's dataset card (LeRobot and RLDS): derivation with counts, the raw
    episodes read, the combined rights."""
    return [*derivation_card_lines(derivation), "", "## Raw episodes (inputs)",
            *[f"- `{s.key}` ({s.episode.episode_id})" for s in sources], "", *rights_card_lines(rights)]


def lerobot_card(derivation: TargetDerivation, result: TeleopLeRobotResult, repo_id: str, rights: Rights,
                 sources: list[TeleopSource]) -> str:
    """The LeRobot release's ``README.md``: schema, derivation with counts, episodes, rights."""
    size = int(derivation.options.image_size)
    lines = [
        f"# {repo_id} — seed 003 teleop target `{derivation.target.name}` (LeRobot v3.0)",
        "",
        "## Schema",
        "| feature | shape | dtype | content |",
        "|---|---|---|---|",
        f"| `{STATE_KEY}` | (7,) | float32 | `[q0..q5, gripper/255]`, radians and 0 (open) … 1 (closed) |",
        f"| `{IMAGE_KEYS['base_rgb']}` | ({size},{size},3) | video | base camera RGB |",
        f"| `{IMAGE_KEYS['wrist_rgb']}` | ({size},{size},3) | video | wrist camera RGB |",
        f"| `{ACTION_KEY}` | (7,) | float32 | next frame's `[q0..q5, gripper/255]` (absolute); the last "
        "frame repeats its own |",
        "| `task` | – | string | language instruction |",
        "",
        f"- Frames: {result.num_frames} in {len(result.episode_ids)} episode(s); tasks: "
        + "; ".join(f"\"{t}\"" for t in result.tasks) + ".",
        f"- Read back with LeRobot's `LeRobotDataset`: {result.probe['num_episodes']} episode(s), "
        f"{result.probe['num_frames']} frame(s), cameras {result.probe['cameras']}.",
        "",
        *card_tail_lines(derivation, sources, rights),
    ]
    return "\n".join(lines) + "\n"


def publish_teleop_lerobot(lake: Lake, sources: list[TeleopSource], target: str, *,
                           options: TargetOptions = TargetOptions(), task: str | None = None,
                           repo_id: str | None = None, vcodec: str = DEFAULT_VCODEC, partitions: list[str] | None = None,
                           progress: Callable[[str], None] | None = None) -> Published:
    """Derive ``target`` from ``sources`` and publish it as a LeRobot release (module docstring);
    ``cached`` when the same sources and options were published already.

    Args:
        lake: the lake.
        sources: the raw episodes (:func:`~hvla_platform.lib.dataset.teleop_targets.teleop_sources`).
        target: ``e2e`` | ``planner`` | ``correction``.
        options: derivation options.
        task: language instruction for every episode (default: each raw manifest's ``task``).
        repo_id: LeRobot repo id (default :func:`default_repo_id`).
        vcodec: LeRobot video codec.
        partitions: the raw partitions read (recorded in the manifest).
        progress: called with short messages.

    Raises:
        TargetError: unknown target, no sources, no training episode, a source without a task.
        RightsError: a source's rights are malformed.
        whatever LeRobot raises.
    """
    spec = target_spec(target)
    if not sources:
        raise TargetError(f"target {target}: no raw teleop episodes given")
    say = progress or (lambda _m: None)
    repo_id = repo_id or default_repo_id(target)
    tasks = {s.episode.episode_id: task_of(s, task) for s in sources}
    rights = sources_rights(sources)
    config = {"target": spec.name, "options": options.to_dict(), "task": task, "vcodec": vcodec,
              "repo_id": repo_id, "format": "lerobot_v3"}
    prefix = teleop_lerobot_prefix(target, repo_id)

    def write(staging: Path) -> Content:
        derivation = derive_target([(s.key, s.episode) for s in sources], spec, options)
        say(f"{target}: {len(derivation.episodes)} training episode(s), {derivation.num_frames} frame(s)")
        root = staging / "dataset"
        with codec_output_to(codec_log_path(release_id(target))):
            result = write_target_lerobot(derivation, tasks, root, repo_id, vcodec=vcodec)
        ts = check_lerobot_timestamps(root)
        info = read_info(root)
        (root / "README.md").write_text(lerobot_card(derivation, result, repo_id, rights, sources))
        for child in root.iterdir():
            child.rename(staging / child.name)
        root.rmdir()
        contributing = sorted({e.source_episode_id for e in derivation.episodes})
        excluded = {s["episode_id"]: "; ".join(s["dropped"]) for s in derivation.counts.to_dict()["per_source"]
                    if s["kept_episodes"] == 0}
        ids = result.episode_ids
        return Content(rights=rights, episode_ids=[s.episode.episode_id for s in sources], extra={
            "release": release_id(target), "spec_name": release_id(target), "version": 0, "repo_id": repo_id,
            "codebase_version": info.get("codebase_version"), "num_episodes": len(ids),
            "num_frames": result.num_frames, "fps": float(info["fps"]),
            "episode_index": {e: i for i, e in enumerate(ids)},
            "train_episode_ids": list(ids), "heldout_episode_ids": [],
            "train_episode_indices": list(range(len(ids))), "heldout_episode_indices": [],
            "excluded": excluded, "approved": {}, "quality_scores": {},
            "partitions": sorted(partitions or []), "feature_schema": feature_schema(info),
            "tasks": result.tasks, "probe": result.probe, "video_codec": vcodec,
            "timestamp_problems": {str(i): r["detail"] for i, r in ts.items() if not r["passed"]},
            "partition_inputs": [], "profile": "", "robot_type": ROBOT_TYPE,
            "derivation": {**derivation_record(derivation), "contributing_episode_ids": contributing},
        })

    return publish_if_changed(lake, prefix, artifact_type="lerobot_dataset",
                              inputs=[s.input_ref() for s in sources], config=config, write=write)



def verify_published_lerobot(lake: Lake, sources: list[TeleopSource], target: str, *,
                             options: TargetOptions = TargetOptions(), repo_id: str | None = None) -> list[str]:
    """Load the published LeRobot release of ``target`` with LeRobot's ``LeRobotDataset`` and
    compare every frame's state, action and episode with a fresh derivation from ``sources``.

    Returns:
        problems (empty = the release holds exactly the target's frames).

    Raises:
        whatever LeRobot raises when the release cannot be read.
    """
    derivation = derive_target([(s.key, s.episode) for s in sources], target, options)
    LeRobotDataset = import_lerobot_dataset()
    problems: list[str] = []
    with lake.local_artifact(teleop_lerobot_prefix(target, repo_id)) as root:
        ds = LeRobotDataset(repo_id or default_repo_id(target), root=root)
        if ds.num_episodes != len(derivation.episodes) or ds.num_frames != derivation.num_frames:
            return [f"{ds.num_episodes} episode(s) / {ds.num_frames} frame(s) published, the derivation has "
                    f"{len(derivation.episodes)} / {derivation.num_frames}"]
        table = ds.hf_dataset.with_format("numpy")
        states = np.stack(table[STATE_KEY])
        actions = np.stack(table[ACTION_KEY])
        ep_index = np.asarray(table["episode_index"])
    start = 0
    for k, te in enumerate(derivation.episodes):
        state, action = state_and_action(te.joint_positions, te.gripper01)
        sl = slice(start, start + te.num_frames)
        if not (ep_index[sl] == k).all():
            problems.append(f"{te.episode_id}: frames {sl.start}-{sl.stop - 1} are not episode {k}")
        elif not (np.array_equal(states[sl], state) and np.array_equal(actions[sl], action)):
            problems.append(f"{te.episode_id}: state/action differ from the derivation")
        start += te.num_frames
    return problems
