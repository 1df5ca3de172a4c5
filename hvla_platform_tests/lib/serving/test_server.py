"""The policy server over real websockets: protocol, error frames, API key, caps, inference log."""

import urllib.request

import msgpack
import numpy as np
import pytest
import websockets
from websockets.sync.client import connect

from hvla_platform.lib.serving.client import PolicyClient, ServerError
from hvla_platform.lib.serving.inference_log import InferenceLog, read_log
from hvla_platform.lib.serving.server import PolicyServer
from hvla_platform.lib.serving.wire import pack, unpack


def obs_for(policy, rng=None):
    """A raw observation of the shapes the checkpoint was trained on."""
    rng = rng or np.random.default_rng(0)
    obs = {"observation/state": rng.uniform(-0.5, 0.5, 17).astype(np.float32), "prompt": "reach"}
    for cam, shape in policy.metadata["image_shapes"].items():
        obs[f"observation/images/{cam}"] = rng.integers(0, 256, size=shape, dtype=np.uint8)
    return obs


@pytest.fixture()
def served(policy, tmp_path):
    log = InferenceLog(tmp_path / "log", checkpoint="checkpoints/hvla_serve_test/serve/5")
    with PolicyServer(policy, port=0, inference_log=log, max_message_bytes=1024 * 1024) as server:
        yield server, log
    log.close()


def log_after_close(log, timeout_s=10.0):
    """The log's lines once the server has logged the connection's close (it does so asynchronously,
    after the client's closing handshake)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        lines = read_log(log.path)
        if any(ln["event"] == "close" for ln in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def raw_exchange(port, payload, headers=None):
    """Send one frame with a plain websockets client; return (metadata, reply, close code)."""
    with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None, additional_headers=headers) as ws:
        meta = unpack(ws.recv(timeout=10))
        ws.send(payload)
        try:
            reply = ws.recv(timeout=10)
        except websockets.ConnectionClosed:
            reply = None
        try:
            ws.recv(timeout=10)
        except websockets.ConnectionClosed:
            pass
        return meta, reply, ws.close_code


def test_metadata_then_actions_equal_to_the_policy(served, policy):
    server, log = served
    obs = obs_for(policy)
    with PolicyClient("127.0.0.1", server.port) as client:
        assert client.metadata["checkpoint"] == "checkpoints/hvla_serve_test/serve/5"
        assert client.metadata["action_horizon"] == 10 and client.metadata["cameras"] == ["head", "wrist_right"]
        first = client.infer(obs)
        second = client.infer(obs)
    direct = policy.infer(obs)["actions"]
    assert first["actions"].dtype == np.float32 and first["actions"].shape == (10, 14)
    np.testing.assert_allclose(first["actions"], direct, atol=1e-6)  # norm stats applied server-side
    assert set(first["server_timing"]) == {"infer_ms"}
    assert set(second["server_timing"]) == {"infer_ms", "prev_total_ms"}
    assert second["server_timing"]["prev_total_ms"] >= first["server_timing"]["infer_ms"] * 0.5
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
        assert r.status == 200 and r.read() == b"OK\n"

    lines = log_after_close(log)
    reqs = [ln for ln in lines if ln["event"] == "request"]
    assert [r["seq"] for r in reqs] == [1, 2] and all(r["status"] == "ok" for r in reqs)
    for r in reqs:
        assert r["checkpoint"] == "checkpoints/hvla_serve_test/serve/5" and r["action_shape"] == [10, 14]
        assert r["latency_ms"] > 0 and r["infer_ms"] > 0 and r["request_bytes"] > 2 * 96 * 128 * 3
        assert set(r) == {"event", "t", "instance", "checkpoint", "conn", "seq", "latency_ms", "infer_ms",
                          "request_bytes", "action_shape", "status"}  # no frames, states or prompts
    assert log.path.stat().st_size < 4000 and not (log.log_dir / "samples").exists()
    assert [ln["event"] for ln in lines if ln["event"] in ("start", "open", "close")] == ["start", "open", "close"]


def bad_array(**override):
    m = {b"__ndarray__": True, b"data": np.zeros(17, np.float32).tobytes(), b"dtype": "<f4", b"shape": [17]}
    m.update({k.encode(): v for k, v in override.items()})
    return m


def with_state(policy, state):
    obs = obs_for(policy)
    obs["observation/state"] = state
    return pack(obs)


@pytest.mark.parametrize("make, expect", [
    (lambda p: b"\x93garbage", "not a msgpack message"),
    (lambda p: "a text frame", "binary msgpack frames"),
    (lambda p: msgpack.packb([1, 2, 3]), "must be a msgpack map"),
    (lambda p: msgpack.packb({"observation/state": bad_array(dtype="|O")}), "is not allowed"),
    (lambda p: msgpack.packb({"observation/state": bad_array(shape=[18])}), "do not match shape"),
    (lambda p: pack({"observation/state": np.zeros(17, np.float32)}), "missing key(s)"),
    (lambda p: with_state(p, np.zeros(5, np.float32)), "must have shape (17,)"),
    (lambda p: with_state(p, np.full(17, np.nan, np.float32)), "non-finite"),
    (lambda p: with_state(p, np.zeros(17, bool)), "must be numeric"),
    (lambda p: pack({**obs_for(p), "observation/images/head": np.zeros((96, 128, 3), np.float32)}), "must be uint8"),
    (lambda p: pack({**obs_for(p), "observation/images/head": np.zeros((224, 224, 3), np.uint8)}),
     "must have shape (96, 128, 3)"),
    (lambda p: pack({**obs_for(p), "prompt": 42}), "'prompt' must be a str"),
])
def test_malformed_observation_gets_error_frame_and_1011(served, policy, make, expect):
    server, log = served
    payload = make(policy)
    meta, reply, code = raw_exchange(server.port, payload)
    assert meta["checkpoint"] == "checkpoints/hvla_serve_test/serve/5"
    assert isinstance(reply, str) and expect in reply and "hvla policy server: request 1" in reply
    assert code == 1011
    # the server is still up and serving
    with PolicyClient("127.0.0.1", server.port) as client:
        assert client.infer(obs_for(policy))["actions"].shape == (10, 14)
    errors = [ln for ln in read_log(log.path) if ln["event"] == "request" and ln["status"] == "error"]
    assert len(errors) == 1 and expect in errors[0]["error"]


class Exploding:
    """A policy whose inference fails (a bug or a device error on the server side)."""

    metadata = {"checkpoint": "boom"}

    def infer(self, obs):
        raise RuntimeError("CUDA error: device lost")


class NonFinite:
    metadata = {"checkpoint": "nan"}

    def infer(self, obs):
        return {"actions": np.full((10, 14), np.nan, np.float32)}


@pytest.mark.parametrize("policy_cls, expect", [(Exploding, "inference failed: RuntimeError: CUDA error"),
                                                (NonFinite, "the policy produced invalid actions")])
def test_policy_failure_is_an_error_frame_not_a_crash(policy_cls, expect):
    with PolicyServer(policy_cls(), port=0) as server:
        _, reply, code = raw_exchange(server.port, pack({"x": np.zeros(2)}))
        assert isinstance(reply, str) and expect in reply and code == 1011
        _, reply, code = raw_exchange(server.port, pack({"x": np.zeros(2)}))  # still serving
        assert expect in reply


def test_message_size_cap_closes_1009_and_server_survives(served, policy):
    server, _ = served
    big = pack({**obs_for(policy), "junk": np.zeros(2 * 1024 * 1024, np.uint8)})
    _, reply, code = raw_exchange(server.port, big)
    assert reply is None and code == 1009
    with PolicyClient("127.0.0.1", server.port) as client:
        assert client.infer(obs_for(policy))["actions"].shape == (10, 14)


def test_api_key(policy, tmp_path):
    log = InferenceLog(tmp_path, checkpoint="c")
    with PolicyServer(policy, port=0, api_key="s3cret", inference_log=log) as server:
        with pytest.raises(ServerError, match="HTTP 401 missing API key"):
            PolicyClient("127.0.0.1", server.port)
        with pytest.raises(ServerError, match="HTTP 401 wrong API key"):
            PolicyClient("127.0.0.1", server.port, api_key="guess")
        with PolicyClient("127.0.0.1", server.port, api_key="s3cret") as client:
            assert client.infer(obs_for(policy))["actions"].shape == (10, 14)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as r:
            assert r.status == 200  # health probes need no key
    refused = [ln for ln in read_log(log.path) if ln["event"] == "refused"]
    assert [r["reason"] for r in refused] == ["missing API key", "wrong API key"]
    assert "s3cret" not in log.path.read_text() and "guess" not in log.path.read_text()


def test_connection_cap(policy):
    with PolicyServer(policy, port=0, max_connections=1) as server:
        with PolicyClient("127.0.0.1", server.port) as first:
            with pytest.raises(ServerError, match="HTTP 503 server busy"):
                PolicyClient("127.0.0.1", server.port)
            assert first.infer(obs_for(policy))["actions"].shape == (10, 14)


def test_binds_loopback_by_default_and_refuses_open_remote_without_key(policy):
    server = PolicyServer(policy, port=0)
    assert server.host == "127.0.0.1"
    with pytest.raises(ValueError, match="without an API key"):
        PolicyServer(policy, host="0.0.0.0", port=0)
    PolicyServer(policy, host="0.0.0.0", port=0, api_key="k")  # allowed with a key
    PolicyServer(policy, host="0.0.0.0", port=0, allow_remote_without_key=True)  # or explicitly


def test_observation_sampling_is_explicit(policy, tmp_path):
    log = InferenceLog(tmp_path, checkpoint="c", sample_every=2)
    with PolicyServer(policy, port=0, inference_log=log) as server, PolicyClient("127.0.0.1", server.port) as client:
        for i in range(4):
            client.infer(obs_for(policy, np.random.default_rng(i)))
    reqs = [ln for ln in read_log(log.path) if ln["event"] == "request"]
    assert [("sample" in r) for r in reqs] == [False, True, False, True]
    sample = np.load(tmp_path / reqs[1]["sample"])
    np.testing.assert_array_equal(sample["observation__images__head"],
                                  obs_for(policy, np.random.default_rng(1))["observation/images/head"])
    assert str(sample["prompt"]) == "reach"


def test_request_lines_reach_the_file_within_the_flush_interval(served, policy):
    import time

    server, log = served
    with PolicyClient("127.0.0.1", server.port) as client:
        for _ in range(3):
            client.infer(obs_for(policy))
        time.sleep(log.flush_interval_s * 2.5)  # connection still open: only the periodic flush writes them
        lines = read_log(log.path)
        assert [ln["seq"] for ln in lines if ln["event"] == "request"] == [1, 2, 3]
    events = [ln["event"] for ln in log_after_close(log)]
    assert events == ["start", "open", "request", "request", "request", "close"]  # in order
    times = [ln["t"] for ln in read_log(log.path)]
    assert times == sorted(times)


class Recording:
    """Keeps what the server hands the policy; optionally writes into it (a policy bug)."""

    metadata = {"checkpoint": "rec"}

    def __init__(self, mutate=False):
        self.seen = []
        self.mutate = mutate

    def infer(self, obs):
        self.seen.append(obs)
        if self.mutate:
            obs["observation/state"] *= 2  # in place: the decoded arrays are read-only views
        return {"actions": np.zeros((10, 14), np.float32)}


def test_the_policy_gets_read_only_views_of_the_message():
    obs = {"observation/state": np.arange(17, dtype=np.float32),
           "observation/images/head": np.full((96, 128, 3), 7, np.uint8), "prompt": "reach"}
    policy = Recording()
    with PolicyServer(policy, port=0) as server, PolicyClient("127.0.0.1", server.port) as client:
        client.infer(obs)
    (got,) = policy.seen
    state, image = got["observation/state"], got["observation/images/head"]
    assert got["prompt"] == "reach"
    np.testing.assert_array_equal(state, obs["observation/state"])
    np.testing.assert_array_equal(image, obs["observation/images/head"])
    for arr in (state, image):  # no copy: both view the one received message
        assert not arr.flags.writeable and isinstance(arr.base, bytes) and arr.base is state.base
    assert len(state.base) == len(pack(obs))


def test_a_policy_writing_into_the_observation_gets_an_error_frame():
    with PolicyServer(Recording(mutate=True), port=0) as server:
        _, reply, code = raw_exchange(server.port, pack({"observation/state": np.ones(17, np.float32)}))
        assert "read-only" in reply and code == 1011
        _, reply, code = raw_exchange(server.port, pack({"observation/state": np.ones(17, np.float32)}))
        assert "read-only" in reply  # still serving


def test_every_request_is_in_the_log_once_the_server_stops(policy, tmp_path):
    log = InferenceLog(tmp_path, checkpoint="c")
    log.flush_interval_s = 3600.0  # only the server's stop may write the request lines
    with PolicyServer(policy, port=0, inference_log=log) as server:
        for _ in range(2):
            with PolicyClient("127.0.0.1", server.port) as client:
                for _ in range(25):
                    client.infer(obs_for(policy))
    lines = read_log(log.path)  # no log.close(): stopping the server wrote everything
    reqs = [ln for ln in lines if ln["event"] == "request"]
    assert sorted((r["conn"], r["seq"]) for r in reqs) == [(c, s) for c in (1, 2) for s in range(1, 26)]
    assert all(r["status"] == "ok" and r["action_shape"] == [10, 14] for r in reqs)
    start, stop = lines[0], lines[-1]
    assert start["event"] == "start" and start["heap_kept"] is None  # in-process: allocator left alone
    assert stop["event"] == "stop" and stop["dropped_request_lines"] == 0
    log.close()
