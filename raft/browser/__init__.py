"""The browser side of WRaft: the only part of raft/ that touches pyscript/js.

The runtimes it starts (member Driver, ClientDriver, ClientHub, the contract)
are host-neutral and live in raft/runtime/, which the CPython replica
(raft/replica/) runs too; this package wires them to the page.

Modules (raft/browser/APP.md for page authors, TRANSPORT.md for the transport):
  app           start(): reads the page, starts a member or a client, the App handle
  page_config   what <raft-node> and the URL ask for (resolve() is pure)
  status_html   the status panel's content (pure)
  status_panel  <raft-status>: throttled redraws and the membership controls
  automation    window.wraft, for tests, tools and the console
  transport     WebRTC data channels and the introducer
  storage       localStorage as the record log's key/value store
  ffi           helpers at the JS boundary
"Pure" modules import neither js nor pyscript and are tested in CPython.
"""
