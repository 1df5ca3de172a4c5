"""The Dagster UI tested as a person uses it, in headless Chromium driven by Playwright.

A fresh instance gets one committed capture-day × robot partition landed (``hvla ingest``, no
materialization); ``dagster-webserver`` and ``dagster-daemon`` serve it. ``asset_graph.mjs`` then
opens the asset graph, selects ``raw_mcap``, launches the materialization of that one partition
from the launch dialog, follows the run until it ends and reads back what the pages show: the
run's status and check evaluations, the asset's owners, the partition's rights metadata and the
Checks tab. The assertions compare that with the recording's own ``metadata.yaml``.

Screenshots of every step, the page of a failure and the webserver/daemon/ingest logs are kept
in ``test-artifacts/ui/`` (``HVLA_UI_ARTIFACTS`` to change). Needs Chromium, Node ≥ 20 and the
npm package in this folder: ``scripts/install_ui.sh``. Missing tools fail the test, they do not
skip it. See docs/ui_testing.md.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest
import yaml

from hvla_platform_tests.ui.browser_script import run_browser_script
from hvla_platform_tests.ui.dagster_ui import REPO_ROOT, UI_DIR, DagsterUI, land_recordings

pytestmark = pytest.mark.browser

DAY, ROBOT = "2026-11-10", "g1-001"
PARTITION = f"{DAY}|{ROBOT}"
RECORDINGS = REPO_ROOT / "data" / "recordings" / DAY / ROBOT
RAW_CHECKS = {"readable", "required_topics", "monotonic", "rights"}
# seed 000's before_retraining_from_runtime on the partition's rollouts (defs/ingest/rollouts.py):
# non-blocking, passed with 0 episodes on a partition of robot recordings
ROLLOUT_CHECKS = {"customer_permission_checked", "private_frames_filtered", "incident_data_labeled",
                  "deletion_request_process_defined"}
LIFECYCLE_ASSETS = {"raw_mcap", "episodes_hdf5", "lerobot_dataset", "norm_stats", "robodm_cache", "openpi_export",
                    "checkpoint", "eval_report", "raw_teleop", "teleop_target_lerobot", "teleop_target_rlds",
                    "raw_human_video", "human_video_release", "mixture_release"}
LIFECYCLE_GROUPS = {"ingest", "processing", "dataset", "training", "evaluation"}
CHROMIUM = os.environ.get("HVLA_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = "run scripts/install_ui.sh (Chromium from Debian, Node ≥ 20, npm ci in hvla_platform_tests/ui)"


def _toolchain_problems() -> list[str]:
    """What is missing to drive a browser; empty when everything is there."""
    problems = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"no Chromium at {CHROMIUM} (HVLA_CHROMIUM overrides the path)")
    node = shutil.which("node")
    if node is None:
        problems.append("no `node` on PATH")
    else:
        version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if int(version.lstrip("v").split(".")[0] or 0) < 20:
            problems.append(f"node {version} is too old (playwright-core needs ≥ 20)")
    pinned = json.loads((UI_DIR / "package.json").read_text())["dependencies"]["playwright-core"]
    installed = UI_DIR / "node_modules" / "playwright-core" / "package.json"
    if not installed.exists():
        problems.append(f"playwright-core is not installed in {UI_DIR / 'node_modules'}")
    elif (have := json.loads(installed.read_text())["version"]) != pinned:
        problems.append(f"playwright-core {have} installed, package.json pins {pinned}")
    return problems


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """``test-artifacts/ui/`` at the repository root, emptied of a previous run's files."""
    out = Path(os.environ.get("HVLA_UI_ARTIFACTS", REPO_ROOT / "test-artifacts" / "ui")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        if f.is_file() and f.suffix in (".png", ".log", ".json", ".html"):
            f.unlink()
    return out


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory, artifacts):
    """A fresh instance with the partition landed, served by dagster-webserver + dagster-daemon."""
    problems = _toolchain_problems()
    if problems:
        pytest.fail("browser test cannot run: " + "; ".join(problems) + f" — {INSTALL_HINT}", pytrace=False)
    home = tmp_path_factory.mktemp("hvla-ui-home")
    land_recordings(home, RECORDINGS, artifacts / "ingest.log")
    ui = DagsterUI(home, artifacts)
    try:
        ui.start()
        yield ui
    finally:
        ui.stop()


def _declared_rights(folder: Path) -> dict[str, str]:
    """The rights the recordings' metadata.yaml files declare, combined the way the README
    states for an artifact built from several inputs (allowed uses: intersection; owners,
    licenses, consents, customers: union; retention: earliest), as the UI prints them."""
    metas = [yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*/metadata.yaml"))]
    assert metas, f"no recordings under {folder}"
    rights = [m["rights"] for m in metas]
    join = lambda xs: ", ".join(sorted(set(xs)))  # noqa: E731
    return {
        "hvla/data_owners": join(r["data_owner"] for r in rights),
        "hvla/license": join(r["license"] for r in rights),
        "hvla/consent_refs": join(c for r in rights for c in r["consent_refs"]),
        "hvla/allowed_uses": join(set.intersection(*(set(r["allowed_uses"]) for r in rights))),
        "hvla/retention_until": min(str(r["retention_until"]) for r in rights),
        "hvla/customers": join(m["customer"] for m in metas),
        **{f"hvla/{flag}": str(any(r[flag] for r in rights)).lower()
           for flag in ("contains_human_video", "contains_customer_environment")},
    }


def _shown_as(name: str, shown: str) -> bool:
    """Whether the graph's label ``shown`` is asset ``name``: the UI shortens long names in the
    middle (``human_vid…_release``)."""
    head, ellipsis, tail = shown.partition("…")
    return shown == name or (bool(ellipsis) and name.startswith(head) and name.endswith(tail)
                             and len(name) > len(head) + len(tail))


def test_materialize_one_raw_partition_from_the_ui_and_read_checks_owners_and_rights(dagster_ui, artifacts):
    seen = run_browser_script("asset_graph.mjs", ["--base-url", dagster_ui.base_url, "--artifacts", str(artifacts),
                                                  "--asset", "raw_mcap", "--partition", PARTITION,
                                                  "--run-timeout-s", "150", "--chromium", CHROMIUM],
                              artifacts, timeout=300)
    where = f"screenshots and logs in {artifacts}"
    if seen.get("graph_reloaded") is not None:  # shown in the warnings summary, with what the page showed
        warnings.warn(f"the asset graph drew no node in 60 s and was reloaded once; the page showed: "
                      f"{seen['graph_reloaded'][:500]!r}", stacklevel=1)

    # the asset graph, every group expanded, shows the whole lifecycle
    assert {a for a in LIFECYCLE_ASSETS if any(_shown_as(a, s) for s in seen["graph_assets"])} == LIFECYCLE_ASSETS, (
        seen["graph_assets"], where)
    assert LIFECYCLE_GROUPS <= set(seen["graph_groups"]), (seen["graph_groups"], where)

    # the launch dialog launched exactly one run, for the chosen partition, and it succeeded
    assert seen["launch_dialog"] == {"partition_count": "1 partition", "launch_button": "Launch 1 run"}, where
    assert seen["toast"] == f"Launched run {seen['run_id'][:8]}"
    assert seen["run_status"] == "Success", f"run {seen['run_id']} ended {seen['run_status']}; {where}"
    assert f"partition: {PARTITION}" in seen["run_header"]

    # the run's event log: each of the four raw checks and the four rollout checks evaluated and succeeded
    run_checks = {(e["asset"], e["check"]): e["outcome"] for e in seen["run_check_events"]}
    assert run_checks == {("raw_mcap", c): "succeeded" for c in RAW_CHECKS | ROLLOUT_CHECKS}, run_checks

    # the Checks tab: the same, passed, the raw checks blocking, with no failing episode
    episodes = sorted(p.name for p in RECORDINGS.iterdir() if (p / "metadata.yaml").exists())
    by_name = {c["check"]: c for c in seen["checks_tab"]}
    assert set(by_name) == RAW_CHECKS | ROLLOUT_CHECKS
    for name, c in by_name.items():
        blocking = name in RAW_CHECKS
        assert (c["list_status"], c["evaluation"], c["blocking"]) == ("Succeeded", "Passed", blocking), c
        assert c["metadata"]["hvla/num_failing"] == "0", c
        assert c["metadata"]["hvla/failing_episodes"] == "(none)", c
        # a rollout check counts the partition's rollouts: none among robot recordings
        assert c["metadata"]["hvla/num_episodes"] == (str(len(episodes)) if blocking else "0"), c

    # owners, kinds and group on the asset page: team:data-collection is shown as a team
    # ("people" icon) named data-collection
    assert seen["owners"] == [{"name": "data-collection", "icon": "people"}], seen["owners"]
    assert sorted(seen["kinds"]) == ["mcap", "ros2"]
    assert seen["group"] == "ingest"

    # the partition: materialized by this run, its rights metadata equal what metadata.yaml declares
    panel = seen["partition_panel"]
    assert panel["status"] == "Materialized" and panel["run"] == seen["run_id"][:8], panel
    md = panel["metadata"]
    declared = _declared_rights(RECORDINGS)
    assert {k: md.get(k) for k in declared} == declared
    assert sorted(md["hvla/episode_ids"].split(", ")) == episodes
    assert md["hvla/num_episodes"] == str(len(episodes)) and md["hvla/num_quarantined"] == "0"
    assert md["status"] == "materialized"
    assert md["dagster/uri"] == (dagster_ui.home / "lake" / "raw-mcap" / DAY / ROBOT).as_uri()
