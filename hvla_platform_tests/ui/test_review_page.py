"""The episode review page in headless Chromium, as a supervisor uses it (issue 13 §4).

A fresh ``HVLA_HOME`` gets a partition with a planted defect through the real pipeline (landing →
raw → conversion with QA: ``ep-frozen-cam-a``'s head camera frozen from 0.8 s to 2.0 s, next to a
clean episode) and a release built from it. The lake web service (:func:`hvla_platform.lib.web.app.build_app`
with the review routes, the loopback identity policy) runs under uvicorn on a free port.
``review_page.mjs`` opens the flagged episode's page at the finding's time — the URL the check
metadata links to (:func:`hvla_platform.lib.web.links.episode_review_url`) — checks the finding is
marked on the timeline and the plots, plays the videos, rejects the episode with a reason, then
filters the release's queue. The rejection must then be what ``hvla qa list --json`` (the CLI, a
separate process on the same home) shows, by the reviewer identity, and what the next release
selection excludes the episode for.

Screenshots and what the browser read land in ``test-artifacts/ui/review/`` (``HVLA_UI_ARTIFACTS``
moves ``test-artifacts/ui``). Needs Chromium, Node ≥ 20 and the npm package (scripts/install_ui.sh):
missing tools fail the test, they never skip it.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.releases import load_release, register_release, select_episodes
from hvla_platform.lib.web.app import build_app
from hvla_platform.lib.web.links import episode_review_url, release_queue_url
from hvla_platform.lib.web.review import default_identity, review_routes
from hvla_platform_tests.fixtures.planted import DAY, ROBOT
from hvla_platform_tests.lib.web.test_review import CLEAN, FLAGGED, review_lake
from hvla_platform_tests.ui.browser_script import run_browser_script
from hvla_platform_tests.ui.dagster_ui import REPO_ROOT, free_port
from hvla_platform_tests.ui.test_browser import CHROMIUM, INSTALL_HINT, _toolchain_problems

pytestmark = pytest.mark.browser

RELEASE_SPEC = "name: review-v1\nrepo_id: hvla/review\npartitions: all\ncameras: [head]\nheldout: {fraction: 0.0}\n"
REASON = "head camera frozen for 1.2 s"


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """``test-artifacts/ui/review/``, a previous run's files removed."""
    out = Path(os.environ.get("HVLA_UI_ARTIFACTS", REPO_ROOT / "test-artifacts" / "ui")).resolve() / "review"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A fresh HVLA_HOME whose lake holds the partition with the flagged episode and a release."""
    home = tmp_path_factory.mktemp("hvla-review-home")
    lake = review_lake(home)
    build_release(lake, register_release(lake, RELEASE_SPEC))
    return home


@pytest.fixture(scope="module")
def service(home):
    """The lake web service with the review routes on a free loopback port; yields its base URL."""
    problems = _toolchain_problems()
    if problems:
        pytest.fail("browser test cannot run: " + "; ".join(problems) + f" — {INSTALL_HINT}", pytrace=False)
    lake = LocalLake(home / "lake")
    routes = review_routes(lake, identity=default_identity(header=""), cache_dir=home / "cache" / "web")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(lake, extra_routes=routes), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_open_flagged_episode_at_its_finding_play_reject_and_see_it_in_qa_list(home, service, artifacts, monkeypatch):
    lake = LocalLake(home / "lake")
    manifest = lake.read_manifest(f"episodes-hdf5/{DAY}/{ROBOT}")
    row = next(c for c in manifest["conversions"] if c["episode_id"] == FLAGGED)
    start, end, camera = row["qa_checks"]["camera_frozen"]["spans"][0]
    monkeypatch.setenv("HVLA_WEB_URL", service)
    page_url = episode_review_url(DAY, ROBOT, FLAGGED, start)
    seen = run_browser_script("review_page.mjs", ["--page-url", page_url, "--queue-url", release_queue_url("review-v1"),
                                                  "--artifacts", str(artifacts), "--reason", REASON,
                                                  "--chromium", CHROMIUM], artifacts, timeout=120)
    where = f"screenshots and logs in {artifacts}"
    assert seen["console_errors"] == [], where

    # opened at the finding: every video there, the scrub bar there, the mark active, the plots' cursor there
    assert seen["episode_id"] == FLAGGED
    assert {v["camera"] for v in seen["videos"]} == {"head", "wrist_right"}
    for v in seen["videos"]:
        assert v["error"] is None and v["duration"] == pytest.approx(3.05, abs=0.06) and v["videoWidth"] > 0, v
        assert v["currentTime"] == pytest.approx(start, abs=0.06), v
    assert seen["scrub_at_open"] == pytest.approx(start, abs=0.051)
    [mark] = seen["marks"]
    assert mark["check"] == "camera_frozen" and mark["active"] and mark["width"] > 50
    assert (mark["t"], mark["end"]) == (pytest.approx(start, abs=1e-3), pytest.approx(end, abs=1e-3))
    assert camera in mark["title"]
    assert [p["id"] for p in seen["plots"]] == ["plot-state", "plot-action"]
    for p in seen["plots"]:
        assert p["cursor_x"] == pytest.approx(start, abs=0.051)
        assert p["shaded"] == [[pytest.approx(start), pytest.approx(end)]] and p["labels"] == [f"camera_frozen ({camera})"]
    assert [p["traces"] for p in seen["plots"]] == [29, 14]
    assert [f["check"] for f in seen["failed_findings"]] == ["camera_frozen"]

    # play: time advanced on every video together, the cursor followed; clicking the mark seeks back
    after = seen["after_play"]
    times = [v["t"] for v in after["videos"]]
    assert min(times) > seen["played_from"] + 0.3 and max(times) - min(times) < 0.15, after
    assert all(v["paused"] for v in after["videos"]) and after["status"] == ""
    assert all(c == pytest.approx(times[0], abs=0.051) for c in after["cursors"]), after
    assert seen["after_mark_click"] == [pytest.approx(start, abs=0.06)] * 2

    # rejected by the request's identity, kept across a reload
    reviewer = getpass.getuser()
    assert seen["reviewer"] == reviewer
    assert seen["decision_status"].startswith(f"recorded: reject by {reviewer} at ")
    assert seen["history_after_reload"][-1][1:] == ["reject", reviewer, REASON]

    # the CLI, another process on the same home, shows that decision
    env = {**os.environ, "HVLA_HOME": str(home)}
    env.pop("HVLA_LAKE_ROOT", None)
    cli = subprocess.run([sys.executable, "-m", "hvla_platform.cli.main", "qa", "list", "--json"], env=env,
                         capture_output=True, text=True, timeout=60)
    (artifacts / "qa-list.json").write_text(cli.stdout + cli.stderr)
    assert cli.returncode == 0, cli.stderr
    rows = {r["episode_id"]: r for r in json.loads(cli.stdout)["episodes"]}
    decision = rows[FLAGGED]["decision"]
    assert (decision["decision"], decision["by"], decision["reason"]) == ("reject", reviewer, REASON)
    assert seen["history_after_reload"][-1][0] == decision["at"]
    # and the next release build leaves the episode out for that rejection
    excluded = select_episodes(lake, load_release(lake, "review-v1")).excluded
    assert excluded[FLAGGED] == f"rejected by {reviewer} at {decision['at']}: {REASON}"

    # the release's queue: filtered on "reject" it shows the episode, whose link opens its page
    assert {r["episode"]: r["in_release"] for r in seen["queue_rows"]} == {CLEAN: "selected", FLAGGED: "excluded"}
    assert seen["queue_rejected"] == [FLAGGED] and seen["queue_count"] == "1 of 2 episodes"
    assert seen["queue_text_filtered"] == [FLAGGED]
    assert seen["queue_link_opened"] == f"/review/partitions/{DAY}/{ROBOT}/episodes/{FLAGGED}"
