"""hvla-platform's PolicyServer wrapping the trivial policy, with its inference log on (as in
production). Runs in the platform's venv. Usage: python ours_server.py PORT LOG_DIR"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hvla_platform.lib.serving.inference_log import InferenceLog  # noqa: E402
from hvla_platform.lib.serving.server import PolicyServer  # noqa: E402
from trivial_policy import METADATA, TrivialPolicy  # noqa: E402

if __name__ == "__main__":
    log = InferenceLog(sys.argv[2], checkpoint="benchmark/trivial")
    PolicyServer(TrivialPolicy(), host="127.0.0.1", port=int(sys.argv[1]), metadata=METADATA,
                 inference_log=log).serve_forever()
