"""Network rules the policy server and the lake web service share: what counts as loopback (off
loopback both require an API key) and the key's authorization scheme."""

from __future__ import annotations

import ipaddress

#: ``Authorization: Api-Key <key>``: the scheme of openpi's websocket client, which both services accept.
API_KEY_SCHEME = "Api-Key"


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1); False for ``None``,
    an empty string, any other name or address."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
