"""The trivial policy both servers wrap in benchmarks/policy_server.py: equal cost by construction.

Imports only numpy, so it loads in the platform's venv (numpy 2) and in the openpi-client venv
(numpy < 2). ``infer`` touches the state (so the observation is really decoded) and returns a
constant (10, 14) float32 action chunk.
"""

import numpy as np

HORIZON, ACTION_DIM = 10, 14
METADATA = {"policy": "trivial benchmark policy", "action_horizon": HORIZON, "action_dim": ACTION_DIM}


class TrivialPolicy:
    """``infer(obs) -> {"actions": (10, 14) float32}``; raises ValueError without ``observation/state``."""

    metadata = METADATA

    def __init__(self):
        self._actions = np.zeros((HORIZON, ACTION_DIM), np.float32)

    def infer(self, obs):
        """Return the constant chunk, offset by the mean of the state (forces a read of it)."""
        state = obs.get("observation/state") if isinstance(obs, dict) else None
        if state is None:
            raise ValueError("observation/state missing")
        return {"actions": self._actions + np.float32(np.asarray(state, np.float32).mean())}

    def reset(self):
        """openpi's BasePolicy interface."""
