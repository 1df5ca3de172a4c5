"""``hvla rights revoke --dry-run``: lists what a withdrawal would change and changes nothing.

Runs on a copy of the session-cached pipeline lake of ``test_graph`` (consent-A: ep-a-1, ep-a-2,
the whole partition 2026-11-10|g1-001; the release lin-v1 and everything built from it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hvla_platform.cli.main import main
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform_tests.lib.lineage.test_graph import CKPT, EVAL, build_pipeline_lake

REASON = "demonstrator withdrew consent (ticket 4711)"


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden folders included) with its bytes."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = Path(d) / f
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory):
    home, _ = build_pipeline_lake()
    dst = tmp_path_factory.mktemp("dry") / "lake"
    shutil.copytree(home / "lake", dst, ignore=shutil.ignore_patterns(".hvla-tmp", "_index"))
    return dst


@pytest.fixture(autouse=True)
def _env(lake_root, monkeypatch):
    monkeypatch.setenv("HVLA_LAKE_ROOT", str(lake_root))
    monkeypatch.delenv("HVLA_LAKE_BACKEND", raising=False)


def test_dry_run_lists_the_changes_and_changes_nothing(lake_root, capsys):
    before = _snapshot(lake_root)
    rc = main(["rights", "revoke", "--consent", "consent-A", "--reason", REASON, "--raw-policy", "delete", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0
    assert _snapshot(lake_root) == before  # same listing, same bytes (not even the lineage index was written)
    lines = out.splitlines()
    assert lines[0].startswith("dry run: withdrawing consent consent-A") and "nothing was changed" in lines[0]
    assert lines[1] == "episodes (2): ep-a-1, ep-a-2"
    assert ("  raw partition 2026-11-10|g1-001: 2 episode(s) withdrawn (ep-a-1, ep-a-2); raw policy delete: "
            "their objects deleted") in lines
    assert "  raw delete: ep-a-1 (8 object(s) deleted)" in lines
    flags = [ln.split() for ln in lines if ln.startswith("  flag ")]
    assert {(f[1], f[3]) for f in flags} == {
        ("do_not_use", "lerobot/hvla/lin/lin-v1"), ("do_not_use", "norm-stats/lin-v1"),
        ("do_not_use", "robodm-cache/lin-v1"), ("do_not_use", "openpi-exports/lin-v1"),
        ("retrain_required", CKPT), ("do_not_use", EVAL)}
    assert "  remove episodes-hdf5/2026-11-10/g1-001 (every episode withdrawn)" in lines
    assert "  rebuild release lin-v1 as lin-v1-r1" in lines
    assert not any("episodes-hdf5/2026-11-11/g1-002" in ln for ln in lines)  # consent-B's partition is untouched


def test_unknown_consent_is_refused_in_one_line(lake_root, capsys):
    rc = main(["rights", "revoke", "--consent", "consent-Q", "--reason", "r", "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "consent-Q" in err and "Traceback" not in err


def test_the_revocation_carries_out_what_the_dry_run_listed(lake_root, tmp_path, monkeypatch, capsys):
    """``hvla rights revoke`` (``--no-rebuild``: no Dagster runs) flags exactly what the dry run listed
    and records the flags on the asset partitions of the (copied) Dagster instance."""
    main(["rights", "revoke", "--consent", "consent-A", "--reason", REASON, "--no-rebuild", "--dry-run"])
    listed = {ln.split()[3]: ln.split()[1] for ln in capsys.readouterr().out.splitlines() if ln.startswith("  flag ")}
    shutil.copytree(build_pipeline_lake()[1], tmp_path / "dagster")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    rc = main(["rights", "revoke", "--consent", "consent-A", "--reason", REASON, "--by", "dpo", "--no-rebuild"])
    out = capsys.readouterr().out
    assert rc == 0
    flagged = {ln.split()[2]: ln.split()[1] for ln in out.splitlines() if ln.startswith("  flagged ")}
    assert flagged == listed and len(listed) == 6
    assert (f"Dagster: 8 observation(s) and 6 failed rights_standing check(s) recorded on the affected asset "
            "partitions") in out.splitlines()  # 6 flagged partitions + the raw and HDF5 partition of the episodes
    assert LocalLake(lake_root).list_keys("flags/") and not LocalLake(lake_root).list_keys("raw-mcap/2026-11-10/g1-001/ep-a-1")
