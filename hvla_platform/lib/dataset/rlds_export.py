"""Seed 003's training targets as RLDS datasets, built by TensorFlow Datasets in its own venv.

Seed 003 ("RLDS Conversion (OpenVLA / OpenVLA-OFT)") builds ``ur5e_vla_<target>`` with a TFDS
``GeneratorBasedBuilder`` (schema: :mod:`hvla_platform.lib.dataset.rlds_builder`). TensorFlow
cannot join ``.venv`` (tensorflow-cpu 2.21.0 requires ``h5py < 3.15``; the platform pins 3.16.0:
``pip install --dry-run`` of both sets fails), and must stay out of the Dagster code server's
imports anyway, so the build runs as a subprocess in ``.venv-rlds`` (scripts/install_rlds.sh) and
the data is handed over as files:

1. here (``.venv``, numpy only): the target is derived
   (:mod:`hvla_platform.lib.dataset.teleop_targets`) and every step value is computed by
   :func:`rlds_steps`; one ``.npz`` per episode + ``job.json`` go to a scratch directory;
2. ``.venv-rlds``: ``python -m hvla_platform.lib.dataset.rlds_worker build job.json`` runs the
   builder (``download_and_prepare``) into the artifact's ``data_dir``;
3. ``.venv-rlds`` again, a fresh process that never imports the builder:
   ``rlds_worker read`` reads it back with ``tfds.builder(name, data_dir=...).as_dataset()``, and
   :func:`readback_problems` compares every value with what was handed over (images within JPEG
   error). A dataset with problems is not published.

``language_embedding`` (the seed's Universal Sentence Encoder, from TF Hub) cannot be computed
here: no model download is possible. The field is written as the schema requires, filled with
**NaN** (never a silent zero: anything that uses it fails loudly), and the builder's feature doc,
``episode_metadata.language_embedding_model``, the manifest and the dataset card say so.

Published by :func:`publish_teleop_rlds` at ``rlds/<name>`` (the prefix is a TFDS ``data_dir``:
``rlds/ur5e_vla_planner/ur5e_vla_planner/1.0.0/*.tfrecord*``) with an
:class:`~hvla_platform.lib.core.manifest.RldsDatasetManifest`.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hvla_platform.lib.core.keys import rlds_prefix
from hvla_platform.lib.core.lake import Lake
from hvla_platform.lib.core.manifest import Content, Published, publish_if_changed
from hvla_platform.lib.core.settings import REPO_ROOT
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.dataset.teleop_lerobot import card_tail_lines, derivation_record
from hvla_platform.lib.dataset.teleop_targets import (
    TargetDerivation, TargetEpisode, TargetError, TargetOptions, TeleopSource, derive_target, sources_rights,
    target_spec, task_of)

#: threads of TensorFlow's pools in the RLDS worker (str, for its environment)
RLDS_THREADS = "1"
#: Environment variable naming the RLDS venv (default ``<repo>/.venv-rlds``).
RLDS_VENV_ENV = "HVLA_RLDS_VENV"
#: The TFDS version of the builders (rlds_builder.Ur5eVlaBuilderBase.VERSION).
RLDS_VERSION = "1.0.0"
#: What ``language_embedding`` holds (episode_metadata.language_embedding_model, manifest, card).
LANGUAGE_EMBEDDING_MODEL = ("none: NOT COMPUTED, every value is NaN (the seed's Universal Sentence Encoder "
                            "cannot be downloaded on this platform); compute it from language_instruction")
#: JPEG tolerance of the read-back: mean absolute difference per frame, 0-255 levels.
JPEG_MAE_TOLERANCE = 3.0
#: Longest a worker command may run (a build of a large target), seconds.
WORKER_TIMEOUT_S = 6 * 3600
#: Skill outcomes that count as success (the seed's builder; ``quality: bad`` in the meta overrides).
SUCCESS_OUTCOMES = ("completed", "completed_after_correction")


class RldsExportError(RuntimeError):
    """The RLDS build or its read-back failed (one line: the command and the worker's error)."""


def dataset_name(target: str) -> str:
    """``ur5e_vla_<target>``: the seed's TFDS builder name for ``target``."""
    return f"ur5e_vla_{target_spec(target).name}"


def rlds_python() -> Path:
    """The interpreter of the RLDS venv (``$HVLA_RLDS_VENV`` or ``<repo>/.venv-rlds``).

    Raises:
        RldsExportError: it is not installed (the message says how to install it).
    """
    venv = Path(os.environ.get(RLDS_VENV_ENV) or REPO_ROOT / ".venv-rlds")
    py = venv / "bin" / "python"
    if not py.exists():
        raise RldsExportError(f"no RLDS venv at {venv}: run ./scripts/install_rlds.sh (tensorflow-cpu + "
                              "tensorflow-datasets, ~1.8 GB) or set HVLA_RLDS_VENV")
    return py


def success_of(meta: dict[str, Any]) -> bool:
    """``episode_metadata.success`` of the seed's builder: the skill outcome is ``completed`` or
    ``completed_after_correction`` and the meta does not mark the episode ``quality: bad``."""
    return meta.get("skill_outcome", "completed") in SUCCESS_OUTCOMES and meta.get("quality", "good") != "bad"


def rlds_steps(te: TargetEpisode, task: str) -> dict[str, np.ndarray]:
    """The RLDS step values of one training episode (schema: rlds_builder's module docstring).

    Returns:
        ``image``, ``wrist_image`` ``(N, S, S, 3) uint8``; ``state`` ``(N, 8) float32`` =
        ``[q0..q5, 0.0, gripper 0..1]``; ``action`` ``(N, 6) float32`` delta joints (step 4);
        ``action_gripper`` ``(N, 1) float32`` next step's gripper 0..1 (last: its own);
        ``discount`` ``(N,) float32`` 1.0; ``reward`` ``(N,) float32`` 1.0 on the last step;
        ``is_first`` / ``is_last`` / ``is_terminal`` ``(N,) bool``; ``language_instruction`` 0-d str;
        ``language_embedding`` ``(512,) float32`` NaN (module docstring).
    """
    n = te.num_frames
    g = te.gripper01
    state = np.zeros((n, 8), np.float32)
    state[:, :6] = te.joint_positions.astype(np.float32)
    state[:, 7] = g
    last = np.zeros(n, bool)
    last[-1] = True
    return {
        "image": te.images["base_rgb"], "wrist_image": te.images["wrist_rgb"], "state": state,
        "action": te.delta_joints.astype(np.float32),
        "action_gripper": np.concatenate([g[1:], g[-1:]])[:, None].astype(np.float32),
        "discount": np.ones(n, np.float32), "reward": last.astype(np.float32),
        "is_first": np.arange(n) == 0, "is_last": last, "is_terminal": last.copy(),
        "language_instruction": np.array(task), "language_embedding": np.full(512, np.nan, np.float32),
    }


def _run_worker(args: list[str], python: Path | None) -> dict[str, Any]:
    py = python or rlds_python()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    # TensorFlow's thread pools default to one thread per core each (intra- and inter-op, plus
    # oneDNN's OpenMP pool): for a few hundred 256×256 frames that only oversubscribes the machine
    # the Dagster run shares with its other steps; one thread each (RLDS_THREADS) is plenty.
    env.update(PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="",
               TF_NUM_INTRAOP_THREADS=RLDS_THREADS, TF_NUM_INTEROP_THREADS=RLDS_THREADS, OMP_NUM_THREADS=RLDS_THREADS,
               TF_ENABLE_ONEDNN_OPTS="0")
    try:
        proc = subprocess.run([str(py), "-m", "hvla_platform.lib.dataset.rlds_worker", *args], env=env,
                              capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RldsExportError(f"rlds_worker {args[0]} did not finish within {WORKER_TIMEOUT_S} s") from None
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RldsExportError(f"rlds_worker {args[0]} exited {proc.returncode} without an answer: {tail}") from None
    if not answer.get("ok"):
        raise RldsExportError(f"rlds_worker {args[0]}: {answer.get('error')}")
    return answer


@dataclass
class RldsBuild:
    """What :func:`build_rlds` built: the worker's answer (``name``, ``version``, ``num_episodes``,
    ``num_steps``, ``tensorflow``, ``tensorflow_datasets``, ``seconds``) and the steps handed over."""

    answer: dict[str, Any]
    steps: list[dict[str, np.ndarray]]
    episode_names: list[str]


def build_rlds(derivation: TargetDerivation, tasks: dict[str, str], data_dir: Path, *,
               python: Path | None = None) -> RldsBuild:
    """Build ``derivation`` as RLDS under ``data_dir`` (a TFDS data_dir) in the RLDS venv.

    Args:
        derivation: the target's training episodes.
        tasks: source episode id → language instruction.
        data_dir: where TFDS writes ``<name>/<version>/``.
        python: the RLDS venv's interpreter (default :func:`rlds_python`).

    Raises:
        TargetError: no training episode.
        RldsExportError: the RLDS venv is missing or the build failed.
    """
    if not derivation.episodes:
        raise TargetError(f"target {derivation.target.name}: no training episode to write")
    name = dataset_name(derivation.target.name)
    steps = [rlds_steps(te, tasks[te.source_episode_id]) for te in derivation.episodes]
    with tempfile.TemporaryDirectory(prefix="hvla-rlds-job-") as tmp:
        job_dir = Path(tmp)
        entries = []
        for k, (te, st) in enumerate(zip(derivation.episodes, steps)):
            np.savez(job_dir / f"{k:06d}.npz", **st)
            entries.append({"file": f"{k:06d}.npz", "metadata": {
                "file_path": te.source_key, "episode_name": te.episode_id, "success": success_of(te.meta),
                "num_steps": te.num_frames}})
        job = {"name": name, "data_dir": str(Path(data_dir).resolve()),
               "image_size": int(derivation.options.image_size), "episodes": entries,
               "language_embedding_model": LANGUAGE_EMBEDDING_MODEL,
               "description": (f"Seed 003 teleop target {derivation.target.name} "
                               f"({derivation.target.purpose}); phases {list(derivation.target.phases)}, "
                               f"stop signal: {derivation.target.stop_signal}. language_embedding: "
                               f"{LANGUAGE_EMBEDDING_MODEL}.")}
        (job_dir / "job.json").write_text(json.dumps(job))
        answer = _run_worker(["build", str(job_dir / "job.json")], python)
    return RldsBuild(answer=answer, steps=steps, episode_names=[te.episode_id for te in derivation.episodes])


@dataclass
class RldsEpisode:
    """One episode as read back by ``tfds.builder(name, data_dir).as_dataset()``: ``steps`` (field →
    stacked array, as :func:`rlds_steps` names them; ``language_instruction`` ``(N,) str``) and
    ``metadata`` (``episode_metadata``)."""

    steps: dict[str, np.ndarray]
    metadata: dict[str, Any]


def read_rlds(data_dir: Path, name: str, *, python: Path | None = None) -> tuple[list[RldsEpisode], dict[str, Any]]:
    """Read a built RLDS dataset back in a fresh RLDS-venv process that does not import the builder.

    Returns:
        ``(episodes in dataset order, the worker's answer)`` (``version``, ``features``, ``seconds``).

    Raises:
        RldsExportError: TFDS cannot read it.
    """
    with tempfile.TemporaryDirectory(prefix="hvla-rlds-read-") as tmp:
        answer = _run_worker(["read", str(Path(data_dir).resolve()), name, tmp], python)
        out = []
        for k in range(int(answer["episodes"])):
            with np.load(Path(tmp) / f"{k:06d}.npz", allow_pickle=False) as z:
                steps = {f: z[f] for f in z.files}
            out.append(RldsEpisode(steps, json.loads((Path(tmp) / f"{k:06d}.json").read_text())))
    return out, answer


def readback_problems(built: RldsBuild, episodes: list[RldsEpisode]) -> tuple[list[str], float]:
    """Compare what TFDS reads back with what was handed to the builder.

    Episodes must come back in the order written (the builders disable TFDS's shuffling). Exact
    for state, action, action_gripper, discount, reward, the flags and the instruction;
    images by mean absolute difference per frame ≤ :data:`JPEG_MAE_TOLERANCE` (JPEG is lossy);
    the embedding must be all NaN.

    Returns:
        ``(problems, worst image MAE)``; no problems = the read-back matches.
    """
    problems: list[str] = []
    worst = 0.0
    if len(episodes) != len(built.steps):
        return [f"{len(episodes)} episode(s) read back, {len(built.steps)} written"], worst
    for k, (want, got) in enumerate(zip(built.steps, episodes)):
        name = built.episode_names[k]
        if got.metadata.get("episode_name") != name or got.metadata.get("episode_id") != k:
            problems.append(f"episode {k}: read back as {got.metadata.get('episode_name')!r} "
                            f"(episode_id {got.metadata.get('episode_id')}), written as {name!r}")
            continue
        for f in ("state", "action", "action_gripper", "discount", "reward", "is_first", "is_last", "is_terminal"):
            if got.steps[f].shape != want[f].shape or not np.array_equal(got.steps[f], want[f]):
                problems.append(f"{name}: {f} differs after read-back")
        if set(got.steps["language_instruction"].tolist()) != {str(want["language_instruction"])}:
            problems.append(f"{name}: language_instruction differs after read-back")
        if not np.isnan(got.steps["language_embedding"]).all():
            problems.append(f"{name}: language_embedding is not the documented NaN")
        for f in ("image", "wrist_image"):
            if got.steps[f].shape != want[f].shape:
                problems.append(f"{name}: {f} shape {got.steps[f].shape}, written {want[f].shape}")
                continue
            mae = np.abs(got.steps[f].astype(np.int16) - want[f].astype(np.int16)).mean(axis=(1, 2, 3))
            worst = max(worst, float(mae.max()))
            if mae.max() > JPEG_MAE_TOLERANCE:
                problems.append(f"{name}: {f} frame {int(mae.argmax())} differs by {mae.max():.2f} levels on "
                                f"average (JPEG tolerance {JPEG_MAE_TOLERANCE})")
    return problems, worst


def rlds_card(derivation: TargetDerivation, built: RldsBuild, rights: Rights, sources: list[TeleopSource],
              tasks: list[str], readback: dict[str, Any]) -> str:
    """The RLDS dataset's ``README.md``: how to load it, schema, the language embedding, derivation
    with counts, inputs, rights."""
    name, s = built.answer["name"], int(derivation.options.image_size)
    lines = [
        f"# {name} — seed 003 teleop target `{derivation.target.name}` (RLDS, TensorFlow Datasets)",
        "",
        f"Load: `tfds.builder(\"{name}\", data_dir=<this directory>).as_dataset(split=\"train\")` (TFDS "
        f"{built.answer.get('tensorflow_datasets')}, version {built.answer['version']}).",
        "",
        "## Schema (per step)",
        f"- `observation.image`, `observation.wrist_image`: ({s}, {s}, 3) uint8 JPEG — base / wrist camera RGB.",
        "- `observation.state`: (8,) float32 `[q0..q5 (rad), 0.0, gripper 0..1]`.",
        "- `action`: (6,) float32 delta joints `q[t+1] - q[t]` (rad); 0 on the last step.",
        "- `action_gripper`: (1,) float32 the next step's gripper 0..1 (the last step: its own).",
        "- `discount` 1.0; `reward` 1.0 on the last step else 0.0; `is_first`, `is_last`, `is_terminal` "
        "(= `is_last`).",
        "- `language_instruction`: " + "; ".join(f"\"{t}\"" for t in tasks) + ".",
        f"- **`language_embedding`: (512,) float32 — {LANGUAGE_EMBEDDING_MODEL}.** The field is kept because "
        "seed 003's schema has it (its builder fills it with the Universal Sentence Encoder); OpenVLA / "
        "OpenVLA-OFT read `language_instruction`, not this field.",
        "- `episode_metadata`: `file_path` (lake key of the raw episode), `episode_id` (index), `success` "
        "(skill outcome completed / completed_after_correction), `trajectory_length`, `episode_name` "
        "(training episode id), `language_embedding_model`.",
        "",
        f"- Episodes: {built.answer['num_episodes']}; steps: {built.answer['num_steps']}.",
        f"- Read back with `tfds.builder(...).as_dataset()` in a process that never imported the builder: "
        f"{readback['episodes']} episode(s), every value equal to what was written (images: worst mean JPEG "
        f"error {readback['worst_image_mae']:.2f} levels of 255).",
        "",
        *card_tail_lines(derivation, sources, rights),
    ]
    return "\n".join(lines) + "\n"


def publish_teleop_rlds(lake: Lake, sources: list[TeleopSource], target: str, *,
                        options: TargetOptions = TargetOptions(), task: str | None = None,
                        python: Path | None = None, progress: Callable[[str], None] | None = None) -> Published:
    """Derive ``target`` from ``sources``, build it as RLDS in the RLDS venv, read it back, and
    publish it at ``rlds/ur5e_vla_<target>`` (module docstring); ``cached`` when unchanged.

    Raises:
        TargetError: unknown target, no sources, no training episode, a source without a task.
        RldsExportError: the RLDS venv is missing, the build failed, or the read-back differs
            (nothing is published then).
    """
    spec = target_spec(target)
    if not sources:
        raise TargetError(f"target {target}: no raw teleop episodes given")
    say = progress or (lambda _m: None)
    name = dataset_name(spec.name)
    tasks = {s.episode.episode_id: task_of(s, task) for s in sources}
    rights = sources_rights(sources)
    config = {"target": spec.name, "options": options.to_dict(), "task": task, "format": "rlds",
              "dataset_name": name, "version": RLDS_VERSION, "language_embedding": LANGUAGE_EMBEDDING_MODEL}

    def write(staging: Path) -> Content:
        derivation = derive_target([(s.key, s.episode) for s in sources], spec, options)
        t0 = time.monotonic()
        built = build_rlds(derivation, tasks, staging, python=python)
        build_s = time.monotonic() - t0
        say(f"{name}: built {built.answer['num_episodes']} episode(s), {built.answer['num_steps']} step(s) "
            f"in {build_s:.1f} s")
        episodes, read_answer = read_rlds(staging, name, python=python)
        problems, worst = readback_problems(built, episodes)
        if problems:
            raise RldsExportError(f"{name}: read-back differs from what was written: {'; '.join(problems[:3])}"
                                  + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""))
        readback = {"episodes": len(episodes), "problems": [], "worst_image_mae": round(worst, 3),
                    "jpeg_mae_tolerance": JPEG_MAE_TOLERANCE, "seconds": read_answer.get("seconds"),
                    "features": read_answer.get("features")}
        used = sorted(set(tasks[e.source_episode_id] for e in derivation.episodes))
        (staging / "README.md").write_text(
            rlds_card(derivation, built, rights, sources, used, readback))
        return Content(rights=rights, episode_ids=[s.episode.episode_id for s in sources], extra={
            "dataset_name": name, "dataset_version": built.answer["version"], "target": spec.name,
            "num_episodes": int(built.answer["num_episodes"]), "num_steps": int(built.answer["num_steps"]),
            "image_size": int(options.image_size), "tasks": used, "episode_names": built.episode_names,
            "language_embedding": LANGUAGE_EMBEDDING_MODEL,
            "derivation": {**derivation_record(derivation),
                           "contributing_episode_ids": sorted({e.source_episode_id for e in derivation.episodes})},
            "readback": readback, "build_seconds": round(build_s, 3),
            "packages": {"tensorflow": built.answer.get("tensorflow"),
                         "tensorflow_datasets": built.answer.get("tensorflow_datasets")},
        })

    return publish_if_changed(lake, rlds_prefix(name), artifact_type="rlds_dataset",
                              inputs=[s.input_ref() for s in sources], config=config, write=write)



def verify_published_rlds(lake: Lake, sources: list[TeleopSource], target: str, *,
                          options: TargetOptions = TargetOptions(), task: str | None = None,
                          python: Path | None = None) -> list[str]:
    """Re-read the published RLDS dataset of ``target`` with ``tfds.builder(...).as_dataset()`` and
    compare it with a fresh derivation from ``sources`` (:func:`readback_problems`).

    Returns:
        problems (empty = the published dataset holds exactly the target's values).

    Raises:
        RldsExportError: the RLDS venv is missing or TFDS cannot read the dataset.
    """
    name = dataset_name(target)
    derivation = derive_target([(s.key, s.episode) for s in sources], target, options)
    tasks = {s.episode.episode_id: task_of(s, task) for s in sources}
    steps = [rlds_steps(te, tasks[te.source_episode_id]) for te in derivation.episodes]
    built = RldsBuild({"name": name}, steps, [te.episode_id for te in derivation.episodes])
    with lake.local_artifact(rlds_prefix(name)) as root:
        episodes, _ = read_rlds(root, name, python=python)
    return readback_problems(built, episodes)[0]
