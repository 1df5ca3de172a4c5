"""The run summary the CLI prints says "not judged" for a check that passed without judging
anything (a release check with too little to judge), not "passed"."""

from hvla_platform.cli.orchestration import JobOutcome, print_outcome


def test_not_judged_checks_are_not_printed_as_passed():
    o = JobOutcome(job="release_job", partition="g1-reach-v1", success=True, run_id="0123456789abcdef")
    o.checks = [("lerobot_dataset", "distribution_drift", True, "WARN"),
                ("lerobot_dataset", "task_coverage", True, "WARN"),
                ("lerobot_dataset", "action_chunk_fit", False, "WARN")]
    o.check_status = {("lerobot_dataset", "distribution_drift"): "not judged",
                      ("lerobot_dataset", "task_coverage"): "passed",
                      ("lerobot_dataset", "action_chunk_fit"): "failed"}
    lines: list[str] = []
    print_outcome(o, lines.append)
    assert "      check lerobot_dataset.distribution_drift: not judged" in lines
    assert "      check lerobot_dataset.task_coverage: passed" in lines
    assert "      check lerobot_dataset.action_chunk_fit: FAILED (WARN)" in lines
