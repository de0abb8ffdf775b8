"""The cluster key's rules (raft/browser/TRANSPORT.md, Threat model): what
a keyed cluster's peers prove to each other so that the introducer, which
relays their signals, can neither join, read nor sit in the middle.

- Every signal between two peers is sealed: an HMAC-SHA256 with the key
  over the cluster, both node ids and the signal's JSON text, so nobody
  without the key can make one, and a sealed signal cannot be re-aimed at
  another node or passed off as another sender's.
- Every data channel starts with a proof from each end, before any Raft
  message: an HMAC over the DTLS fingerprints of both SDPs (the offer's and
  the answer's), both node ids and both sides' fresh nonces (sent in the
  sealed offer and answer). An end whose view of the SDPs differs (someone
  rewrote a fingerprint to put their own DTLS in between) computes another
  proof, and the channel is closed before anything flows.

- Members and clients hold different keys. From the cluster key K come a
  member key, HMAC(K, "wraft member"), and a client key, "client-" +
  HMAC(K, "wraft client") (base64url). Two member ids seal and prove with the
  member key; any pair with a client id with the client key. A member link
  carries K; a client link may carry only the client key, whose holder can
  never seal or prove as a member id (it cannot compute the member key).

Pure: hashlib and hmac only (frozen into PyScript's MicroPython with
CPython's digests; Pyodide's stdlib), so plain-http pages, which have no
WebCrypto, prove the same as the replica does.
"""

import hashlib
import hmac
import json

KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MIN_KEY_CHARS = 22  # base64url of 16 random bytes: 128 bits
MAX_KEY_CHARS = 128
NONCE_HEX = 32  # 128-bit nonces, as hex
CLIENT_PREFIX = "client-"  # a client key: CLIENT_PREFIX + base64url(HMAC(K, "wraft client"))
PROOF_PREFIX = "wraft-proof:"  # the first message on a keyed channel, each way


def check_key(text):
    """A cluster key as given (a link's #key=..., --key-file): 22-128
    base64url characters. Raises ValueError saying what is wrong (never
    repeating the key)."""
    if not isinstance(text, str):
        raise ValueError("a cluster key is text")
    if not MIN_KEY_CHARS <= len(text) <= MAX_KEY_CHARS:
        raise ValueError("a cluster key has %d to %d characters, this one %d"
                         % (MIN_KEY_CHARS, MAX_KEY_CHARS, len(text)))
    for c in text:
        if c not in KEY_CHARS:
            raise ValueError("a cluster key uses only A-Z a-z 0-9 - _")
    return text


def new_key(random_bytes):
    """A fresh key: 16 random bytes (random_bytes(n) -> bytes, e.g. from
    crypto.getRandomValues) as 22 base64url characters."""
    return b64url(random_bytes(16))


def b64url(data):
    """Bytes as base64url without padding (MicroPython has no base64.urlsafe_*)."""
    out = []
    bits = 0
    acc = 0
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 6:
            bits -= 6
            out.append(KEY_CHARS[(acc >> bits) & 63])
    if bits:
        out.append(KEY_CHARS[(acc << (6 - bits)) & 63])
    return "".join(out)


def is_client_key(key):
    return key.startswith(CLIENT_PREFIX)


def client_key(key):
    """The client key of cluster key `key` (a client key is its own)."""
    if is_client_key(key):
        return key
    return CLIENT_PREFIX + b64url(hmac.new(key.encode(), b"wraft client", hashlib.sha256).digest())


def member_key(key):
    """The member key of cluster key `key`; None from a client key (which
    cannot make it)."""
    if is_client_key(key):
        return None
    return b64url(hmac.new(key.encode(), b"wraft member", hashlib.sha256).digest())


def pair_key(key, a_is_client, b_is_client):
    """The key two ids seal and prove with: the member key between two
    member ids, else the client key; None when `key` cannot make it."""
    if a_is_client or b_is_client:
        return client_key(key)
    return member_key(key)


def _mac(key, parts):
    msg = "\n".join(parts).encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def same_text(a, b):
    """Constant-time equality of two str (MicroPython's hmac has no compare_digest)."""
    if not isinstance(a, str) or not isinstance(b, str) or len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= ord(x) ^ ord(y)
    return diff == 0


def seal_signal(key, cluster, sender, to, data):
    """The signal `data` (a dict) as relayed in a keyed cluster: {"k": text, "m": mac}."""
    text = json.dumps(data, separators=(",", ":"))
    return {"k": text, "m": _mac(key, ("wraft-signal-v1", cluster, sender, to, text))}


def open_signal(key, cluster, sender, to, sealed):
    """The dict sealed in `sealed`, or None when it is not sealed with `key`
    for this sender and receiver (forged, re-aimed, or another key's)."""
    if not isinstance(sealed, dict):
        return None
    text, mac = sealed.get("k"), sealed.get("m")
    if not isinstance(text, str) or not isinstance(mac, str):
        return None
    if not same_text(mac, _mac(key, ("wraft-signal-v1", cluster, sender, to, text))):
        return None
    try:
        data = json.loads(text)
    except Exception:
        return None
    return data if isinstance(data, dict) else None


def is_sealed(data):
    return isinstance(data, dict) and "k" in data and "m" in data


def sdp_fingerprints(sdp):
    """The DTLS certificate fingerprints an SDP announces, normalized
    ("sha-256 AB:CD:..." lines, lower-case algorithm, upper-case hex,
    sorted, joined by ","); "" when it has none."""
    if not isinstance(sdp, str):
        return ""
    found = []
    for line in sdp.split("\n"):
        line = line.strip()
        if line.startswith("a=fingerprint:"):
            parts = line[len("a=fingerprint:"):].split()
            if len(parts) == 2:
                found.append(parts[0].lower() + " " + parts[1].upper())
    found = sorted(set(found))
    return ",".join(found)


def channel_proof(key, cluster, prover, offerer, answerer, offer_sdp, answer_sdp,
                  offer_nonce, answer_nonce):
    """The proof `prover` (the offerer or the answerer) sends first on a
    keyed channel: both ids, both SDPs' fingerprints, both nonces, and who
    proves (so a proof cannot be reflected back)."""
    return _mac(key, ("wraft-channel-v1", cluster, prover, offerer, answerer,
                      sdp_fingerprints(offer_sdp), sdp_fingerprints(answer_sdp),
                      offer_nonce, answer_nonce))


def valid_nonce(n):
    if not isinstance(n, str) or len(n) != NONCE_HEX:
        return False
    for c in n:
        if c not in "0123456789abcdef":
            return False
    return True
