"""The loopback rule shared by the policy server and the lake web service."""

from hvla_platform.lib.core.net import is_loopback


def test_loopback_names_and_addresses():
    assert all(is_loopback(h) for h in ("localhost", "127.0.0.1", "127.8.9.10", "::1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.5", "::", "example.com", "", None))
