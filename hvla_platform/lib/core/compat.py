"""Import helpers for LeRobot (via torchvision) and Robo-DM on this platform's environment.

Two environment problems are worked around here, narrowly and only when they actually occur
(``docs/environment.md`` / the shared ENVIRONMENT notes describe both):

1. **torchvision 0.28 from PyPI is a CUDA build**, while torch is the CPU build. Its compiled
   extension ``torchvision/_C.so`` fails to load, and ``import torchvision`` then dies in
   ``torchvision/_meta_registrations.py`` with ``RuntimeError: operator torchvision::nms does not
   exist`` -- that module registers fake (meta) kernels for ``torchvision::nms`` and
   ``torchvision::qnms`` with ``torch.library.register_fake``, which requires the op *schemas* to
   exist. LeRobot imports torchvision at module level (``lerobot.datasets.video_utils``) but only
   uses its pure-Python parts (``transforms.v2``). :func:`ensure_torchvision_importable` first
   tries to load ``_C.so`` exactly as torchvision would (``torch.ops.load_library``); only if that
   fails, and only for schemas not already registered, does it *define* the two schemas with
   ``torch.library`` (no kernels). Calling ``torchvision.ops.nms`` afterwards still fails loudly
   (torchvision's own ``_assert_has_ops``), so nothing silently computes wrong results.

2. **``import robodm`` reconfigures the root logger** (``robodm/__init__.py`` calls
   ``logging.basicConfig`` with its own format and sets the root level to INFO), which would
   change the logging of the whole host process (Dagster, tests). :func:`import_robodm` imports
   it inside :func:`preserve_root_logging`, which restores the root logger's handlers and level.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

#: torchvision op schemas needed by ``torchvision/_meta_registrations.py`` at import time.
#: Signatures as declared by torchvision's C++ sources (``torchvision/csrc/ops/nms.cpp``,
#: ``quantized/cpu/qnms_kernel.cpp``).
TORCHVISION_OP_SCHEMAS: dict[str, str] = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}

# Keeps the torch.library.Library alive: schemas defined through it are removed when it is
# garbage collected.
_TV_LIBRARY: Any = None
_TV_STATUS: str | None = None


def _op_schema_exists(name: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def ensure_torchvision_importable() -> str:
    """Make ``import torchvision`` work with the CPU torch (see the module docstring).

    Idempotent. Must run before the first ``import torchvision`` of the process to have any
    effect; if torchvision is already imported nothing is done.

    Returns:
        How torchvision's ops are provided: ``"already-imported"``, ``"native"`` (its compiled
        extension loaded: no workaround needed), or ``"schemas-registered"`` (the workaround was
        applied; ``torchvision.ops`` C++ ops are unavailable).

    Raises:
        ImportError: torchvision is not installed.
    """
    global _TV_LIBRARY, _TV_STATUS
    if _TV_STATUS is not None:
        return _TV_STATUS
    if "torchvision" in sys.modules:
        _TV_STATUS = "already-imported"
        return _TV_STATUS
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("torchvision is not installed")
    import torch

    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    candidates = sorted(pkg_dir.glob("_C*.so")) + sorted(pkg_dir.glob("_C*.pyd"))
    loaded = False
    for lib in candidates:
        try:
            torch.ops.load_library(str(lib))
            loaded = True
            break
        except (OSError, ImportError):
            continue
    if loaded and all(_op_schema_exists(n) for n in TORCHVISION_OP_SCHEMAS):
        _TV_STATUS = "native"
        return _TV_STATUS
    missing = [n for n in TORCHVISION_OP_SCHEMAS if not _op_schema_exists(n)]
    if missing:
        _TV_LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
        for name in missing:
            _TV_LIBRARY.define(TORCHVISION_OP_SCHEMAS[name])
    _TV_STATUS = "schemas-registered"
    return _TV_STATUS


def import_torchvision() -> ModuleType:
    """Apply :func:`ensure_torchvision_importable`, then ``import torchvision`` and return it."""
    ensure_torchvision_importable()
    return importlib.import_module("torchvision")


def import_lerobot_dataset() -> type:
    """Return ``lerobot.datasets.lerobot_dataset.LeRobotDataset``, importing torchvision safely first.

    Raises:
        ImportError: lerobot (0.4.x) or torchvision is not installed.
    """
    import_torchvision()
    mod = importlib.import_module("lerobot.datasets.lerobot_dataset")
    # LeRobot builds episodes through `datasets`, which draws a progress bar per episode and per
    # file; in Dagster logs and CI output those bars are noise.
    importlib.import_module("datasets").disable_progress_bars()
    return mod.LeRobotDataset


#: Alias with the name used in the platform's design notes.
import_lerobot = import_lerobot_dataset


@contextlib.contextmanager
def preserve_root_logging() -> Iterator[None]:
    """Restore the root logger's handlers, level and the handlers' formatters on exit.

    Used around imports of libraries that call ``logging.basicConfig`` or set the root level at
    import time.
    """
    root = logging.getLogger()
    handlers = list(root.handlers)
    formatters = {id(h): h.formatter for h in handlers}
    level = root.level
    try:
        yield
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
            h.setFormatter(formatters[id(h)])
        root.setLevel(level)


def import_robodm() -> ModuleType:
    """``import robodm`` without letting it reconfigure the root logger; returns the module.

    robodm's ``trajectory`` module also sets the ``libav`` logger to CRITICAL at import; that
    logger is library-specific and is left as robodm set it.

    Raises:
        ImportError: robodm is not installed.
    """
    if "robodm" in sys.modules:
        return sys.modules["robodm"]
    with preserve_root_logging():
        return importlib.import_module("robodm")
