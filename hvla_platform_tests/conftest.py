"""Shared fixtures: a real S3 server (SeaweedFS) over HTTP, checkpoints."""

from pathlib import Path

import pytest

from hvla_platform_tests.fixtures.seaweedfs import seaweedfs_s3
from hvla_platform_tests.heartbeat import Heartbeat, interval_from_env
from hvla_platform_tests.machine_lock import hold

UI_TESTS = Path(__file__).resolve().parent / "ui"
#: Modules under ``ui/`` that start no Dagster UI and no browser (the browser runner's own test).
UI_SHARED = {"test_browser_script.py"}

_heartbeat: list[Heartbeat] = []


def pytest_configure(config):
    """Start the heartbeat (:mod:`hvla_platform_tests.heartbeat`) in the controlling process only
    (a pytest-xdist worker has ``workerinput``)."""
    interval = interval_from_env()
    if hasattr(config, "workerinput") or interval == 0:
        return
    beat = Heartbeat(interval)
    beat.start()
    _heartbeat.append(beat)


def pytest_unconfigure(config):
    while _heartbeat:
        _heartbeat.pop().stop()


def pytest_runtest_logstart(nodeid, location):
    for beat in _heartbeat:
        beat.test_started(nodeid)


def pytest_runtest_logfinish(nodeid, location):
    for beat in _heartbeat:
        beat.test_finished(nodeid)


def pytest_collection_modifyitems(session, config, items):
    """Modules holding an end-to-end test (marker ``e2e``, the suite's longest modules: 50–150 s
    each on an idle 2-core machine) run first, the rest keep their order: collected last (they sit
    at the top level) and handed out last by xdist's default order (most tests first; scripts/test.sh
    passes ``--no-loadscope-reorder``), they kept one worker busy after the other had run out of
    work. The order is the same in every pytest-xdist worker, as xdist requires."""
    heavy = {item.path for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: item.path not in heavy)  # stable: within each group, collection order


@pytest.fixture(scope="module", autouse=True)
def machine_share(request):
    """The machine test lock for the module (:mod:`hvla_platform_tests.machine_lock`): exclusive for
    the Dagster UI and browser tests under ``ui/``, shared for every other module, so that a UI test
    never runs beside another test (of this or another pytest-xdist worker)."""
    path = Path(str(request.fspath)).resolve()
    exclusive = UI_TESTS in path.parents and path.name not in UI_SHARED
    with hold(exclusive=exclusive):
        yield


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A SeaweedFS S3 gateway on free loopback ports for the whole session; yields its endpoint URL."""
    with seaweedfs_s3(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


@pytest.fixture()
def s3_client(s3_server, monkeypatch):
    """A real boto3 S3 client talking HTTP to the SeaweedFS server (path-style addressing)."""
    import boto3
    from botocore.config import Config

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=Config(s3={"addressing_style": "path"}))


@pytest.fixture(scope="session")
def openpi_lake(tmp_path_factory) -> dict:
    """The lake of :func:`hvla_platform_tests.lib.dataset.test_openpi_export.build_openpi_lake`
    (release ``t-openpi``, its norm stats and openpi export), built once for the session and shared
    by the export's library, asset and LeRobot 0.3.3 tests. Tests may add artifacts to it; one that
    damages a file restores it."""
    from hvla_platform_tests.lib.dataset.test_openpi_export import build_openpi_lake

    return build_openpi_lake(tmp_path_factory.mktemp("openpi"))


from hvla_platform_tests.fixtures.checkpoints import policy, step_dir  # noqa: E402,F401  (shared fixtures)
