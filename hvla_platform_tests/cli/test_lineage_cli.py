"""``hvla lineage upstream|downstream TARGET [--json]`` through argparse on a real small lake."""

from __future__ import annotations

import argparse
import json
import shutil

import pytest

from hvla_platform.cli.lineage import add_lineage_parser
from hvla_platform_tests.lib.lineage.test_graph import CKPT, EVAL, HELDOUT, TRAIN, build_pipeline_lake


def _run(argv, capsys):
    p = argparse.ArgumentParser(prog="hvla")
    sub = p.add_subparsers(dest="command", required=True)
    add_lineage_parser(sub)
    args = p.parse_args(argv)
    rc = args.func(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory):
    home, _ = build_pipeline_lake()
    dst = tmp_path_factory.mktemp("cli") / "lake"
    shutil.copytree(home / "lake", dst, ignore=shutil.ignore_patterns(".hvla-tmp"))
    return dst


@pytest.fixture(autouse=True)
def _env(lake_root, monkeypatch):
    monkeypatch.setenv("HVLA_LAKE_ROOT", str(lake_root))
    monkeypatch.delenv("HVLA_LAKE_BACKEND", raising=False)


def test_upstream_json(capsys):
    rc, out, _ = _run(["lineage", "upstream", CKPT, "--json"], capsys)
    assert rc == 0
    d = json.loads(out)
    assert d["direction"] == "upstream" and d["tree"]["type"] == "checkpoint" and d["tree"]["key"] == CKPT
    assert [r["episode_ids"][0] for r in d["raw_episodes"]] == TRAIN
    for r in d["raw_episodes"]:
        assert len(r["sha256"]) == 64 and r["info"]["robot_id"] and r["info"]["capture_day"]
        assert r["rights"]["consent_refs"] and r["rights"]["licenses"] == ["proprietary"]
    assert d["tree"]["config"]["steps"] == 20 and d["tree"]["code_version"]


def test_upstream_human(capsys):
    rc, out, _ = _run(["lineage", "upstream", EVAL, "--no-config"], capsys)
    assert rc == 0
    assert out.startswith("eval_report eval-reports/") and "config:" not in out
    assert all(e in out for e in TRAIN + HELDOUT) and "operator op-test-01" in out


def test_downstream_json_and_human(capsys):
    rc, out, _ = _run(["lineage", "downstream", "ep-b-2", "--json"], capsys)
    assert rc == 0
    d = json.loads(out)
    assert {a["type"] for a in d["artifacts"]} == {"raw_mcap_episode", "episodes_hdf5", "lerobot_dataset",
                                                   "robodm_cache", "openpi_export", "eval_report"}
    rc, out, _ = _run(["lineage", "downstream", "consent:consent-A", "--json", "--no-raw"], capsys)
    keys = [a["key"] for a in json.loads(out)["artifacts"]]
    assert CKPT in keys and EVAL in keys and not any(k.startswith("raw-mcap/") for k in keys)
    rc, out, _ = _run(["lineage", "downstream", "customer:internal"], capsys)
    assert rc == 0 and "checkpoint:" in out and CKPT in out


def test_unknown_target_exits_2_with_reason(capsys):
    rc, out, err = _run(["lineage", "upstream", "checkpoints/none/x/1", "--json"], capsys)
    assert rc == 2 and out == "" and "checkpoints/none/x/1" in err
    rc, _, err = _run(["lineage", "downstream", "ep-unknown"], capsys)
    assert rc == 2 and "ep-unknown" in err
