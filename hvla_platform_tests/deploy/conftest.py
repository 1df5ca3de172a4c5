"""Fixtures for the deployment tests: a throwaway database on the local PostgreSQL, the production
instance (``deploy/dagster.yaml``, copied unmodified) pointed at it, and a real gRPC code server.

The PostgreSQL server is found at ``HVLA_TEST_PG_HOST``:``HVLA_TEST_PG_PORT`` (default
127.0.0.1:5432) as ``HVLA_TEST_PG_USER`` (default ``postgres``) with ``HVLA_TEST_PG_PASSWORD``
(default empty). ``./scripts/test.sh`` runs ``scripts/ensure_postgres.sh`` first, which installs
Debian's ``postgresql`` and starts it when nothing answers there. Tests that need the server FAIL
(never skip) when none answers, saying how to start one: a green run has exercised PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class PgServer:
    """Connection parameters of the PostgreSQL server the tests use."""

    host: str
    port: int
    user: str
    password: str

    def connect(self, dbname: str, **kwargs: Any):
        """A psycopg2 connection to ``dbname`` (autocommit)."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=dbname, connect_timeout=5, **kwargs)
        conn.autocommit = True
        return conn


def query(pg: PgServer, dbname: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Run one SQL statement on ``dbname`` and return all rows."""
    conn = pg.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    """The local PostgreSQL server; fails the test (with how to start one) if none is reachable."""
    pg = PgServer(host=os.environ.get("HVLA_TEST_PG_HOST", "127.0.0.1"),
                  port=int(os.environ.get("HVLA_TEST_PG_PORT", "5432")),
                  user=os.environ.get("HVLA_TEST_PG_USER", "postgres"),
                  password=os.environ.get("HVLA_TEST_PG_PASSWORD", ""))
    error = None
    try:
        pg.connect("postgres").close()
    except Exception as e:  # noqa: BLE001 - any connection failure means "no server here"
        error = " ".join(str(e).split())
    if error is not None:  # outside the except block: the message alone, no chained traceback
        pytest.fail(f"no PostgreSQL server reachable at {pg.host}:{pg.port} as {pg.user!r}: {error}\n"
                    "Start one with ./scripts/ensure_postgres.sh (installs Debian's postgresql if needed, "
                    "starts it, allows this user over loopback; ./scripts/test.sh runs it), or point "
                    "HVLA_TEST_PG_HOST/_PORT/_USER/_PASSWORD at a running server.", pytrace=False)
    return pg


@pytest.fixture(scope="module")
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database for one test module, dropped (connections and all) afterwards."""
    name = f"hvla_deploy_{uuid.uuid4().hex[:12]}"
    query(pg_server, "postgres", f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        query(pg_server, "postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class ProdEnv:
    """Directories and environment of one production-instance test module."""

    root: Path
    dagster_home: Path
    lake_root: Path
    db: str
    pg: PgServer
    env: dict[str, str] = field(default_factory=dict)

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        """Run SQL directly on this module's database."""
        return query(self.pg, self.db, statement, params)


@pytest.fixture(scope="module")
def prod_env(pg_server: PgServer, pg_database: str, tmp_path_factory) -> Iterator[ProdEnv]:
    """``DAGSTER_HOME`` holding an unmodified copy of ``deploy/dagster.yaml``, the ``DAGSTER_PG_*``
    variables pointing at the module's database, and a local lake/MLflow under a temp dir; the
    variables are set in ``os.environ`` for the module and restored afterwards."""
    root = tmp_path_factory.mktemp("prod")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    lake = root / "lake"
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": pg_server.host,
        "DAGSTER_PG_PORT": str(pg_server.port),
        "DAGSTER_PG_USER": pg_server.user,
        "DAGSTER_PG_PASSWORD": pg_server.password,
        "DAGSTER_PG_DB": pg_database,
        "HVLA_HOME": str(root / "hvla"),
        "HVLA_LAKE_BACKEND": "local",
        "HVLA_LAKE_ROOT": str(lake),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        yield ProdEnv(root=root, dagster_home=home, lake_root=lake, db=pg_database, pg=pg_server, env=env)


@pytest.fixture(scope="module")
def prod_instance(prod_env: ProdEnv):
    """``DagsterInstance.get()`` on the production configuration."""
    import dagster as dg

    inst = dg.DagsterInstance.get()
    try:
        yield inst
    finally:
        inst.dispose()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_workspace(dst: Path, host: str, port: int) -> Path:
    """``deploy/workspace.yaml`` with its gRPC server's host and port replaced (nothing else)."""
    ws = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    grpc = ws["load_from"][0]["grpc_server"]
    grpc["host"], grpc["port"] = host, port
    dst.write_text(yaml.safe_dump(ws, sort_keys=False))
    return dst


@dataclass
class CodeServer:
    """A running ``dagster code-server start`` process and a workspace file that points at it."""

    proc: subprocess.Popen
    host: str
    port: int
    workspace: Path
    log: Path


def start_code_server(workdir: Path, env: dict[str, str], timeout: float = 60.0) -> CodeServer:
    """Start ``dagster code-server start -m hvla_platform.definitions`` on a free loopback port, the
    way deploy/Dockerfile does, and wait until it answers a gRPC ping (raises with its log if it
    exits or does not answer within ``timeout`` seconds)."""
    from dagster._grpc.client import DagsterGrpcClient

    host, port = "127.0.0.1", free_port()
    log = workdir / f"code-server-{port}.log"
    cmd = [str(VENV_BIN / "dagster"), "code-server", "start", "-h", host, "-p", str(port),
           "-m", "hvla_platform.definitions", "--location-name", "hvla_platform"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    client = DagsterGrpcClient(host=host, port=port)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"code server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            client.ping("hvla")
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline:
                stop_code_server(proc)
                raise RuntimeError(f"code server did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")
            time.sleep(0.25)
    ws = render_workspace(workdir / "workspace.yaml", host, port)
    return CodeServer(proc=proc, host=host, port=port, workspace=ws, log=log)


def stop_code_server(proc: subprocess.Popen) -> None:
    """Stop the code server and every process of its session (the gRPC server it spawned, run
    workers): SIGTERM, then SIGKILL after 15 s."""
    import signal

    def signal_group(sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass

    signal_group(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        signal_group(signal.SIGKILL)
        proc.wait(timeout=5)
    signal_group(signal.SIGKILL)  # stragglers of the session (the leader is gone by now)
