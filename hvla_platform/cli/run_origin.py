"""Recording the runs ``hvla`` executes in process the way the Dagster UI records its own: under the
code location's job origin.

Dagster's ``execute_in_process`` creates its run without a code-location origin, and the UI leaves
such runs out of the Overview timeline (dagster-ui ``useRunsForTimeline`` skips a run whose
``repositoryOrigin`` is null) and cannot re-execute them. A run created with the origin of
``workspace.yaml``'s code location (``hvla_platform``, the name every workspace of this repository
gives it: ``deploy/workspace.yaml``, the Helm values) is listed next to the runs the daemon launched,
under its job, and can be re-executed from the UI like them.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import dagster as dg
from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.workspace.load_target import WorkspaceFileTarget

from hvla_platform.lib.core.settings import REPO_ROOT

#: The workspace ``hvla ui`` serves; its one code location is the one the runs are recorded under.
WORKSPACE_FILE = REPO_ROOT / "workspace.yaml"


def code_location_job_origin(job_name: str, workspace: Path = WORKSPACE_FILE) -> RemoteJobOrigin:
    """The origin under which the Dagster UI knows job ``job_name``: the code location that
    ``workspace`` loads, repository ``__repository__`` (the one a ``Definitions`` object makes).

    Raises:
        ValueError: ``workspace`` does not load exactly one code location.
    """
    origins = WorkspaceFileTarget(paths=[str(workspace)]).create_origins()
    if len(origins) != 1:
        raise ValueError(f"{workspace} loads {len(origins)} code locations; in-process runs are recorded "
                         "under the one code location it should load")
    return RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(code_location_origin=origins[0],
                                                                    repository_name=SINGLETON_REPOSITORY_NAME),
                           job_name=job_name)


@contextmanager
def recorded_under(inst: dg.DagsterInstance, origin: RemoteJobOrigin) -> Iterator[None]:
    """Inside the block, runs that ``inst`` creates without a code-location origin get ``origin``.

    ``execute_in_process`` creates its one run through ``inst.create_run_for_job``, which takes the
    origin as an argument but is not given one; this wraps that method of this instance object for
    the block (and only it: the class and other instances are untouched), so the run is created with
    the origin from the start. Nothing else about the run changes (its config, tags, partition,
    execution plan are ``execute_in_process``'s)."""
    create = inst.create_run_for_job

    def create_with_origin(*args: Any, **kwargs: Any) -> dg.DagsterRun:
        if kwargs.get("remote_job_origin") is None:
            kwargs["remote_job_origin"] = origin
        return create(*args, **kwargs)

    inst.create_run_for_job = create_with_origin  # type: ignore[method-assign]
    try:
        yield
    finally:
        del inst.create_run_for_job  # the class's method again
