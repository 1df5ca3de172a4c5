"""A data supervisor's day, end to end in the Dagster UI and the CLI (issue 13 "Done when").

On a fresh ``HVLA_HOME``: the lake web service (``hvla web``, a free port) serves the lake; a
capture-day × robot partition with a planted defect (``ep-frozen-cam-a``: head camera frozen
from 0.5 s for 1 s, next to the clean ``ep-clean-1``; each episode under its own consent) is
landed, ingested and converted with QA by ``hvla ingest DIR --materialize`` with ``HVLA_WEB_URL``
pointing at the web service, so the metadata links open over HTTP. ``dagster-webserver`` +
``dagster-daemon`` (:class:`~hvla_platform_tests.ui.dagster_ui.DagsterUI`) serve the same
instance. Then ``supervisor_day.mjs`` in headless Chromium:

1. ``--phase qa``: the Runs list (the ingest run: Success, tagged ``hvla/qa: failed``) →
   ``episodes_hdf5`` → Overview (a failed check counted in red) → Partitions → the
   partition's ``hvla/qa_summary`` table → the ``hvla/qa_report`` link (the report over HTTP, in a
   new tab) → Checks → ``camera_frozen`` Failed → its ``hvla/failing_episodes`` table → the
   flagged episode's review link → the review page at the finding's time: the videos play, the
   episode is rejected with a reason.
2. CLI: ``hvla release register`` / ``hvla release build``: the new version's manifest lists the
   rejected episode as excluded, for that rejection. ``hvla rights revoke --consent <the clean
   episode's consent> --no-rebuild`` flags the release.
3. ``--phase flagged``: ``lerobot_dataset`` → Checks → ``rights_standing`` Failed on the release
   partition, naming the consent and the reason.

Screenshots of each step, what the browser read (``supervisor-*.json``), the CLI output and the
servers' logs are kept in ``test-artifacts/ui/supervisor-day/`` (``HVLA_UI_ARTIFACTS`` moves
``test-artifacts/ui``). Needs Chromium, Node ≥ 20 and the npm package (scripts/install_ui.sh):
missing tools fail the test, they never skip it. About 100–150 s on a 2-core machine (two
pipeline runs and the Dagster servers are most of it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.dataset.releases import lerobot_prefix, load_release
from hvla_platform_tests.fixtures.planted import DAY, ROBOT, Planted
from hvla_platform_tests.fixtures.recordings import default_rights, write_recording
from hvla_platform_tests.procs import stop
from hvla_platform_tests.ui.browser_script import run_browser_script
from hvla_platform_tests.ui.dagster_ui import REPO_ROOT, DagsterUI, graphql, instance_env
from hvla_platform_tests.ui.test_browser import CHROMIUM, INSTALL_HINT, _toolchain_problems

pytestmark = pytest.mark.browser

PARTITION = f"{DAY}|{ROBOT}"
FLAGGED, CLEAN = "ep-frozen-cam-a", "ep-clean-1"
FROZEN_AT, FROZEN_S = 0.5, 1.0
#: Two 2-second episodes: a clean one and one whose head camera is frozen (QA gate camera_frozen).
SUITE = (Planted(CLEAN, "clean", 101, 2.0),
         Planted(FLAGGED, "frozen_camera", 131, 2.0, ("frozen_camera",),
                 {"frozen_camera": {"at": FROZEN_AT, "length": FROZEN_S, "camera": "head"}}))
#: Each episode under a consent of its own, so that withdrawing the clean one's touches only it.
CONSENTS = {CLEAN: "consent-sd-clean", FLAGGED: "consent-sd-flagged"}
RELEASE = "sd-v1"
RELEASE_SPEC = (f"name: {RELEASE}\nrepo_id: hvla/supervisor-day\npartitions: all\ncameras: [head]\n"
                "heldout: {fraction: 0.0}\n")
REASON = "head camera frozen for 1 s"
WITHDRAWAL = "participant withdrew consent"


def write_partition(root: Path) -> Path:
    """The recordings of :data:`SUITE` under ``root/<day>/<episode>/`` (real MCAP + metadata.yaml),
    each with the consent :data:`CONSENTS` gives it; returns ``root``."""
    for p in SUITE:
        write_recording(root / p.day, episode_id=p.episode_id, robot_id=ROBOT, capture_day=p.day,
                        duration_s=p.duration_s, seed=p.seed, defects=p.defects, defect_params=p.params,
                        rights=default_rights(consent_refs=[CONSENTS[p.episode_id]]))
    return root


def hvla(env: dict[str, str], log: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``hvla ARGS`` on the test's instance, its output appended to ``log``; fails the test with
    the output's tail when it exits non-zero."""
    proc = subprocess.run([sys.executable, "-m", "hvla_platform.cli", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    with log.open("a") as f:
        f.write(f"$ hvla {' '.join(args)}  (exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}\n")
    assert proc.returncode == 0, f"hvla {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return proc


def start_web(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """``hvla web --port 0`` (loopback, no key) serving the instance's lake; the process and its base URL."""
    web = subprocess.Popen([sys.executable, "-m", "hvla_platform.cli", "web", "--port", "0"], cwd=REPO_ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    line = web.stdout.readline()
    log.write_text(line)
    if " on http://127.0.0.1:" not in line:
        stop(web)
        pytest.fail(f"hvla web did not start: {line!r}")
    return web, "http://127.0.0.1:" + line.split("http://127.0.0.1:")[1].split()[0]


#: The runs ``hvla`` executed in process, with the fields the UI's Overview timeline reads.
CLI_RUNS_QUERY = """{ runsOrError(filter: {tags: [{key: "hvla/trigger", value: "hvla command line"}]}) {
  ... on Runs { results { runId pipelineName repositoryOrigin { repositoryLocationName repositoryName } } } } }"""


def test_a_supervisors_day_from_a_red_partition_to_a_flagged_release(tmp_path, monkeypatch):
    problems = _toolchain_problems()
    if problems:
        pytest.fail("browser test cannot run: " + "; ".join(problems) + f" — {INSTALL_HINT}", pytrace=False)
    # test-artifacts/ui/supervisor-day/, a previous run's files removed
    artifacts = Path(os.environ.get("HVLA_UI_ARTIFACTS", REPO_ROOT / "test-artifacts" / "ui")).resolve() / "supervisor-day"
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    recordings = write_partition(tmp_path / "recordings")
    cli_log = artifacts / "cli.log"
    web, web_url = start_web(instance_env(home), artifacts / "hvla-web.log")
    ui = DagsterUI(home, artifacts)
    try:
        # the links in the ingest run's metadata and the UI's code location point at the web service
        monkeypatch.setenv("HVLA_WEB_URL", web_url)
        env = instance_env(home)
        # ingest while the webserver and daemon start (two cores; the instance's creation is locked)
        ingest = subprocess.Popen([sys.executable, "-m", "hvla_platform.cli", "ingest", str(recordings), "--materialize"],
                                  cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  start_new_session=True)
        try:
            ui.start()
            out, _ = ingest.communicate(timeout=300)
        finally:
            if ingest.poll() is None:
                stop(ingest)
        cli_log.write_text(f"$ hvla ingest {recordings} --materialize  (exit {ingest.returncode})\n{out}\n")
        assert ingest.returncode == 0, out[-3000:]
        assert "check episodes_hdf5.camera_frozen: FAILED (ERROR)" in out
        # the command line's run is in the UI's Overview timeline, which lists a run under its job by
        # the run's code-location origin (dagster-ui `useRunsForTimeline` skips a run without one)
        cli_runs = graphql(ui.base_url, CLI_RUNS_QUERY)["runsOrError"]["results"]
        assert [(r["pipelineName"], r["repositoryOrigin"]) for r in cli_runs] == [
            ("ingest_job", {"repositoryLocationName": "hvla_platform", "repositoryName": "__repository__"})], cli_runs

        # ---- 1. the UI: red check, readable summary, report over HTTP, review page, rejection -----
        seen = run_browser_script("supervisor_day.mjs", [
            "--phase", "qa", "--base-url", ui.base_url, "--web-url", web_url, "--partition", PARTITION,
            "--episode", FLAGGED, "--check", "camera_frozen", "--reason", REASON, "--artifacts", str(artifacts),
            "--chromium", CHROMIUM], artifacts, timeout=240)
        (artifacts / "browser-qa.log").write_text((artifacts / "browser.log").read_text())
        where = f"screenshots in {artifacts}"
        # the Runs list: the ingest run of the partition succeeded, its tag says QA failed
        run = seen["run_row"]
        assert run["job"] == "ingest_job" and run["status"] == "Success", run
        assert {"hvla/qa: failed", "hvla/stage: ingest", f"partition: {PARTITION}"} <= set(run["tags"]), run
        # not green: the asset's latest check results count the failed gate (red) ...
        assert seen["overview_checks"]["failed"] == 1 and seen["overview_checks"]["warned"] >= 1, where
        # ... while Dagster's own partition tag only says the materialization succeeded
        assert seen["partition_status"]["text"] == "Materialized", where
        # the partition's QA summary, a table a person reads: the flagged episode first, failed gates
        summary = seen["qa_summary"]
        assert summary["headline"] == "2 episode(s): 1 failed gates, 1 passed gates", summary
        header, *rows = summary["rows"]
        assert header == ["episode", "score", "decision", "failed checks (gates in bold)", "review"]
        assert [r[:3] for r in rows] == [[FLAGGED, "0.00", "failed gates"], [CLEAN, rows[1][1], "passed gates"]]
        assert rows[0][3].startswith("camera_frozen: head: ") and float(rows[1][1]) > 0.6
        assert rows[0][4].startswith("review at ")
        # the QA report link opens over HTTP from the web service (not a refused file:// link)
        report_key = f"episodes-hdf5/{DAY}/{ROBOT}/qa_report.html"
        assert seen["qa_report_href"] == seen["qa_report"]["url"] == f"{web_url}/lake/{report_key}"
        assert seen["qa_report"]["title"] == f"QA {PARTITION}"
        assert f"QA report — partition {PARTITION}" in seen["qa_report"]["text"]
        # (Chromium's own /favicon.ico request, a 404, shows in the console but not as a page response)
        assert "Not allowed to load local resource" not in " ".join(seen["qa_report"]["console_errors"])
        assert seen["web_http_errors"] == [], seen["web_http_errors"]  # every page, report, video answered
        # Checks tab: the gate check failed on that partition; its table links the episode's review page
        gate = seen["gate_check"]
        assert (gate["list_status"], gate["evaluation"], gate["partition"]) == ("Failed", "Failed", PARTITION), gate
        assert gate["metadata"]["hvla/num_failing"] == "1" and gate["non_blocking"]
        assert seen["failing_episodes"][0] == ["episode", "detail", "review"]
        assert [r[0] for r in seen["failing_episodes"][1:]] == [FLAGGED]
        # the review page opens at the finding's time (the first span of the frozen camera)
        lake = LocalLake(home / "lake")
        conv = next(c for c in lake.read_manifest(f"episodes-hdf5/{DAY}/{ROBOT}")["conversions"]
                    if c["episode_id"] == FLAGGED)
        start = conv["qa_checks"]["camera_frozen"]["spans"][0][0]
        assert start == pytest.approx(FROZEN_AT, abs=0.1)
        review_path = f"/review/partitions/{DAY}/{ROBOT}/episodes/{FLAGGED}"
        assert seen["review_url"] == seen["review_href"] and seen["review_url"].startswith(f"{web_url}{review_path}?t=")
        assert float(seen["review_url"].split("?t=")[1]) == pytest.approx(start, abs=0.01)
        assert seen["review_episode"] == FLAGGED
        opened = seen["review_at_open"]
        assert {v["camera"] for v in opened["videos"]} == {"head", "wrist_right"}
        for v in opened["videos"]:
            assert v["error"] is None and v["t"] == pytest.approx(start, abs=0.06) and v["duration"] > 1.9, v
        assert [m["check"] for m in opened["marks"]] == ["camera_frozen"]
        # the videos played: the clock video went on past the finding (the browser script waited for
        # > 0.3 s) and every other video kept with it (the page pulls back a video 0.12 s adrift;
        # read a moment later than the clock, a video may be a few ms behind it)
        played = seen["played"]
        assert played["to"][0] > played["from"] + 0.3, played
        assert all(abs(t - played["to"][0]) <= 0.12 for t in played["to"]), played
        # rejected by the request's identity (the OS user running the loopback service)
        m = re.fullmatch(r"recorded: reject by (\S+) at (\S+)", seen["decision_status"])
        assert m and m[1] == seen["reviewer"], seen["decision_status"]
        reviewer, decided_at = m[1], m[2]
        assert seen["console_errors"] == [], where

        # ---- 2. the next release leaves the rejected episode out ---------------------------------
        spec = tmp_path / "release.yaml"
        spec.write_text(RELEASE_SPEC)
        hvla(env, cli_log, "release", "register", str(spec))
        built = hvla(env, cli_log, "release", "build", RELEASE)
        assert f"release {RELEASE} → {RELEASE} (new immutable version" in built.stdout
        manifest = lake.read_manifest(lerobot_prefix(load_release(lake, RELEASE)))
        assert manifest["excluded"] == {FLAGGED: f"rejected by {reviewer} at {decided_at}: {REASON}"}
        assert manifest["episode_ids"] == [CLEAN]

        # ---- 3. the clean episode's consent is withdrawn: the release is flagged -----------------
        revoked = hvla(env, cli_log, "rights", "revoke", "--consent", CONSENTS[CLEAN], "--reason", WITHDRAWAL,
                       "--no-rebuild")
        flagged_release = lerobot_prefix(load_release(lake, RELEASE))
        assert re.search(rf"flagged do_not_use\s+{re.escape(flagged_release)}", revoked.stdout), revoked.stdout
        seen2 = run_browser_script("supervisor_day.mjs", [
            "--phase", "flagged", "--base-url", ui.base_url, "--web-url", web_url, "--partition", RELEASE,
            "--first-shot", "10", "--artifacts", str(artifacts), "--chromium", CHROMIUM], artifacts, timeout=120)
        (artifacts / "browser-flagged.log").write_text((artifacts / "browser.log").read_text())
        rights = seen2["rights_check"]
        assert (rights["list_status"], rights["evaluation"], rights["partition"]) == ("Failed", "Failed", RELEASE), rights
        md = rights["metadata"]
        assert (md["hvla/consent"], md["hvla/rights_flag"], md["hvla/reason"]) == (CONSENTS[CLEAN], "do_not_use", WITHDRAWAL)
        assert md["hvla/withdrawn_episode_ids"] == CLEAN and md["hvla/flagged_artifact"] == flagged_release
        assert seen2["overview_checks"]["failed"] >= 1 and seen2["console_errors"] == [] and seen2["web_http_errors"] == []
        shots = sorted(p.name for p in artifacts.glob("*.png"))
        assert len(shots) == 11 and not any("error" in s for s in shots), shots
    finally:
        ui.stop()
        stop(web)
