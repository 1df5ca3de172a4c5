"""What a supervisor sees of episode QA in Dagster (issue 13 §1): a partition whose episode fails a
QA gate is not green — the gate's check fails with ERROR severity, score- and report-only checks
with WARN, the run is tagged ``hvla/qa=failed`` — and the materialization carries a markdown QA
summary naming the episode and the check; a clean partition's run is tagged ``hvla/qa=passed``.

Real recordings (MCAP written by the recorder encoder) are landed, then ``raw_mcap`` and
``episodes_hdf5`` are materialized through Dagster on a persistent SQLite instance, once per
partition for the module.
"""

import dagster as dg
import pytest

from hvla_platform_tests.fixtures.recordings import write_recording

DAY = "2026-11-10"
DEFECTIVE, CLEAN = "g1-001", "g1-002"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{robot: (instance, ExecuteInProcessResult)}`` for a partition with one episode whose right
    wrist camera lost every other frame for a second (gate ``dropped_messages``, score-only
    ``camera_frame_count``) next to a clean one and one without rights (quarantined at ingest), and
    an all-clean partition; plus a supervisor
    approval of the defective episode recorded before processing. The synchroniser accepts 60 ms
    of camera skew (default 50 ms): the drops then leave the episode convertible, judged by QA."""
    from hvla_platform.cli.ingest import land_folder
    from hvla_platform.cli.orchestration import instance
    from hvla_platform.defs.ingest.assets import raw_mcap
    from hvla_platform.defs.processing.assets import episodes_hdf5
    from hvla_platform.defs.resources import MlflowResource, lake_from_env
    from hvla_platform.lib.processing.qa.decisions import record_decision

    home = tmp_path_factory.mktemp("hvla")
    env = pytest.MonkeyPatch()
    env.setenv("HVLA_HOME", str(home))
    env.setenv("DAGSTER_HOME", str(home / "dagster"))
    env.delenv("HVLA_LAKE_ROOT", raising=False)
    env.delenv("HVLA_LAKE_BACKEND", raising=False)
    recs = tmp_path_factory.mktemp("recs")
    write_recording(recs, episode_id="ep-qa-drops", robot_id=DEFECTIVE, seed=1, duration_s=3.0, defects=("drop_frames",))
    write_recording(recs, episode_id="ep-qa-ok", robot_id=DEFECTIVE, seed=2)
    write_recording(recs, episode_id="ep-qa-norights", robot_id=DEFECTIVE, seed=4, defect="no_rights")
    write_recording(recs, episode_id="ep-qa-clean", robot_id=CLEAN, seed=3)
    try:
        assert sorted(land_folder(recs)) == [(DAY, DEFECTIVE), (DAY, CLEAN)]
        inst, lake = instance(), lake_from_env()
        record_decision(lake.get_lake(), "ep-qa-drops", "approve", "the wrist camera is not used by the policy",
                        by="supervisor-a")
        out = {}
        for robot in (DEFECTIVE, CLEAN):
            res = dg.materialize(
                [raw_mcap, episodes_hdf5], instance=inst, raise_on_error=False,
                partition_key=f"{DAY}|{robot}",
                resources={"lake": lake, "mlflow": MlflowResource()},
                run_config={"ops": {"episodes_hdf5": {"config": {"log_to_mlflow": False, "max_camera_skew_s": 0.06}}}})
            assert res.success
            out[robot] = (inst, res)
        yield out
    finally:
        env.undo()


def _episodes_md(res: dg.ExecuteInProcessResult) -> dict:
    [mat] = res.asset_materializations_for_node("episodes_hdf5")
    return mat.metadata


def _checks(res: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in res.get_asset_check_evaluations() if e.asset_key == dg.AssetKey("episodes_hdf5")}


def test_qa_summary_names_the_failing_episode_check_score_and_decision(runs):
    _, res = runs[DEFECTIVE]
    text = _episodes_md(res)["hvla/qa_summary"].value
    lines = text.splitlines()
    assert lines[0] == ("**3 episode(s): 1 not converted, 1 failed gates, 1 passed gates; "
                        "supervisor: 1 approved, 0 rejected**"), text
    assert lines[2] == "| episode | score | decision | failed checks (gates in bold) | review |"
    [bad] = [ln for ln in lines if ln.startswith("| ep-qa-drops |")]
    assert bad.startswith("| ep-qa-drops | 0.00 | **approved** by supervisor-a (failed gates) | **dropped_messages**: "), bad
    assert "wrist_right" in bad
    assert "; camera_frame_count: " in bad  # score-only: not bold, after the gates
    [good] = [ln for ln in lines if ln.startswith("| ep-qa-ok |")]
    # every converted episode links its review page; a failed one at its first finding's time
    review = "http://127.0.0.1:3001/review/partitions/2026-11-10/g1-001/episodes"
    assert good.endswith(f"| passed gates |  | [review]({review}/ep-qa-ok) |"), good
    assert f"| [review at 0.53 s]({review}/ep-qa-drops?t=0.53) |" in bad, bad
    [skipped] = [ln for ln in lines if ln.startswith("| ep-qa-norights |")]
    assert skipped.startswith("| ep-qa-norights | – | not converted | rights: ") and skipped.endswith("| – |"), skipped
    assert lines.index(skipped) < lines.index(bad) < lines.index(good)  # what failed comes first
    # the other former JSON walls are tables with rounded numbers
    scores = _episodes_md(res)["hvla/quality_scores"].value
    assert "| ep-qa-drops | 0.00 |" in scores and "{" not in scores


def test_failed_gate_is_error_and_report_only_is_warn(runs):
    _, res = runs[DEFECTIVE]
    checks = _checks(res)
    gate = checks["dropped_messages"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    failing = gate.metadata["hvla/failing_episodes"].value
    assert failing.startswith("| episode | detail | review |\n|---|---|---|\n| ep-qa-drops | "), failing
    # the review link opens the episode where the first dropped message gap starts
    assert failing.endswith("| [review at 0.53 s](http://127.0.0.1:3001/review/partitions/2026-11-10/g1-001/episodes/"
                            "ep-qa-drops?t=0.53) |"), failing
    frames = checks["camera_frame_count"]  # score-only
    assert not frames.passed and frames.severity == dg.AssetCheckSeverity.WARN
    score = checks["quality_score"]  # a consequence, not a gate of its own
    assert not score.passed and score.severity == dg.AssetCheckSeverity.WARN
    assert checks["camera_frozen"].passed


def test_runs_are_tagged_with_the_qa_outcome(runs):
    for robot, qa, ingest in ((DEFECTIVE, "failed", "refused 1"), (CLEAN, "passed", "passed")):
        inst, res = runs[robot]
        tags = inst.get_run_by_id(res.run_id).tags
        assert (tags["hvla/qa"], tags["hvla/ingest"]) == (qa, ingest), (robot, tags)
    inst, res = runs[CLEAN]
    assert all(c.passed for c in _checks(res).values())
    assert _episodes_md(res)["hvla/qa_summary"].value.startswith("**1 episode(s): 1 passed gates**")
    assert _episodes_md(res)["hvla/not_converted"].value == "(none)"


def test_release_and_norm_stats_metadata_are_tables_with_rounded_numbers(openpi_lake):
    """The dataset side: the release ``t-openpi`` of the shared session lake (conftest), found
    ``cached`` by ``lerobot_dataset`` and ``norm_stats``: their metadata are markdown a person reads,
    not JSON."""
    from hvla_platform.defs.dataset.assets import lerobot_dataset, norm_stats
    from hvla_platform.defs.resources import LakeResource

    with dg.DagsterInstance.ephemeral() as inst:
        inst.add_dynamic_partitions("release", ["t-openpi"])
        res = dg.materialize([lerobot_dataset, norm_stats], instance=inst, partition_key="t-openpi",
                             resources={"lake": LakeResource(root=str(openpi_lake["lake"].root))})
    assert res.success
    rel = res.asset_materializations_for_node("lerobot_dataset")[0].metadata
    features = rel["hvla/features"].value
    assert features.startswith("fps 20\n\n| feature | dtype | shape | names |")
    assert "| observation.state | float32 | " in features and "{" not in features
    probe = rel["hvla/reload_probe"].value
    assert "- **num_episodes**: 4" in probe and "- **cameras**" in probe
    assert rel["hvla/excluded_episodes"].value == "(none)"
    assert rel["hvla/build"].value.startswith("- **how**: ")
    stats = res.asset_materializations_for_node("norm_stats")[0].metadata["hvla/norm_stats"].value
    assert stats.startswith("| key | dim | name | mean | std | q01 | q99 |")
    row = next(ln for ln in stats.splitlines() if ln.startswith("| state | 0 | "))
    numbers = row.strip("| ").split(" | ")[3:]
    assert len(numbers) == 4 and all(len(n.split("e")[0].lstrip("-").replace(".", "").lstrip("0")) <= 4 for n in numbers), row


def test_markdown_table_cells_stay_in_their_column():
    """A reason with ``|`` or a line break stays in its cell, a long one is cut, a long table says
    how many rows it left out, and a row of the wrong width is refused."""
    from hvla_platform.defs.metadata import md_table

    text = md_table(["episode", "why"], [["ep-1", "a | b\nc"], ["ep-2", "x" * 50], ["ep-3", 0.123456]],
                    max_rows=2, max_chars=10)
    assert text.splitlines() == ["| episode | why |", "|---|---|", "| ep-1 | a \\| b c |",
                                 "| ep-2 | xxxxxxxxx… |", "", "… and 1 more row(s)."]
    assert md_table(["a"], []) == "(none)"
    with pytest.raises(ValueError, match="has 1 cells, the header 2"):
        md_table(["a", "b"], [["only one"]])
