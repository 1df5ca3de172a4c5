"""Rights reach every copy and every running server (issue 15 §2), against real `hvla serve` processes.

A module lake holds two real raw episodes under consents ``c-copy`` and ``c-live`` and the session's
trained checkpoint committed twice (``…/copy/5``, ``…/live/5``), each derived from one episode, so
``revoke_consent`` (the library behind ``hvla rights revoke``) flags exactly one of them.
"""

import json
import shutil
import signal
import subprocess
import time
import types
from pathlib import Path

import pytest
import yaml

from hvla_platform.lib.core.keys import raw_prefix
from hvla_platform.lib.core.lake import MANIFEST_NAME, LocalLake
from hvla_platform.lib.core.manifest import CheckpointManifest, InputRef, require_manifest
from hvla_platform.lib.ingest.landing import land_recording
from hvla_platform.lib.ingest.raw import ingest_partition
from hvla_platform.lib.ops.revocation import revoke_consent
from hvla_platform.lib.serving.client import PolicyClient, ServerError
from hvla_platform_tests.cli.test_serving_cli import HVLA, free_port, lines, start_server
from hvla_platform_tests.fixtures.checkpoints import commit_checkpoint
from hvla_platform_tests.fixtures.recordings import default_rights, write_recording
from hvla_platform_tests.lib.serving.test_server import obs_for
from hvla_platform_tests.lib.training import tiny_cache as tc

DAY, ROBOT = "2026-11-10", "g1-r"
_COMMON = set(CheckpointManifest.model_fields) - {"experiment", "config_name", "step", "release", "repo_id",
                                                   "initial_loss", "final_loss", "mlflow_run_id", "num_train_frames",
                                                   "num_params", "train_seconds", "timings", "serving_allowed",
                                                   "serving_blocked"}


@pytest.fixture(scope="module")
def rights_lake(step_dir, tmp_path_factory) -> LocalLake:
    root = tmp_path_factory.mktemp("rights")
    lake = LocalLake(root / "lake")
    for i, name in enumerate(("copy", "live")):
        rec = write_recording(root / "recs", episode_id=f"ep-{name}", robot_id=ROBOT, capture_day=DAY, seed=i,
                              duration_s=0.5, rights=default_rights(consent_refs=[f"c-{name}"]))
        land_recording(lake, rec)
    ingest_partition(lake, DAY, ROBOT)
    served = json.loads((step_dir / MANIFEST_NAME).read_text())
    extra = {k: v for k, v in served.items() if k not in _COMMON}
    for name in ("copy", "live"):
        raw = require_manifest(lake, raw_prefix(DAY, ROBOT, f"ep-{name}"))
        ref = InputRef(key=raw_prefix(DAY, ROBOT, f"ep-{name}"), sha256=raw.sha256(), kind="raw_mcap_episode",
                       episode_ids=[f"ep-{name}"])
        commit_checkpoint(lake, step_dir, f"checkpoints/hvla_serve_test/{name}/5", rights=tc.RIGHTS, extra=extra,
                          inputs=[ref])
    return lake


def env_for(tmp_path: Path, lake_root: Path) -> dict:
    import os

    return {**os.environ, "HVLA_HOME": str(tmp_path / "home"), "HVLA_API_KEY": "robot-key-1",
            "HVLA_LAKE_ROOT": str(lake_root)}


def serve_refused(env: dict, *args: str) -> str:
    """Run `hvla serve` expecting a refusal (exit 2); return its one stderr line."""
    p = subprocess.run(HVLA + ["serve", "--port", str(free_port()), *args], env=env, capture_output=True, text=True,
                       timeout=60)  # a refusal comes in ~2 s; main served these forever
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(err) == 1 and err[0].startswith("hvla serve: refused: "), p.stdout + p.stderr
    return err[0]


def test_a_copy_of_a_revoked_checkpoint_is_refused_wherever_it_lies(rights_lake, tmp_path):
    res = revoke_consent(rights_lake, "c-copy", reason="demonstrator withdrew (ticket 9)", by="dpo",
                         raw_policy="keep", rebuild=False)
    assert res.flagged == {"checkpoints/hvla_serve_test/copy/5": "retrain_required"}
    copy = Path(shutil.copytree(rights_lake.path("checkpoints/hvla_serve_test/copy/5"), tmp_path / "gpu" / "policy"))
    # looked up by the identity in its committed manifest: in the configured lake …
    line = serve_refused(env_for(tmp_path, rights_lake.root), "--checkpoint", str(copy))
    assert "checkpoints/hvla_serve_test/copy/5 is flagged retrain_required: demonstrator withdrew (ticket 9)" in line
    assert res.record_key in line
    # … or in the lake named with --lake when the configured one does not know it
    elsewhere = env_for(tmp_path, tmp_path / "other-lake")
    assert res.record_key in serve_refused(elsewhere, "--checkpoint", str(copy), "--lake", str(rights_lake.root))
    assert "give --lake PATH_OR_URI" in serve_refused(elsewhere, "--checkpoint", str(copy))


def test_a_tampered_serving_allowance_is_refused(rights_lake, tmp_path):
    copy = Path(shutil.copytree(rights_lake.path("checkpoints/hvla_serve_test/live/5"), tmp_path / "policy"))
    editable = copy / "checkpoint_manifest.yaml"
    doc = yaml.safe_load(editable.read_text())
    editable.write_text(yaml.safe_dump({**doc, "serving_allowed": doc["serving_allowed"] + ["public_api"]}))
    line = serve_refused(env_for(tmp_path, rights_lake.root), "--checkpoint", str(copy), "--use", "public_api")
    assert "checkpoint_manifest.yaml disagrees with the committed _hvla_manifest.json" in line
    assert "(adds ['public_api'])" in line


def test_uncommitted_or_modified_folders_are_refused_naming_the_file(rights_lake, tmp_path):
    from hvla_platform.lib.serving.authorization import CheckpointTampered
    from hvla_platform.lib.serving.checkpoint import authorize

    src = rights_lake.path("checkpoints/hvla_serve_test/live/5")
    weights = Path(shutil.copytree(src, tmp_path / "weights"))
    target = max((p for p in weights.rglob("*") if p.is_file() and p.name != MANIFEST_NAME),
                 key=lambda p: p.stat().st_size)  # the largest file: the parameters
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    target.write_bytes(bytes(data))
    rel = target.relative_to(weights).as_posix()
    line = serve_refused(env_for(tmp_path, rights_lake.root), "--checkpoint", str(weights))
    assert f"differs from its committed {MANIFEST_NAME}: {rel} changed (sha256" in line
    bare = Path(shutil.copytree(src, tmp_path / "bare"))
    (bare / MANIFEST_NAME).unlink()
    with pytest.raises(CheckpointTampered, match=f"is not committed: it has no {MANIFEST_NAME}"):
        authorize(bare, "lab_robot", lake=None, checkpoint_key=None)
    added = Path(shutil.copytree(src, tmp_path / "added"))
    (added / "extra.msgpack").write_bytes(b"x")
    with pytest.raises(CheckpointTampered, match="extra.msgpack was added"):
        authorize(added, "lab_robot", lake=None, checkpoint_key=None)


def test_a_running_server_stops_serving_once_revoked(rights_lake, tmp_path):
    env = env_for(tmp_path, rights_lake.root)
    port = free_port()
    log_dir = tmp_path / "serving"
    proc = subprocess.Popen(HVLA + ["serve", "--checkpoint", "checkpoints/hvla_serve_test/live/5", "--port", str(port),
                                    "--log-dir", str(log_dir), "--standing-interval", "0.2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = PolicyClient("127.0.0.1", port, api_key="robot-key-1", connect_timeout_s=120)
        obs = obs_for(types.SimpleNamespace(metadata=client.metadata))
        assert client.infer(obs)["actions"].shape == (10, 14)
        res = revoke_consent(rights_lake, "c-live", reason="consent withdrawn mid-shift", by="dpo",
                             raw_policy="keep", rebuild=False)
        time.sleep(0.2 * 3)  # within a refresh interval plus one lake read
        with pytest.raises(ServerError) as refused:
            client.infer(obs)
        assert "refused: checkpoint checkpoints/hvla_serve_test/live/5 is flagged retrain_required" in str(refused.value)
        assert res.record_key in str(refused.value)
        with pytest.raises(ServerError, match=r"HTTP 403 .*flagged retrain_required"):
            PolicyClient("127.0.0.1", port, api_key="robot-key-1", connect_timeout_s=5)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, out + err
    assert "standing of checkpoints/hvla_serve_test/live/5 re-checked" in out and "every 0.2 s" in out
    assert "hvla serve: revoked: checkpoint checkpoints/hvla_serve_test/live/5 is flagged" in err
    log = lines(next(log_dir.glob("inference-*.jsonl")))
    revoked = [ln for ln in log if ln["event"] == "revoked"]
    assert len(revoked) == 1 and res.record_key in revoked[0]["reason"]
    assert [ln["status"] for ln in log if ln["event"] == "request"] == ["ok", "revoked"]
    assert any(ln["event"] == "refused" and ln["status"] == 403 for ln in log)


def test_offline_serves_a_copy_and_says_standing_is_unchecked(step_dir, tmp_path):
    copy = Path(shutil.copytree(step_dir, tmp_path / "gpu" / "policy"))
    env = env_for(tmp_path, tmp_path / "no-lake")
    port, proc = start_server(copy, env, tmp_path / "serving", "--offline")
    try:
        with PolicyClient("127.0.0.1", port, api_key="robot-key-1") as client:
            assert client.infer(obs_for(types.SimpleNamespace(metadata=client.metadata)))["actions"].shape == (10, 14)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert ("hvla serve: warning: --offline: the standing of checkpoint checkpoints/hvla_serve_test/serve/5 "
            "(consent revocations) is not checked") in out
    log = lines(next((tmp_path / "serving").glob("inference-*.jsonl")))
    assert [ln["checkpoint_key"] for ln in log if ln["event"] == "standing_unchecked"] == [
        "checkpoints/hvla_serve_test/serve/5"]


def test_standing_keeps_the_last_answer_when_a_reread_fails_and_latches_a_flag(tmp_path):
    from hvla_platform.lib.core.keys import flag_key
    from hvla_platform.lib.serving.standing import Standing

    lake = LocalLake(tmp_path / "lake")
    key = "checkpoints/c/e/1"
    errors, revoked = [], []
    standing = Standing(lake, key, interval_s=0.05, on_revoked=revoked.append, on_error=errors.append).start()
    try:
        assert standing.refresh() is None and standing() is None
        lake.write_bytes(flag_key(key), b"{not json")  # an unreadable record: the refresh fails
        deadline = time.monotonic() + 5
        while not errors and time.monotonic() < deadline:
            time.sleep(0.02)
        assert errors and standing() is None
        lake.write_json(flag_key(key), {"status": "retrain_required", "reason": "withdrawn", "consent": "k",
                                        "at": "2026-12-01T00:00:00+00:00", "revocation": "rights-revocations/k/x.json"})
        while standing() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        lake.delete(flag_key(key))  # a flag, once seen, is kept by a running server
        time.sleep(0.2)
    finally:
        standing.stop()
    assert standing() == revoked[0] and len(revoked) == 1
    assert "flagged retrain_required: withdrawn" in revoked[0] and "rights-revocations/k/x.json" in revoked[0]
    with pytest.raises(ValueError, match="must be > 0"):
        Standing(lake, key, interval_s=0)


def test_an_unreachable_lake_is_a_one_line_refusal(rights_lake, tmp_path):
    copy = Path(shutil.copytree(rights_lake.path("checkpoints/hvla_serve_test/live/5"), tmp_path / "policy"))
    env = {**env_for(tmp_path, rights_lake.root), "HVLA_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
           "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_MAX_ATTEMPTS": "1",
           "AWS_RETRY_MODE": "standard"}
    line = serve_refused(env, "--checkpoint", str(copy), "--lake", "s3://no-such-server/lake")
    assert "cannot read the standing of checkpoint checkpoints/hvla_serve_test/live/5 in the lake" in line
    assert "--offline" in line
