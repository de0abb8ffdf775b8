"""What the replica and the client show on the terminal (stderr).

On a terminal one line is redrawn in place; otherwise (systemd's journal, a
pipe) a line is written when something a reader cares about changes (role,
term, leader, membership, peers, an error), and at most every
QUIET_EVERY_S while only the commit index moves.
"""

import sys
import time

REDRAW_EVERY_S = 0.25
QUIET_EVERY_S = 10.0


def status_line(info):
    """One line from Driver.status() (plus "cluster", "introducer_up",
    "state_note" when present)."""
    parts = ["node %s" % info.get("node")]
    if info.get("cluster"):
        parts.append("cluster %s" % info["cluster"])
    membership = info.get("membership")
    if membership and membership != "voter":
        parts.append("not a member" if membership == "none" else membership)
    parts.append(info.get("role") or "?")
    if info.get("role") != "client":
        parts.append("term %s" % info.get("term"))
    parts.append("leader %s" % (info.get("leader") if info.get("leader") is not None else "none"))
    parts.append("commit %s" % info.get("commit"))
    if info.get("applied") != info.get("commit"):
        parts.append("applied %s" % info.get("applied"))
    peers = info.get("peers") or []
    parts.append("peers %s" % (",".join(peers) if peers else "none"))
    if "introducer_up" in info:
        parts.append("introducer %s" % ("up" if info["introducer_up"] else "down"))
    if info.get("state_note"):
        parts.append(info["state_note"])
    if info.get("error"):
        parts.append("HALTED: %s" % info["error"])
    return " | ".join(parts)


def _shape(info):
    """What makes a new line worth writing when not on a terminal."""
    return (info.get("role"), info.get("term"), info.get("leader"), info.get("membership"),
            tuple(info.get("peers") or ()), info.get("introducer_up"), info.get("error"))


class StatusPrinter:
    def __init__(self, stream=None, clock=time.monotonic):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.clock = clock
        self._last_line = None
        self._last_shape = None
        self._last_at = -1e9

    def show(self, info, force=False):
        line = status_line(info)
        now = self.clock()
        if line == self._last_line and not force:
            return
        if self.tty:
            if force or now - self._last_at >= REDRAW_EVERY_S:
                self.stream.write("\r\x1b[2K" + line)
                self.stream.flush()
                self._last_line, self._last_at = line, now
            return
        shape = _shape(info)
        if force or shape != self._last_shape or now - self._last_at >= QUIET_EVERY_S:
            self.stream.write(line + "\n")
            self.stream.flush()
            self._last_line, self._last_shape, self._last_at = line, shape, now

    def say(self, text):
        """A message of its own line (events, errors)."""
        if self.tty and self._last_line is not None:
            self.stream.write("\r\x1b[2K")
        self.stream.write(text + "\n")
        if self.tty and self._last_line is not None:
            self.stream.write(self._last_line)
        self.stream.flush()

    def done(self):
        if self.tty and self._last_line is not None:
            self.stream.write("\n")
            self.stream.flush()
