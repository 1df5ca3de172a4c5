"""TFDS ``GeneratorBasedBuilder`` s of seed 003's RLDS datasets (``ur5e_vla_e2e``,
``ur5e_vla_planner``, ``ur5e_vla_correction``).

**Imports TensorFlow Datasets: runs only in ``.venv-rlds``** (scripts/install_rlds.sh), as a
subprocess of :mod:`hvla_platform.lib.dataset.rlds_export` through
:mod:`hvla_platform.lib.dataset.rlds_worker`; nothing in the Dagster code location or in ``.venv``
imports it (tensorflow-cpu 2.21 pins ``h5py < 3.15``, ``.venv`` has 3.16).

The features are seed 003's "RLDS Schema", with the per-step fields of the seed's builder
(``scripts/rlds_builder_base.py`` of the seed repository, which follows the
kpertsch/rlds_dataset_builder template)::

    steps:
      observation.image          (S, S, 3) uint8  JPEG  base camera RGB
      observation.wrist_image    (S, S, 3) uint8  JPEG  wrist camera RGB
      observation.state          (8,) float32  [q0..q5, 0.0, gripper 0..1]
      action                     (6,) float32  delta joints q[t+1] - q[t], rad (last step: 0)
      action_gripper             (1,) float32  next step's gripper 0..1 (last step: its own)
      discount                   float32       1.0
      reward                     float32       1.0 on the last step, else 0.0
      is_first / is_last / is_terminal  bool   (is_terminal = is_last)
      language_instruction       string
      language_embedding         (512,) float32  see ``LANGUAGE_EMBEDDING_DOC``
    episode_metadata:
      file_path                  string  lake key of the raw episode
      episode_id                 int32   index of the episode in this dataset
      success                    bool    skill_outcome completed / completed_after_correction
      trajectory_length          int32   steps
      episode_name               string  training episode id (``<raw id>`` or ``<raw id>.seg<k>``)
      language_embedding_model   string  what ``language_embedding`` holds

``S`` is the target's image size (256 by default, the seed's). The builder only packs what the
job hands over: every value is computed in ``.venv`` by
:func:`hvla_platform.lib.dataset.rlds_export.rlds_steps` and written as one ``.npz`` per episode
plus ``job.json`` (see :class:`Ur5eVlaBuilderBase`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

#: The doc of ``language_embedding`` (also in the dataset card): the seed's builder fills it with
#: the Universal Sentence Encoder (TF Hub), which cannot be downloaded here.
LANGUAGE_EMBEDDING_DOC = ("Universal Sentence Encoder (512) slot of the seed's schema. NOT COMPUTED in this "
                          "build: every value is NaN (see episode_metadata.language_embedding_model and the "
                          "dataset card); compute it from language_instruction before using it.")


class Ur5eVlaBuilderBase(tfds.core.GeneratorBasedBuilder):
    """Seed 003's RLDS builder; the three targets subclass it with their name only.

    Args:
        job: the parsed ``job.json`` (``{"image_size", "description", "episodes": [{"file",
            "metadata"}], "language_embedding_model"}``; ``file`` relative to ``job_dir``).
        job_dir: the directory holding ``job.json`` and the episodes' ``.npz`` files (arrays
            ``image``, ``wrist_image``, ``state``, ``action``, ``action_gripper``, ``discount``,
            ``reward``, ``is_first``, ``is_last``, ``is_terminal``, ``language_embedding`` and the
            0-d string ``language_instruction``).
        **kwargs: TFDS builder arguments (``data_dir``).
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def __init__(self, *args: Any, job: dict[str, Any], job_dir: str | Path, **kwargs: Any):
        self._job = job
        self._job_dir = Path(job_dir)
        super().__init__(*args, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        s = int(self._job["image_size"])
        image = dict(shape=(s, s, 3), dtype=np.uint8, encoding_format="jpeg")
        return tfds.core.DatasetInfo(
            builder=self,
            description=self._job["description"],
            homepage="https://github.com/ChangChrisLiu/DataCollection",
            disable_shuffling=True,  # episodes stored (and read) in the order written: episode_id = index
            features=tfds.features.FeaturesDict({
                "steps": tfds.features.Dataset({
                    "observation": tfds.features.FeaturesDict({
                        "image": tfds.features.Image(**image, doc="Base camera RGB."),
                        "wrist_image": tfds.features.Image(**image, doc="Wrist camera RGB."),
                        "state": tfds.features.Tensor(shape=(8,), dtype=np.float32,
                                                      doc="[q0-q5 (rad), 0.0 pad, gripper 0-1]"),
                    }),
                    "action": tfds.features.Tensor(shape=(6,), dtype=np.float32,
                                                   doc="Delta joint positions [dq0-dq5], rad."),
                    "action_gripper": tfds.features.Tensor(shape=(1,), dtype=np.float32,
                                                           doc="Gripper position 0-1 (0=open, 1=close)."),
                    "discount": tfds.features.Scalar(dtype=np.float32, doc="Discount factor (always 1.0)."),
                    "reward": tfds.features.Scalar(dtype=np.float32, doc="1.0 on the last step, 0.0 otherwise."),
                    "is_first": tfds.features.Scalar(dtype=np.bool_),
                    "is_last": tfds.features.Scalar(dtype=np.bool_),
                    "is_terminal": tfds.features.Scalar(dtype=np.bool_),
                    "language_instruction": tfds.features.Text(doc="Language task description."),
                    "language_embedding": tfds.features.Tensor(shape=(512,), dtype=np.float32,
                                                               doc=LANGUAGE_EMBEDDING_DOC),
                }),
                "episode_metadata": tfds.features.FeaturesDict({
                    "file_path": tfds.features.Text(doc="Lake key of the raw teleop episode."),
                    "episode_id": tfds.features.Scalar(dtype=np.int32, doc="Episode index."),
                    "success": tfds.features.Scalar(dtype=np.bool_, doc="Whether the episode was successful."),
                    "trajectory_length": tfds.features.Scalar(dtype=np.int32, doc="Number of steps."),
                    "episode_name": tfds.features.Text(doc="Training episode id (<raw id>[.seg<k>])."),
                    "language_embedding_model": tfds.features.Text(doc="What language_embedding holds."),
                }),
            }),
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for k, entry in enumerate(self._job["episodes"]):
            with np.load(self._job_dir / entry["file"], allow_pickle=False) as z:
                arrays = {name: z[name] for name in z.files}
            n = len(arrays["state"])
            instruction = str(arrays["language_instruction"])
            steps = [{
                "observation": {"image": arrays["image"][t], "wrist_image": arrays["wrist_image"][t],
                                "state": arrays["state"][t]},
                "action": arrays["action"][t], "action_gripper": arrays["action_gripper"][t],
                "discount": arrays["discount"][t], "reward": arrays["reward"][t],
                "is_first": bool(arrays["is_first"][t]), "is_last": bool(arrays["is_last"][t]),
                "is_terminal": bool(arrays["is_terminal"][t]),
                "language_instruction": instruction, "language_embedding": arrays["language_embedding"],
            } for t in range(n)]
            meta = entry["metadata"]
            yield k, {"steps": steps, "episode_metadata": {
                "file_path": meta["file_path"], "episode_id": np.int32(k), "success": bool(meta["success"]),
                "trajectory_length": np.int32(n), "episode_name": meta["episode_name"],
                "language_embedding_model": self._job["language_embedding_model"]}}


class Ur5eVlaE2e(Ur5eVlaBuilderBase):
    """``ur5e_vla_e2e``: all phases, no stop signal."""


class Ur5eVlaPlanner(Ur5eVlaBuilderBase):
    """``ur5e_vla_planner``: teleop only, 3 stop frames."""


class Ur5eVlaCorrection(Ur5eVlaBuilderBase):
    """``ur5e_vla_correction``: correction only, 3 stop frames."""


#: dataset name → builder class.
BUILDERS: dict[str, type[Ur5eVlaBuilderBase]] = {c.name: c for c in (Ur5eVlaE2e, Ur5eVlaPlanner, Ur5eVlaCorrection)}


def build(job_path: str | Path) -> dict[str, Any]:
    """Run the builder a ``job.json`` names (``"name"``, ``"data_dir"``) and return
    ``{"name", "version", "data_dir", "num_episodes", "num_steps"}``.

    Raises:
        KeyError: ``name`` is not one of :data:`BUILDERS`.
    """
    job_path = Path(job_path)
    job = json.loads(job_path.read_text())
    cls = BUILDERS[job["name"]]
    builder = cls(job=job, job_dir=job_path.parent, data_dir=job["data_dir"])
    builder.download_and_prepare(download_dir=str(job_path.parent / "downloads"))
    info = builder.info
    return {"name": builder.name, "version": str(builder.version), "data_dir": job["data_dir"],
            "tensorflow": tf.__version__, "tensorflow_datasets": tfds.__version__,
            "num_episodes": int(info.splits["train"].num_examples),
            "num_steps": sum(int(e["metadata"]["num_steps"]) for e in job["episodes"])}
