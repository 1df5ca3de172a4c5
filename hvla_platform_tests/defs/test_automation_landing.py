"""Recordings dropped into the drop area get landed and ingested without a click: the landing sensor,
the nightly schedule and the release refresh's wait of the loaded code location, evaluated against a
real Dagster instance, and the requested ingest run executed."""

import datetime as dt
import json
import shutil

import dagster as dg
import pytest

from hvla_platform.definitions import defs as load_defs
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.fixtures.recordings import write_recording

DAY = "2026-11-10"
A, B = f"{DAY}|g1-001", f"{DAY}|g1-002"
#: the runs here skip MLflow logging of the QA report (its own tests cover it); nothing else differs
NO_MLFLOW = {"ops": {"episodes_hdf5": {"config": {"log_to_mlflow": False}}}}


@pytest.fixture(scope="module")
def recs(tmp_path_factory):
    root = tmp_path_factory.mktemp("recs")
    for ep, robot, seed in [("ep-a1", "g1-001", 1), ("ep-a2", "g1-001", 2), ("ep-b1", "g1-002", 3), ("ep-a3", "g1-001", 4)]:
        write_recording(root, episode_id=ep, robot_id=robot, seed=seed, duration_s=1.0)
    write_recording(root / "changed", episode_id="ep-a1", robot_id="g1-001", seed=9, duration_s=1.0)
    return root


class World:
    """A drop folder, a local lake and a temporary Dagster instance; the code location loaded with
    them configured through the environment, as a deployment configures it."""

    def __init__(self, tmp, instance, env: pytest.MonkeyPatch):
        self.drop, self.instance = tmp / "drop", instance
        self.drop.mkdir()
        env.setenv("HVLA_HOME", str(tmp / "home"))
        env.setenv("HVLA_LAKE_BACKEND", "local")
        env.delenv("HVLA_LAKE_ROOT", raising=False)
        env.setenv("HVLA_DROP_URI", str(self.drop))
        env.setenv("HVLA_DROP_SETTLE_SECONDS", "0")
        self.lake = LocalLake(tmp / "home" / "lake")
        self.defs = load_defs()
        self.repo = self.defs.get_repository_def()

    def context(self, **kwargs):
        """Keyword arguments of a sensor/schedule context with the code location's resources on this
        instance, passed by reference as the daemon passes it (which also validates partition keys)."""
        return {"instance_ref": self.instance.get_ref(), "repository_def": self.repo,
                "resources": self.repo.get_top_level_resources(), **kwargs}

    def upload(self, recs, ep, folder, names=("mcap", "operator_notes.md", "metadata.yaml")):
        """Copy a recording's files into the drop folder in the uploader's order (metadata.yaml last)."""
        (self.drop / folder).mkdir(parents=True, exist_ok=True)
        for n in names:
            n = f"{ep}_0.mcap" if n == "mcap" else n
            shutil.copyfile(recs / ep / n, self.drop / folder / n)

    def tick(self, cursor=None):
        """One evaluation of the code location's landing sensor, as the sensor daemon runs it."""
        with dg.build_sensor_context(**self.context(cursor=cursor)) as ctx:
            return self.repo.get_sensor_def("landing_sensor").evaluate_tick(ctx)

    def apply(self, result) -> None:
        """What the sensor daemon does with the partition requests."""
        for req in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))

    def drop_files(self) -> dict[str, bytes]:
        return {p.relative_to(self.drop).as_posix(): p.read_bytes() for p in self.drop.rglob("*") if p.is_file()}


@pytest.fixture()
def new_world(tmp_path, monkeypatch):
    with dg.instance_for_test() as instance:
        yield World(tmp_path, instance, monkeypatch)


@pytest.fixture(scope="module")
def world(tmp_path_factory, recs):
    """Two robots' recordings dropped, one partial upload; the first tick evaluated and the ingest of
    g1-002 executed as requested."""
    with dg.instance_for_test() as instance, pytest.MonkeyPatch.context() as env:
        w = World(tmp_path_factory.mktemp("world"), instance, env)
        w.upload(recs, "ep-a1", "site-1/ep-a1")
        w.upload(recs, "ep-a2", "site-1/ep-a2")
        w.upload(recs, "ep-b1", "site-2/ep-b1")
        w.upload(recs, "ep-a3", "site-1/ep-a3", names=("mcap",))  # still uploading: no metadata.yaml yet
        w.before = w.drop_files()
        w.first = w.tick()
        w.apply(w.first)
        [req_b] = [r for r in w.first.run_requests if r.partition_key == B]
        w.run_b = w.defs.resolve_job_def("ingest_job").execute_in_process(
            instance=instance, partition_key=req_b.partition_key, tags=req_b.tags,
            run_config={**(req_b.run_config or {}), **NO_MLFLOW}, raise_on_error=False)
        yield w


def test_complete_uploads_register_partitions_and_request_ingest(world):
    r = world.first
    assert world.repo.get_sensor_def("landing_sensor").job_name == "ingest_job"
    assert sorted(q.partition_key for q in r.run_requests) == [A, B]
    assert all(q.run_key.startswith(f"landing:{q.partition_key}:") for q in r.run_requests)
    assert {(q.partitions_def_name, tuple(q.partition_keys)) for q in r.dynamic_partitions_requests} == {
        ("capture_day_robot", (A, B))}
    assert sorted(world.lake.list_keys(f"landing/{DAY}")) == sorted(
        f"landing/{DAY}/{robot}/{ep}/{f}" for robot, ep in [("g1-001", "ep-a1"), ("g1-001", "ep-a2"), ("g1-002", "ep-b1")]
        for f in (f"{ep}_0.mcap", "metadata.yaml", "operator_notes.md"))
    assert world.drop_files() == world.before  # the drop area is only read


def test_requested_ingest_run_produces_raw_and_hdf5(world):
    assert world.run_b.success
    assert world.run_b.dagster_run.tags["hvla/trigger"] == "landing_sensor"
    assert world.run_b.dagster_run.tags["hvla/stage"] == "ingest"
    raw = world.lake.read_manifest(f"raw-mcap/{DAY}/g1-002/ep-b1")
    assert raw["mcap_sha256"] and world.lake.exists(f"raw-mcap/{DAY}/g1-002/ep-b1/ep-b1_0.mcap")
    h5 = world.lake.read_manifest(f"episodes-hdf5/{DAY}/g1-002")
    assert [c["episode_id"] for c in h5["conversions"] if c["status"] == "converted"] == ["ep-b1"]
    assert world.lake.exists(f"episodes-hdf5/{DAY}/g1-002/ep-b1.h5")


def test_second_tick_requests_nothing_and_names_the_partial_upload(world):
    r = world.tick(world.first.cursor)
    assert r.run_requests == [] and not r.dynamic_partitions_requests
    assert "1 partial upload(s) waiting for metadata.yaml" in r.skip_message
    assert "site-1/ep-a3" in r.skip_message
    assert not world.lake.list_keys(f"landing/{DAY}/g1-001/ep-a3")


def test_nightly_schedule_requests_only_partitions_behind(world):
    schedule = world.repo.get_schedule_def("nightly_ingest_schedule")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.job_name == "ingest_job"
    when = dt.datetime(2026, 11, 11, 2, 0, tzinfo=dt.timezone.utc)
    with dg.build_schedule_context(**world.context(scheduled_execution_time=when)) as ctx:
        reqs = schedule.evaluate_tick(ctx).run_requests
    # g1-002 was ingested and converted by the sensor's run; g1-001 is still behind
    assert [(q.partition_key, q.tags["hvla/behind"]) for q in reqs] == [(A, "never ingested")]
    assert reqs[0].run_key.startswith(f"nightly:2026-11-11:{A}:")


def test_metadata_arriving_completes_a_partial_upload(new_world, recs):
    w = new_world
    w.upload(recs, "ep-a3", "ep-a3", names=("mcap",))
    r1 = w.tick()
    assert r1.run_requests == [] and w.lake.list_keys("landing") == []
    w.upload(recs, "ep-a3", "ep-a3", names=("metadata.yaml",))
    r2 = w.tick(r1.cursor)
    assert [q.partition_key for q in r2.run_requests] == [A]
    assert w.lake.exists(f"landing/{DAY}/g1-001/ep-a3/metadata.yaml")


def test_changed_reupload_is_reported_and_the_landed_file_kept(new_world, recs):
    w = new_world
    w.upload(recs, "ep-a1", "ep-a1")
    r1 = w.tick()
    w.apply(r1)
    landed = w.lake.read_bytes(f"landing/{DAY}/g1-001/ep-a1/ep-a1_0.mcap")
    # the same episode uploaded again with other content (e.g. a re-export), into the same folder
    w.upload(recs / "changed", "ep-a1", "ep-a1")
    r2 = w.tick(r1.cursor)
    assert r2.run_requests == []
    [obs] = r2.asset_events
    assert obs.asset_key == dg.AssetKey("raw_mcap") and obs.partition == A
    assert "already landed with different content" in obs.metadata["hvla/landing_conflict"].value
    record = w.lake.read_json(obs.metadata["hvla/conflict_record"].value)
    assert set(record["differing_files"]) == {"ep-a1_0.mcap"}
    assert w.lake.read_bytes(f"landing/{DAY}/g1-001/ep-a1/ep-a1_0.mcap") == landed
    assert landed != (recs / "changed" / "ep-a1" / "ep-a1_0.mcap").read_bytes()
    # reported once
    r3 = w.tick(r2.cursor)
    assert not r3.asset_events and r3.run_requests == []


def test_missing_drop_area_skips_with_the_reason(new_world):
    new_world.drop.rmdir()
    r = new_world.tick()
    assert "does not exist" in r.skip_message and str(new_world.drop) in r.skip_message


def test_cursor_from_elsewhere_is_refused_with_a_clear_error(new_world):
    with pytest.raises(ValueError, match="unrecognised cursor"):
        new_world.tick(json.dumps({"something": "else"}))


def test_release_refresh_waits_until_no_ingest_run_is_in_progress(new_world, monkeypatch):
    monkeypatch.setenv("HVLA_RELEASE_REFRESH_AT", "00:00")  # due whenever the test runs
    w = new_world
    sensor = w.repo.get_sensor_def("nightly_release_refresh")

    def evaluate():
        with dg.build_sensor_context(**w.context()) as ctx:
            return sensor.evaluate_tick(ctx)

    running = w.instance.create_run_for_job(w.repo.get_job("ingest_job"), status=dg.DagsterRunStatus.STARTED)
    r = evaluate()
    assert "waiting for 1 ingest run(s) in progress" in r.skip_message and r.cursor is None
    w.instance.report_run_failed(running)
    r = evaluate()
    assert r.skip_message.startswith("no release follows new data on ") and r.cursor == r.skip_message[-10:]


def test_new_content_of_a_partition_waits_for_its_run_in_progress(new_world, recs):
    w = new_world
    w.upload(recs, "ep-a1", "ep-a1")
    r1 = w.tick()
    w.apply(r1)
    [first] = r1.run_requests
    # the requested run has started; meanwhile another episode of the same partition lands
    run = w.instance.create_run_for_job(w.repo.get_job("ingest_job"), status=dg.DagsterRunStatus.STARTED,
                                        tags={**first.tags, "dagster/partition": A})
    w.upload(recs, "ep-a2", "ep-a2")
    r2 = w.tick(r1.cursor)
    assert r2.run_requests == [] and f"ingest of {A} waits for the partition's run in progress" in r2.skip_message
    assert w.lake.exists(f"landing/{DAY}/g1-001/ep-a2/metadata.yaml")
    # that run never got to ingest (it failed); once it is over, the partition is requested again
    w.instance.report_run_failed(run)
    r3 = w.tick(r2.cursor)
    [again] = r3.run_requests
    assert again.partition_key == A and again.run_key != first.run_key  # the landed content grew
    assert w.tick(r3.cursor).run_requests == []


def test_nightly_schedule_leaves_a_partition_to_its_run_in_progress(new_world, recs):
    w = new_world
    w.upload(recs, "ep-a1", "ep-a1")
    w.apply(w.tick())
    w.instance.create_run_for_job(w.repo.get_job("ingest_job"), status=dg.DagsterRunStatus.STARTED,
                                  tags={"dagster/partition": A})
    when = dt.datetime(2026, 11, 11, 2, 0, tzinfo=dt.timezone.utc)
    with dg.build_schedule_context(**w.context(scheduled_execution_time=when)) as ctx:
        res = w.repo.get_schedule_def("nightly_ingest_schedule").evaluate_tick(ctx)
    assert res.run_requests == [] and "has an ingest run in progress (1)" in res.skip_message
