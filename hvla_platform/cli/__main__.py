"""``python -m hvla_platform.cli`` runs the ``hvla`` command."""

import sys

from hvla_platform.cli.main import main

sys.exit(main())
