"""Short-lived TURN credentials (coturn `use-auth-secret`, the TURN REST scheme):
username = "<expiry unix time>:<name>", password = base64(HMAC-SHA1(secret, username)).
coturn checks them with the same `static-auth-secret`; nothing long-term is served."""

import base64
import hashlib
import hmac

DEFAULT_TTL_S = 3600


def turn_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class TurnMinter:
    """Mints RTCIceServer entries with fresh credentials for the TURN `urls`."""

    def __init__(self, secret: str, urls: list[str], ttl: float = DEFAULT_TTL_S):
        if not secret:
            raise ValueError("TURN secret is empty")
        if not urls:
            raise ValueError("--turn-secret needs at least one turn: or turns: --ice-server")
        self.secret = secret
        self.urls = list(urls)
        self.ttl = ttl

    def servers(self, name: str, now: float) -> list[dict]:
        username = f"{int(now + self.ttl)}:{name}"
        credential = turn_credential(self.secret, username)
        return [{"urls": url, "username": username, "credential": credential} for url in self.urls]
