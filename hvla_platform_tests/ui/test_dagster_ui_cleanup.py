"""The UI helper never leaves ``dagster-webserver`` / ``dagster-daemon`` behind (issue 12 §2): when
starting fails, both process groups are stopped before the error reaches the test."""

import os
import shutil
import signal
import socket

import pytest

from hvla_platform_tests.procs import group_alive
from hvla_platform_tests.ui.dagster_ui import REPO_ROOT, DagsterUI


def test_a_ui_that_fails_to_start_leaves_no_process_behind(tmp_path):
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    ui = DagsterUI(home, tmp_path / "logs")
    with socket.socket() as taken:  # the webserver's port is taken: it exits, the daemon would not
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ui.port = taken.getsockname()[1]
        ui.base_url = f"http://127.0.0.1:{ui.port}"
        try:
            with pytest.raises(RuntimeError, match="dagster-webserver exited"):
                with ui:
                    pytest.fail("the UI started on a port that is in use")
            groups = {name: p.pid for name, p in ui.procs.items()}
            assert set(groups) == {"dagster-webserver", "dagster-daemon"}
            left = [name for name, pgid in groups.items() if group_alive(pgid)]
            assert left == [], f"still running after the failed start: {left}"
        finally:  # on failure of this test, do not leave them either
            for p in ui.procs.values():
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)
