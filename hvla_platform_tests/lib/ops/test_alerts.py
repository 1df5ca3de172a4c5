"""Alert delivery: the lake record stands whatever happens to the hook points."""

import socket

import pytest

from hvla_platform.lib.ops.alerts import deliver_alert, load_hook
from hvla_platform.lib.core.lake import LocalLake

ALERT = {"run_id": "0123456789abcdef", "job": "release_job", "partition": "g1-reach-v1-20261112",
         "error": "lerobot_dataset: release selects no usable episode", "failed_at": "2026-11-12T03:10:00+00:00"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_broken_hook_points_are_reported_and_the_record_kept(tmp_path):
    lake = LocalLake(tmp_path / "lake")
    d = deliver_alert(lake, ALERT, hook="json:no_such_function", webhook_url=f"http://127.0.0.1:{_closed_port()}/x")
    assert d.new and d.record_key == "alerts/2026-11-12/0123456789abcdef.json"
    assert lake.read_json(d.record_key)["error"] == ALERT["error"]
    assert len(d.errors) == 2
    assert "json has no callable 'no_such_function'" in d.errors[0]
    assert d.errors[1].startswith("webhook http://127.0.0.1:") and "URLError" in d.errors[1]


def test_no_hook_points_configured_means_only_the_record(tmp_path, monkeypatch):
    monkeypatch.delenv("HVLA_ALERT_HOOK", raising=False)
    monkeypatch.delenv("HVLA_ALERT_WEBHOOK_URL", raising=False)
    lake = LocalLake(tmp_path / "lake")
    d = deliver_alert(lake, ALERT)
    assert d.delivered_to == [lake.uri(d.record_key)] and d.errors == []
    assert not deliver_alert(lake, ALERT).new  # the same failure is delivered once


@pytest.mark.parametrize("spec, msg", [("nocolon", "expected '<module>:<function>'"), ("json:", "expected")])
def test_malformed_hook_spec_says_what_is_expected(spec, msg):
    with pytest.raises(ValueError, match=msg):
        load_hook(spec)
