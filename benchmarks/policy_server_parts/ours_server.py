"""hvla-platform's PolicyServer wrapping the trivial policy, with its inference log on, started as
``hvla serve`` starts it (``serve_forever``). Runs in the platform's venv.

Usage: python ours_server.py PORT LOG_DIR [--no-keep-heap]   (``--no-keep-heap``: glibc's default
allocator settings, ``serve_forever(keep_heap=False)``)"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hvla_platform.lib.serving.inference_log import InferenceLog  # noqa: E402
from hvla_platform.lib.serving.server import PolicyServer  # noqa: E402
from trivial_policy import METADATA, TrivialPolicy  # noqa: E402

if __name__ == "__main__":
    log = InferenceLog(sys.argv[2], checkpoint="benchmark/trivial")
    try:
        PolicyServer(TrivialPolicy(), host="127.0.0.1", port=int(sys.argv[1]), metadata=METADATA,
                     inference_log=log).serve_forever(keep_heap="--no-keep-heap" not in sys.argv[3:])
    finally:
        log.close()
