"""Join authentication: HMAC-SHA256 over cluster, node and a unix timestamp."""

import hashlib
import hmac
import re

MAX_CLOCK_SKEW_S = 120
_HEX64 = re.compile(r"[0-9a-f]{64}")


def join_mac(secret: str, cluster: str, node: str, ts: int) -> str:
    """The mac a client must send: hex(HMAC-SHA256(secret, "C\\nN\\nT"))."""
    msg = f"{cluster}\n{node}\n{ts}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def check_join_auth(secret: str, cluster: str, node: str, auth, now: float) -> str | None:
    """Return None when `auth` proves knowledge of `secret`, else the error code."""
    if auth is None:
        return "auth_required"
    if not isinstance(auth, dict):
        return "auth_failed"
    ts, mac = auth.get("ts"), auth.get("mac")
    # bool is an int subclass; a timestamp of True is not a timestamp.
    if type(ts) is not int or not isinstance(mac, str):
        return "auth_failed"
    if abs(now - ts) > MAX_CLOCK_SKEW_S:
        return "auth_failed"
    mac = mac.lower()
    if not _HEX64.fullmatch(mac):
        return "auth_failed"
    if not hmac.compare_digest(mac, join_mac(secret, cluster, node, ts)):
        return "auth_failed"
    return None
