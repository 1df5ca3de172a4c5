"""The episode review page and the release review queue (issue 13 §4), without a browser: what the
page is built from (arrays, findings with their times, rights, provenance), the H.264 video with
HTTP Range, decisions recorded exactly as ``hvla qa reject`` records them and refused without a
reviewer identity, and one-line 404s with the closest id. The browser side is
hvla_platform_tests/ui/test_review_page.py.

One small real lake for the module: two recordings through landing → raw → conversion with QA (a
clean one and one whose head camera is frozen from 0.8 s to 2.0 s), then a release built from it.
"""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path

import av
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hvla_platform.cli.main import main
from hvla_platform.lib.core.lake import LocalLake
from hvla_platform.lib.core.rights import Rights
from hvla_platform.lib.dataset.build import build_release
from hvla_platform.lib.dataset.releases import register_release
from hvla_platform.lib.ingest.raw import read_partition_index
from hvla_platform.lib.processing.qa.decisions import decision_history, record_decision
from hvla_platform.lib.web.review import default_identity, episode_review, release_queue, review_routes
from hvla_platform_tests.fixtures.planted import DAY, ROBOT, Planted, run_suite, write_suite

FLAGGED, CLEAN = "ep-frozen-cam-a", "ep-clean-1"
FROZEN_AT, FROZEN_S = 0.8, 1.2
SUITE = (Planted(CLEAN, "clean", 101, 3.0),
         Planted(FLAGGED, "frozen_camera", 131, 3.0, ("frozen_camera",),
                 {"frozen_camera": {"at": FROZEN_AT, "length": FROZEN_S, "camera": "head"}}))
PAGE = f"/review/partitions/{DAY}/{ROBOT}/episodes/{FLAGGED}"
RELEASE_SPEC = "name: rv-v1\nrepo_id: hvla/rv\npartitions: all\ncameras: [head]\nheldout: {fraction: 0.0}\n"


def review_lake(root: Path) -> LocalLake:
    """A lake under ``root/lake`` holding partition ``DAY|ROBOT`` converted with QA from :data:`SUITE`
    (recordings written under ``root/recordings``), the flagged episode's check failed."""
    write_suite(root / "recordings", SUITE)
    lake = LocalLake(root / "lake")
    convs = run_suite(lake, root / "recordings")
    assert not convs[FLAGGED].qa_checks["camera_frozen"]["passed"] and convs[CLEAN].status == "converted"
    return lake


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> LocalLake:
    return review_lake(tmp_path_factory.mktemp("review"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("web-cache")


def _client(lake: LocalLake, cache: Path, host: str = "127.0.0.1", header: str | None = "") -> TestClient:
    app = Starlette(routes=review_routes(lake, identity=default_identity(header), cache_dir=cache))
    return TestClient(app, client=(host, 50000))


def test_episode_review_holds_the_arrays_findings_rights_and_provenance(lake, cache):
    r = episode_review(lake, DAY, ROBOT, FLAGGED, cache_dir=cache)
    t = r.timestamps.shape[0]
    assert r.timestamps.dtype == np.float64 and r.timestamps[0] == 0.0
    assert np.allclose(np.diff(r.timestamps), 1 / r.fps)
    assert r.state.dtype == np.float32 and r.state.shape == (t, len(r.state_names)) and len(r.state_names) == 29
    assert r.action.dtype == np.float32 and r.action.shape == (t, len(r.action_names)) and len(r.action_names) == 14
    assert [(c.name, c.kind) for c in r.cameras] == [("head", "rgb"), ("wrist_right", "rgb")]
    # the planted defect is the one failed check, at its time, on its camera
    assert [(f.check, f.severity) for f in r.failed] == [("camera_frozen", "gate")]
    [span] = r.failed[0].spans
    assert span.subject == "head" and span.start_s == pytest.approx(FROZEN_AT, abs=0.1)
    assert span.end_s == pytest.approx(FROZEN_AT + FROZEN_S, abs=0.1)
    assert any(f.check == "camera_coverage" and f.severity == "processing" and f.passed for f in r.findings)
    # rights: the episode's own, as ingested; provenance: the hashes of the files the lake holds
    raw = next(e for e in read_partition_index(lake, DAY, ROBOT)["episodes"] if e["episode_id"] == FLAGGED)
    assert r.rights == Rights.from_dict(raw["rights"]).to_dict() and r.rights["consent_refs"]
    assert r.provenance["raw MCAP"] == raw["mcap_key"]
    assert r.provenance["raw sha256"] == lake.sha256(raw["mcap_key"])
    assert r.provenance["HDF5 sha256"] == lake.sha256(r.provenance["HDF5"])
    assert r.provenance["robot profile"] == "unitree_g1_29dof@1" and r.withdrawn == ""


def test_camera_video_is_h264_one_frame_per_episode_frame_served_with_range_and_encoded_once(lake, cache):
    c = _client(lake, cache)
    resp = c.get(f"{PAGE}/video/head.mp4")
    assert resp.status_code == 200 and resp.headers["content-type"] == "video/mp4"
    mp4 = next((cache / "video").glob("*/head.mp4"))
    with av.open(str(mp4)) as f:
        stream = f.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        frames = list(f.decode(stream))
    review = episode_review(lake, DAY, ROBOT, FLAGGED, cache_dir=cache)
    assert len(frames) == review.timestamps.shape[0]
    assert frames[-1].time == pytest.approx(review.timestamps[-1], abs=1e-6)  # video time = episode time
    part = c.get(f"{PAGE}/video/head.mp4", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100 and part.content == resp.content[:100]
    before = mp4.stat().st_mtime_ns
    assert c.get(f"{PAGE}/video/head.mp4").content == resp.content and mp4.stat().st_mtime_ns == before


def test_page_opens_at_t_with_the_finding_marked_and_the_reviewer_named(lake, cache):
    c = _client(lake, cache)
    html = c.get(f"{PAGE}?t=0.8").text
    assert f'id="reviewer">{getpass.getuser()}<' in html
    assert re.search(r'<video id="video-head"[^>]+src="[^"]+/video/head\.mp4\?v=[0-9a-f]{12}"', html)
    mark = re.search(r'<a class="mark" data-check="camera_frozen" data-t="([0-9.]+)"', html)
    assert mark and float(mark[1]) == pytest.approx(FROZEN_AT, abs=0.1)
    config = json.loads(re.search(r'id="page-config">(.*?)</script>', html)[1])
    assert config["t"] == 0.8 and config["decision_url"] == f"{PAGE}/decision"
    data = json.loads(re.search(r'id="episode-data">(.*?)</script>', html)[1])
    assert np.asarray(data["state"]).shape == (len(data["timestamps"]), 29)
    assert '<script src="/review/static/plotly.min.js">' in html
    js = c.get("/review/static/plotly.min.js")
    assert js.status_code == 200 and b"plotly" in js.content[:2000].lower() and len(js.content) > 1_000_000
    assert c.get(f"{PAGE}?t=abc").text.strip() == "t='abc' is not a number of seconds"


def test_a_decision_posted_from_the_page_is_the_one_hvla_qa_list_shows(lake, cache, monkeypatch, capsys):
    c = _client(lake, cache)
    resp = c.post(f"{PAGE}/decision", json={"decision": "reject", "reason": "head camera frozen"})
    assert resp.status_code == 200, resp.text
    rec = resp.json()
    assert rec["by"] == getpass.getuser() and rec["decision"] == "reject"
    assert decision_history(lake, FLAGGED)[-1] == rec
    monkeypatch.setenv("HVLA_LAKE_ROOT", str(lake.root))
    monkeypatch.setenv("HVLA_LAKE_BACKEND", "local")
    assert main(["qa", "list", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["episodes"] if r["episode_id"] == FLAGGED)
    assert row["decision"] == {k: rec[k] for k in ("decision", "by", "reason", "at")}
    assert "head camera frozen" in c.get(PAGE).text  # the history on the page


def test_decisions_without_a_reviewer_identity_or_from_elsewhere_are_refused(lake, cache):
    before = len(decision_history(lake, FLAGGED))
    body = {"decision": "approve", "reason": "looks fine"}
    remote = _client(lake, cache, host="10.1.2.3")
    resp = remote.post(f"{PAGE}/decision", json=body)
    assert resp.status_code == 403 and resp.text.count("\n") == 1 and "no reviewer identity" in resp.text
    assert "No reviewer identity" in remote.get(PAGE).text and 'id="approve" data-decision="approve" disabled' in remote.get(PAGE).text
    proxied = _client(lake, cache, host="10.1.2.3", header="X-Forwarded-User")
    assert proxied.post(f"{PAGE}/decision", json=body).status_code == 403  # the proxy named nobody
    local = _client(lake, cache)
    assert local.post(f"{PAGE}/decision", json=body, headers={"Origin": "http://evil.example"}).status_code == 403
    assert local.post(f"{PAGE}/decision", data=body).status_code == 415  # a cross-site form cannot send JSON
    who = local.post(f"{PAGE}/decision", json={**body, "by": "someone-else"})
    assert who.status_code == 400 and "the reviewer comes from the request" in who.text
    bad = local.post(f"{PAGE}/decision", json={"decision": "aprove", "reason": "x"})
    assert bad.status_code == 400 and "aprove" in bad.text
    assert len(decision_history(lake, FLAGGED)) == before
    ok = proxied.post(f"{PAGE}/decision", json=body, headers={"X-Forwarded-User": "sup-anna"})
    assert ok.status_code == 200 and ok.json()["by"] == "sup-anna"
    assert decision_history(lake, FLAGGED)[-1]["by"] == "sup-anna"


def test_unknown_partition_episode_camera_and_release_are_404_with_the_closest_id(lake, cache):
    c = _client(lake, cache)
    cases = {
        f"/review/partitions/{DAY}/{ROBOT}/episodes/ep-frozen-cam": "(did you mean 'ep-frozen-cam-a'?)",
        f"/review/partitions/2026-11-01/{ROBOT}/episodes/{FLAGGED}": f"(did you mean '{DAY}/{ROBOT}'?)",
        f"{PAGE}/video/haed.mp4": "(did you mean 'head'?)",
        f"/review/partitions/{DAY}/{ROBOT}/episodes/ep%20x": "not a safe id",
        "/review/releases/no-such-release": "unknown release 'no-such-release'",
        "/review/releases/%2E%2E": "release '..' is not a safe id",
    }
    for url, expected in cases.items():
        resp = c.get(url)
        assert resp.status_code == 404 and expected in resp.text and resp.text.count("\n") == 1, (url, resp.text)


@pytest.fixture(scope="module")
def release(lake) -> str:
    """Release ``rv-v1`` built after a supervisor approved the flagged episode (so it is in, as
    ``approved``)."""
    record_decision(lake, FLAGGED, "approve", "frozen span is outside the reach", by="sup-ben")
    build_release(lake, register_release(lake, RELEASE_SPEC))
    return "rv-v1"


def test_release_queue_lists_every_episode_with_score_state_and_latest_decision(lake, cache, release):
    q = release_queue(lake, release)
    rows = {r.episode_id: r for r in q.rows}
    assert set(rows) == {CLEAN, FLAGGED} and q.release == release and q.version == 0
    assert rows[CLEAN].in_release == "selected" and rows[CLEAN].quality_score > 0.5
    assert rows[FLAGGED].in_release == "approved" and rows[FLAGGED].failed_checks == ("camera_frozen",)
    assert "QA gate(s) failed: ['camera_frozen']; approved by sup-ben" in rows[FLAGGED].reason
    assert rows[FLAGGED].partition == f"{DAY}|{ROBOT}" and rows[FLAGGED].state == "converted"
    latest = decision_history(lake, FLAGGED)[-1]
    assert rows[FLAGGED].decision == {k: latest[k] for k in ("decision", "by", "reason", "at")}
    html = _client(lake, cache).get(f"/review/releases/{release}").text
    assert (f'<tr data-episode="{FLAGGED}" data-decision="{latest["decision"]}" data-in-release="approved">'
            f'<td><a href="{PAGE}">') in html
    assert 'id="decision-filter"' in html and 'id="filter"' in html
    index = _client(lake, cache).get("/review/").text
    assert f'href="/review/releases/{release}"' in index and f'href="{PAGE}"' in index
