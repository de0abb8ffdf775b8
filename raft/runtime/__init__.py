"""The runtime around a raft.Node or a client session, for any host: the
browser (raft/browser/ wires in localStorage, WebRTC and the page) and the
CPython replica (raft/replica/ wires in SQLite and aiortc) run it unchanged.
Pure asyncio: it imports neither js nor pyscript, nor anything of the hosts;
the clock, storage and transport are passed in.

Modules:
  contract       what both runtimes offer the app (propose, read, status, ...),
                 errors, retries and deadlines, the guarded state machine
  driver         the member runtime: runs a raft.Node with its record log
  client_driver  the client runtime: a raft.client.ClientSession on one member
  client_hub     a member's side of the client windows it serves
  timings        the driver's instrumentation hook (benchmarks)
  names          the cluster names and node ids every host accepts
"""
