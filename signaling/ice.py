"""Parse `--ice-server` URLs into RTCIceServer dicts for the pages."""

from urllib.parse import unquote

ICE_SCHEMES = ("stun", "stuns", "turn", "turns")


def parse_ice_server(text: str, bare_turn: bool = False) -> dict:
    """`stun:host:3478` -> {"urls": ...};
    `turn:user:pass@host:3478[?transport=tcp]` -> {"urls", "username", "credential"};
    with `bare_turn` (the server mints credentials, --turn-secret) also
    `turn:host:3478` -> {"urls": ...}.

    The password is what follows the last ':' of the user part, so TURN REST
    usernames such as `1700000000:alice` work; percent-escapes are decoded.
    """
    scheme, sep, rest = text.partition(":")
    if not sep or scheme.lower() not in ICE_SCHEMES or not rest or rest.startswith("//"):
        raise ValueError(
            f"bad ICE server {text!r}: expected stun:HOST[:PORT] or "
            "turn:USER:PASS@HOST[:PORT] (also stuns:, turns:)"
        )
    scheme = scheme.lower()
    userinfo, at, hostpart = rest.rpartition("@")
    if not hostpart or any(c.isspace() for c in hostpart):
        raise ValueError(f"bad ICE server {text!r}: missing or malformed host")
    server = {"urls": f"{scheme}:{hostpart}"}
    if at:
        user, colon, password = userinfo.rpartition(":")
        if not colon or not user:
            raise ValueError(f"bad ICE server {text!r}: credentials must be USER:PASS@")
        server["username"] = unquote(user)
        server["credential"] = unquote(password)
    elif scheme.startswith("turn") and not bare_turn:
        raise ValueError(f"bad ICE server {text!r}: TURN needs USER:PASS@ (or --turn-secret)")
    return server
