"""The CPython host of the unchanged Raft core: a durable replica and a
command-line client that join a cluster of browser windows over the same
introducer and the same WebRTC data channels (aiortc).

CPython only (asyncio, sqlite3, aiortc): never loaded into the browser, so
pyscript.toml does not list this package.

Modules:
  storage    SQLite file holding the node's records (raft/records.py format)
  transport  the peer transport of raft/browser/transport.py over aiortc
  host       the replica process: raft/runtime's Driver on asyncio + SQLite,
             the app's state class or an opaque one, stdin commands
  status     the one-line terminal status
  client     the command-line client (python -m raft.replica.client)
  __main__   python -m raft.replica
"""
