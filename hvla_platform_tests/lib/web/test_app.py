"""The lake web service (issue 13 §2): a real small lake (an HTML QA report, JSON, an MP4 written by
libx264) served over HTTP with the right content types, byte ranges for video seeking, one-line
refusals (missing key with a did-you-mean, traversal, private directories, writes) and the API key."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import av
import numpy as np
import pytest
from starlette.testclient import TestClient

from hvla_platform.lib.core.lake import LocalLake, S3Lake
from hvla_platform.lib.web.app import KEY_COOKIE, build_app, parse_range
from hvla_platform.lib.web.links import lake_file_url, mlflow_run_url

PARTITION = "episodes-hdf5/2026-11-10/g1-001"
REPORT = f"{PARTITION}/qa_report.html"
VIDEO = f"{PARTITION}/videos/ep-0001.mp4"
METRICS = f"{PARTITION}/qa_metrics.json"
EVAL_REPORT = "eval-reports/exp-a/100/report.html"
REPORT_HTML = b"<!doctype html><html><body><h1>QA report 2026-11-10 g1-001</h1></body></html>"


def write_mp4(path: Path, frames: int = 30) -> bytes:
    """A small real H.264 MP4 (64x48, 10 fps), as LeRobot encodes episodes; its bytes."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", 10)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 8) % 256, np.uint8), format="rgb24")
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    return path.read_bytes()


def fill(lake, tmp: Path) -> bytes:
    """The test lake's objects; returns the MP4's bytes."""
    mp4 = write_mp4(tmp / "ep.mp4")
    lake.write_bytes(REPORT, REPORT_HTML)
    lake.write_json(METRICS, {"episodes": 1})
    lake.put_file(tmp / "ep.mp4", VIDEO)
    lake.write_bytes(EVAL_REPORT, b"<html><body>eval exp-a step 100</body></html>")
    lake.write_bytes("restricted/raw-mcap/2026-11-10/g1-001/ep-0002/ep-0002.mcap", b"withdrawn")
    return mp4


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """``(lake, mp4 bytes, secret file outside the lake)`` with a staging file and an escaping symlink."""
    tmp = tmp_path_factory.mktemp("web")
    lake = LocalLake(tmp / "lake")
    mp4 = fill(lake, tmp)
    (lake.root / ".hvla-tmp" / "locks").mkdir(parents=True, exist_ok=True)
    (lake.root / ".hvla-tmp" / "locks" / "build.lock").write_text("pid 1")
    secret = tmp / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    os.symlink(secret, lake.root / PARTITION / "escape.txt")
    return lake, mp4


@pytest.fixture(scope="module")
def client(local):
    with TestClient(build_app(local[0])) as c:
        yield c


def test_objects_are_served_with_their_content_types(client, local):
    _, mp4 = local
    r = client.get(f"/lake/{REPORT}")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.content == REPORT_HTML
    r = client.get(f"/lake/{METRICS}")
    assert r.headers["content-type"] == "application/json" and r.json() == {"episodes": 1}
    r = client.get(f"/lake/{VIDEO}")
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert r.headers["accept-ranges"] == "bytes" and r.content == mp4
    assert r.headers["x-content-type-options"] == "nosniff"


def test_a_range_request_gets_206_and_exactly_those_bytes(client, local):
    _, mp4 = local
    r = client.get(f"/lake/{VIDEO}", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == mp4[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(mp4)}"
    r = client.get(f"/lake/{VIDEO}", headers={"Range": "bytes=-16"})
    assert r.status_code == 206 and r.content == mp4[-16:]
    r = client.get(f"/lake/{VIDEO}", headers={"Range": f"bytes={len(mp4)}-"})
    assert r.status_code == 416


def test_a_missing_key_is_404_in_one_line_with_the_closest_sibling(client):
    r = client.get(f"/lake/{PARTITION}/qa_reprot.html")
    assert r.status_code == 404
    assert r.text == f"no lake object or folder '{PARTITION}/qa_reprot.html' (did you mean '{REPORT}'?)\n"
    r = client.get("/lake/episodes-hdf5/2026-11-11/g1-001/qa_report.html")  # the day does not exist
    assert r.status_code == 404 and "did you mean 'episodes-hdf5/2026-11-10'?" in r.text


@pytest.mark.parametrize("path, why", [
    ("/lake/episodes-hdf5/..%2F..%2Fsecret.txt", "'..' segments are not allowed"),
    ("/lake/%2Fetc%2Fpasswd", "is absolute"),
    ("/lake/.hvla-tmp/locks/build.lock", "private directory"),
    ("/lake/restricted/raw-mcap/2026-11-10/g1-001/ep-0002/ep-0002.mcap", "consent withdrawal"),
    (f"/lake/{PARTITION}/escape.txt", "leads outside the lake"),
])
def test_keys_outside_the_served_lake_are_refused(client, path, why):
    r = client.get(path)
    assert r.status_code == 403 and why in r.text and r.text.count("\n") == 1
    assert "TOP-SECRET-CONTENT" not in r.text


def test_writes_are_405(client):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = client.request(method, f"/lake/{REPORT}")
        assert r.status_code == 405 and "read-only" in r.text and r.headers["allow"] == "GET, HEAD"
    assert client.post("/").status_code == 405
    assert client.get(f"/lake/{REPORT}").content == REPORT_HTML  # untouched


def test_the_browsers_favicon_request_is_no_content_not_an_error(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 204 and r.content == b""


def test_folders_list_their_children_and_the_index_links_the_reports(client):
    r = client.get("/lake/episodes-hdf5", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/lake/episodes-hdf5/"
    r = client.get(f"/lake/{PARTITION}/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f"href='/lake/{REPORT}'" in r.text and f"href='/lake/{PARTITION}/videos/'" in r.text
    root = client.get("/lake/").text
    assert "episodes-hdf5/" in root and ".hvla-tmp" not in root and "restricted" not in root
    index = client.get("/").text
    assert f"href='/lake/{REPORT}'" in index and f"href='/lake/{EVAL_REPORT}'" in index


def test_the_metadata_links_name_what_the_service_serves(client, monkeypatch):
    monkeypatch.setenv("HVLA_WEB_URL", "http://lake.example:3001/")
    url = lake_file_url(REPORT)
    assert url == f"http://lake.example:3001/lake/{REPORT}"
    assert client.get(urlsplit(url).path).content == REPORT_HTML
    monkeypatch.delenv("HVLA_MLFLOW_UI_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///tmp/mlflow.db")  # embedded: hvla ui's mlflow ui
    assert mlflow_run_url("0a1b") == "http://127.0.0.1:5000/#/runs/0a1b"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")  # a tracking server is its own UI
    assert mlflow_run_url("0a1b", "7") == "http://mlflow:5000/#/experiments/7/runs/0a1b"
    monkeypatch.setenv("HVLA_MLFLOW_UI_URL", "https://mlflow.example.com/")
    assert mlflow_run_url("0a1b") == "https://mlflow.example.com/#/runs/0a1b"


def test_parse_range_follows_rfc_9110():
    assert parse_range(None, 10) is None and parse_range("bytes=0-1,4-5", 10) is None
    assert parse_range("bytes=2-", 10) == (2, 9) and parse_range("bytes=2-100", 10) == (2, 9)
    assert parse_range("bytes=-3", 10) == (7, 9) and parse_range("items=1-2", 10) is None
    for bad in ("bytes=10-", "bytes=5-2", "bytes=-0"):
        with pytest.raises(ValueError, match="not satisfiable"):
            parse_range(bad, 10)


def test_a_non_loopback_host_needs_an_api_key_and_requests_carry_it(local):
    lake, _ = local
    with pytest.raises(ValueError, match="refusing to serve the lake on '0.0.0.0' without an API key"):
        build_app(lake, host="0.0.0.0")
    with TestClient(build_app(lake, host="0.0.0.0", api_key="s3cret")) as c:
        r = c.get(f"/lake/{REPORT}")
        assert r.status_code == 401 and r.text.startswith("missing API key: send 'Authorization: Bearer <key>'")
        assert c.get(f"/lake/{REPORT}", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get(f"/lake/{REPORT}", headers={"Authorization": "Bearer s3cret"}).content == REPORT_HTML
        assert c.get(f"/lake/{REPORT}", headers={"Authorization": "Api-Key s3cret"}).status_code == 200
        assert c.get("/healthz").text == "OK\n"  # probes need no key
        assert c.get("/?key=wrong").status_code == 401
        # a browser: ?key= once sets a cookie (a digest, not the key) and drops the key from the URL
        r = c.get(f"/lake/{REPORT}?key=s3cret", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/lake/{REPORT}"
        assert c.cookies[KEY_COOKIE] and "s3cret" not in c.cookies[KEY_COOKIE]
        assert c.get(f"/lake/{REPORT}").content == REPORT_HTML  # the cookie now


def test_the_s3_lake_streams_objects_and_ranges(s3_client, tmp_path):
    lake = S3Lake(f"web-{uuid.uuid4().hex[:10]}", s3_client, prefix="lake")
    mp4 = fill(lake, tmp_path)
    with TestClient(build_app(lake)) as c:
        r = c.get(f"/lake/{VIDEO}")
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4" and r.content == mp4
        r = c.get(f"/lake/{VIDEO}", headers={"Range": "bytes=100-199"})
        assert r.status_code == 206 and r.content == mp4[100:200]
        assert r.headers["content-range"] == f"bytes 100-199/{len(mp4)}" and r.headers["content-length"] == "100"
        head = c.head(f"/lake/{VIDEO}")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(mp4)) and head.content == b""
        assert c.get(f"/lake/{REPORT}").headers["content-type"] == "text/html; charset=utf-8"
        assert "did you mean" in c.get(f"/lake/{PARTITION}/qa_reprot.html").text
        assert f"href='/lake/{REPORT}'" in c.get(f"/lake/{PARTITION}/").text
        assert c.get("/lake/restricted/").status_code == 403 and "restricted" not in c.get("/lake/").text
        assert f"href='/lake/{REPORT}'" in c.get("/").text
