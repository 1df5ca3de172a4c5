"""inspect-robots plugins: the eval report's closed loop on a standard VLA evaluation harness.

`inspect-robots <https://pypi.org/project/inspect-robots/>`_ (0.60.0) runs a *task* (scenes +
scorers + step budget) with a *policy* on an *embodiment* and writes an ``EvalLog``. These plugins,
registered as entry points (``pyproject.toml``, groups ``inspect_robots.embodiments`` /
``.policies`` / ``.tasks`` / ``.scorers``), let it evaluate our checkpoints:

* :mod:`.embodiment` — ``hvla_g1_reach``: the simulated G1 reach task behind the robot client's
  action guard;
* :mod:`.policy` — ``hvla_openpi``: a client of an openpi-protocol policy server (``hvla serve``)
  whose observation keys, cameras, image shapes and action joints come from the server's metadata
  (:mod:`.server_spec`);
* :mod:`.task` / :mod:`.scorers` — ``hvla_reach_touch``: one scene per seed, in or out of the
  training distribution, scored ``hvla_success`` / ``hvla_steps`` / ``hvla_in_distribution``;
* :mod:`.trials` — the eval report's trial records from the EvalLog; :mod:`.view` — its HTML view.

:func:`hvla_platform.lib.evaluation.closed_loop.evaluate_closed_loop` drives them through
``inspect_robots.eval()`` against a policy server on loopback. Names: :mod:`.names`.
"""

from hvla_platform.lib.evaluation.inspect_robots.embodiment import G1ReachEmbodiment, g1_reach_embodiment
from hvla_platform.lib.evaluation.inspect_robots.names import EMBODIMENT, POLICY, TASK
from hvla_platform.lib.evaluation.inspect_robots.policy import OpenpiServerPolicy, openpi_server_policy
from hvla_platform.lib.evaluation.inspect_robots.server_spec import ServerMetadataError, parse_server_metadata
from hvla_platform.lib.evaluation.inspect_robots.task import reach_touch_from_args, reach_touch_task

__all__ = [
    "EMBODIMENT",
    "POLICY",
    "TASK",
    "G1ReachEmbodiment",
    "OpenpiServerPolicy",
    "ServerMetadataError",
    "g1_reach_embodiment",
    "openpi_server_policy",
    "parse_server_metadata",
    "reach_touch_from_args",
    "reach_touch_task",
]
