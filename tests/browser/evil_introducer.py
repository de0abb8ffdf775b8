"""A malicious introducer, for the tests: the real server (same options as
`wraft serve`), except that every relayed signal has the DTLS
fingerprints in it rewritten, as an introducer that wanted to sit in the
middle of the data channels would (it would put its own certificate's).
Whether the SDP travels in the clear (open cluster) or sealed with the
cluster key (its JSON text inside {"k": ..., "m": ...}), the fingerprint
line is found and changed; the seal then no longer verifies.

    python tests/browser/evil_introducer.py --port N ...   (from the repo root)

Prints "evil: rewrote N fingerprints" as it goes.
"""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from signaling import introducer  # noqa: E402
from wraft import cli  # noqa: E402

FINGERPRINT = re.compile(r"(a=fingerprint:\S+ )([0-9A-Fa-f:]+)")
rewritten = 0


def flip(match):
    """The same fingerprint with its last hex digit changed."""
    value = match.group(2)
    last = value[-1].upper()
    return match.group(1) + value[:-1] + ("0" if last != "0" else "1")


def rewrite(data):
    global rewritten
    text, n = FINGERPRINT.subn(flip, json.dumps(data))
    if n:
        rewritten += n
        print("evil: rewrote %d fingerprints" % rewritten, flush=True)
    return json.loads(text)


honest_relay = introducer.Introducer.relay_signal


def evil_relay(self, sock, frame):
    if "data" in frame:
        frame = dict(frame, data=rewrite(frame["data"]))
    return honest_relay(self, sock, frame)


introducer.Introducer.relay_signal = evil_relay

if __name__ == "__main__":
    sys.exit(cli.serve(sys.argv[1:]))
