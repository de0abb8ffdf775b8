"""The browser side of WRaft: the only part of raft/ that touches pyscript/js.

Modules (raft/browser/APP.md for page authors, TRANSPORT.md for the transport):
  app           start(): reads the page, starts a member or a client, the App handle
  page_config   what <raft-node> and the URL ask for (pure)
  runtime       the contract both runtimes implement, errors, retry and deadlines (pure)
  driver        the member runtime: runs a raft.Node with storage (pure)
  client_driver the client runtime: a raft.client.ClientSession on one member (pure)
  client_hub    a member's side of the client windows it serves (pure)
  status_html   the status panel's content (pure)
  status_panel  <raft-status>: throttled redraws and the membership controls
  automation    window.wraft, for tests, tools and the console
  timings       the driver's instrumentation hook (benchmarks)
  transport     WebRTC data channels and the introducer
  storage       localStorage as the record log's key/value store
  ffi           helpers at the JS boundary
"Pure" modules import neither js nor pyscript and are tested in CPython.
"""
