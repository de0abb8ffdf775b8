"""The server access secret (`--secret`, `--secret-file`) and the join proof.

The secret is high-entropy and server-made (at least 128 bits), so a proof
sniffed off a plain-http LAN gives nothing to guess offline; every proof is
bound to a nonce the server sent on that socket, so it cannot be replayed.
Pages get the secret from the URL fragment (`#access=...`), which browsers
never send to a server.
"""

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

SECRET_BYTES = 24  # 192 bits: 32 base64url characters
MIN_SECRET_CHARS = 22  # 22 base64url characters carry 132 bits
SECRET_RE = re.compile(r"[A-Za-z0-9_-]{%d,128}" % MIN_SECRET_CHARS)
NONCE_BYTES = 16
_HEX64 = re.compile(r"[0-9a-f]{64}")


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def load_secret_file(path: Path) -> str:
    """The secret stored in `path`; a missing file is created (mode 0600) with
    a fresh one, so the links printed at start keep working after a restart.
    Raises ValueError for a secret that is not high-entropy base64url."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
    else:
        text = new_secret()
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
    if not SECRET_RE.fullmatch(text):
        raise ValueError(f"{path}: the secret must be {MIN_SECRET_CHARS}-128 characters of "
                         "[A-Za-z0-9_-] (delete the file to have a random one made)")
    return text


def join_proof(secret: str, nonce: str, cluster: str, node: str, kind: str) -> str:
    """hex(HMAC-SHA256(secret, "wraft-join-v2\\n" nonce "\\n" cluster "\\n" node "\\n" kind))."""
    msg = f"wraft-join-v2\n{nonce}\n{cluster}\n{node}\n{kind}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def proof_is_valid(secret: str, nonce: str, cluster: str, node: str, kind: str, proof) -> bool:
    if not isinstance(proof, str) or not _HEX64.fullmatch(proof):
        return False
    return hmac.compare_digest(proof, join_proof(secret, nonce, cluster, node, kind))
