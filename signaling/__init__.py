"""WRaft host and introducer: serves the pages and the offline PyScript runtime,
and relays WebRTC signals between the named nodes of a cluster over /ws.

Knows nothing of Raft. The wire protocol is in PROTOCOL.md.
"""

from .app import make_app

__all__ = ["make_app"]
