"""Closed-loop trials through the deployment path on one machine: a :class:`PolicyServer` on a free
loopback port, a :class:`PolicyClient` connected to it, and :func:`run_robot` driving the simulated
robot — the same three pieces as ``hvla serve`` + ``hvla deploy``, in one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from hvla_platform.lib.serving.checkpoint import EVALUATION_USE, PROTOCOL, server_metadata
from hvla_platform.lib.serving.client import PolicyClient
from hvla_platform.lib.serving.inference_log import InferenceLog
from hvla_platform.lib.serving.prompts import PromptCheckedPolicy
from hvla_platform.lib.serving.robot import RobotConfig, run_robot
from hvla_platform.lib.serving.safety import SafetyLog
from hvla_platform.lib.serving.server import PolicyServer, ServablePolicy


def closed_loop_via_server(policy: ServablePolicy, *, checkpoint_key: str | None, env_factory: Callable[[], Any],
                           arm_limits: tuple[Sequence[float], Sequence[float]], cfg: RobotConfig, log_dir: Path,
                           log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Serve ``policy`` on 127.0.0.1 (a free port) for :data:`EVALUATION_USE` and run the robot
    client's trials against it.

    The server's inference log goes to ``log_dir/serving/`` and the robot safety log to
    ``log_dir/robot_safety.jsonl``. As under ``hvla serve``, the first request with each prompt that
    is not one of the checkpoint's training tasks adds a ``prompt_warning`` line to the inference
    log (:mod:`hvla_platform.lib.serving.prompts`). A server error fails the evaluation (it is
    raised, not counted as a robot fault).

    Returns:
        :func:`run_robot`'s result plus ``"served_via": {"protocol", "url", "requests"}``.

    Raises:
        ServerError: the server rejected an observation. Errors of :func:`run_robot`.
    """
    ilog = InferenceLog(Path(log_dir) / "serving", checkpoint=str(policy.metadata.get("checkpoint")))
    slog = SafetyLog(Path(log_dir) / "robot_safety.jsonl")
    meta = server_metadata(dict(policy.metadata), use=EVALUATION_USE, checkpoint_key=checkpoint_key)
    try:
        checked = PromptCheckedPolicy(policy, lambda w: ilog.write("prompt_warning", **w))
        with PolicyServer(checked, host="127.0.0.1", port=0, metadata=meta, inference_log=ilog) as server:
            url = f"ws://127.0.0.1:{server.port}"
            slog.mode("connecting", server=url)
            with PolicyClient(url) as client:
                result = run_robot(client.infer, client.metadata, env_factory, arm_limits, cfg, safety_log=slog,
                                   stop_on_fault=False, log=log)
    finally:
        ilog.close()
        slog.close()
    result["served_via"] = {"protocol": PROTOCOL, "url": url,
                            "requests": sum(t["queries"] for t in result["per_trial"])}
    return result
