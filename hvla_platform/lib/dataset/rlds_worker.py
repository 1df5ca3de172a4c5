"""The RLDS worker, run in ``.venv-rlds``: ``python -m hvla_platform.lib.dataset.rlds_worker CMD ...``.

Commands (each prints one JSON object on its last stdout line; exit 0 on success, 2 on a refused
job with ``{"ok": false, "error": "<type>: <message>"}``):

- ``build JOB_JSON``: runs the TFDS builder of :mod:`hvla_platform.lib.dataset.rlds_builder` on the
  job (``download_and_prepare`` into the job's ``data_dir``); answers ``{"ok": true, "name",
  "version", "data_dir", "num_episodes", "num_steps", "seconds"}``.
- ``read DATA_DIR NAME OUT_DIR``: reads the dataset back the way its users do,
  ``tfds.builder(NAME, data_dir=DATA_DIR).as_dataset(split="train")``, **without importing the
  builder module** (TFDS reads the prepared files by themselves, as on a training server), and
  writes per episode ``<k>.npz`` (every step field stacked; images decoded) and ``<k>.json``
  (``episode_metadata``), and answers ``{"ok": true, "episodes": n, "version", "features"}``
  (``features``: the dataset's feature spec as TFDS reports it, ``str``).

This module imports only the standard library at module level, so ``read`` never registers the
builders.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

EXIT_REFUSED = 2


def read(data_dir: str, name: str, out_dir: str) -> dict[str, Any]:
    """See the module docstring (``read``)."""
    import numpy as np  # deferred: the worker's imports happen per command
    import tensorflow_datasets as tfds  # deferred: heavy; only in .venv-rlds

    builder = tfds.builder(name, data_dir=data_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for k, ep in enumerate(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False))):
        steps = list(ep["steps"])
        arrays: dict[str, Any] = {
            "image": np.stack([s["observation"]["image"] for s in steps]),
            "wrist_image": np.stack([s["observation"]["wrist_image"] for s in steps]),
            "state": np.stack([s["observation"]["state"] for s in steps]),
        }
        for key in ("action", "action_gripper", "discount", "reward", "is_first", "is_last", "is_terminal",
                    "language_embedding"):
            arrays[key] = np.stack([s[key] for s in steps])
        arrays["language_instruction"] = np.array([s["language_instruction"].decode() for s in steps])
        np.savez(out / f"{k:06d}.npz", **arrays)
        meta = {key: (v.decode() if isinstance(v, bytes) else v.item()) for key, v in ep["episode_metadata"].items()}
        (out / f"{k:06d}.json").write_text(json.dumps(meta))
        n += 1
    return {"episodes": n, "version": str(builder.version), "features": str(builder.info.features)}


def main(argv: list[str]) -> int:
    """Run one command (module docstring); returns the exit code."""
    t0 = time.monotonic()
    try:
        if argv[:1] == ["build"] and len(argv) == 2:
            from hvla_platform.lib.dataset.rlds_builder import build  # deferred: imports tensorflow_datasets, only for `build`

            answer: dict[str, Any] = build(argv[1])
        elif argv[:1] == ["read"] and len(argv) == 4:
            answer = read(argv[1], argv[2], argv[3])
        else:
            raise ValueError(f"usage: rlds_worker build JOB_JSON | read DATA_DIR NAME OUT_DIR (got {argv})")
    except Exception as exc:  # noqa: BLE001 - reported as the one-line answer the parent raises with
        print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
        return EXIT_REFUSED
    print(json.dumps({"ok": True, **answer, "seconds": round(time.monotonic() - t0, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
