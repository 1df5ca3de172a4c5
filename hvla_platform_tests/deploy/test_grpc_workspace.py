"""The production workspace: the webserver and daemon load the code location from a gRPC code server
(`dagster code-server start`, the image's command). A real server is started on a loopback port
and deploy/workspace.yaml, with only its host and port changed, is loaded the way
`dagster-webserver -w` / `dagster-daemon run -w` load it. No PostgreSQL is needed here."""

from __future__ import annotations

import os
from typing import Iterator

import dagster as dg
import pytest
import yaml

from hvla_platform_tests.deploy.conftest import DEPLOY, CodeServer, start_code_server, stop_code_server

LIFECYCLE_ASSETS = {"raw_mcap", "episodes_hdf5", "lerobot_dataset", "norm_stats", "robodm_cache", "openpi_export",
                    "checkpoint", "eval_report",
                    # other sources (issue 17)
                    "raw_teleop", "teleop_target_lerobot", "teleop_target_rlds", "raw_human_video",
                    "human_video_release", "mixture_release"}


@pytest.fixture(scope="module")
def code_server(tmp_path_factory) -> Iterator[CodeServer]:
    """A code server with a throwaway HVLA_HOME (it only serves definitions here)."""
    root = tmp_path_factory.mktemp("grpc")
    env = {**os.environ, "HVLA_HOME": str(root / "hvla"), "DAGSTER_HOME": str(root / "dagster_home")}
    (root / "dagster_home").mkdir()
    server = start_code_server(root, env)
    yield server
    stop_code_server(server.proc)


def test_committed_workspace_targets_the_compose_code_server():
    ws = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = ws["load_from"]
    assert entry == {"grpc_server": {"host": "hvla-code", "port": 4000, "location_name": "hvla_platform"}}


def test_rendered_workspace_differs_only_in_address(code_server: CodeServer):
    committed = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    rendered = yaml.safe_load(code_server.workspace.read_text())
    committed["load_from"][0]["grpc_server"].update(host=code_server.host, port=code_server.port)
    assert rendered == committed


def test_code_location_loads_over_grpc(code_server: CodeServer):
    from dagster._core.remote_representation.code_location import GrpcServerCodeLocation
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with dg.instance_for_test() as inst, WorkspaceProcessContext(
            inst, WorkspaceFileTarget(paths=[str(code_server.workspace)])) as ctx:
        req = ctx.create_request_context()
        assert req.code_location_names == ["hvla_platform"]
        err = req.get_code_location_error("hvla_platform")
        assert err is None, err.to_string()
        location = req.get_code_location("hvla_platform")
        assert isinstance(location, GrpcServerCodeLocation)
        assert (location.host, location.port) == (code_server.host, code_server.port)
        (repo,) = location.get_repositories().values()
        nodes = {n.asset_key.to_user_string(): n for n in repo.get_asset_node_snaps()}
        assert set(nodes) == LIFECYCLE_ASSETS
        assert nodes["checkpoint"].pools == {"training"}  # what the queue's pool limit acts on
        assert {"ingest_job", "release_job", "training_job"} <= {j.name for j in repo.get_all_jobs()}
        checks = {(c.asset_key.to_user_string(), c.name) for c in repo.get_asset_check_node_snaps()}
        assert {("raw_mcap", "readable"), ("checkpoint", "loss_fell")} <= checks

