"""openpi's reference server (PyPI ``openpi-server==0.1.0``, ``WebsocketPolicyServer``) wrapping the
trivial policy. Runs in the openpi-client venv. Usage: python reference_server.py PORT"""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openpi_server import WebsocketPolicyServer  # noqa: E402
from trivial_policy import METADATA, TrivialPolicy  # noqa: E402

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    WebsocketPolicyServer(TrivialPolicy(), host="127.0.0.1", port=int(sys.argv[1]), metadata=METADATA).serve_forever()
