"""The browser side of WRaft: the only part of raft/ that touches pyscript/js.

CPython tests never import this package (it needs the browser's `js` module).
Modules: transport (WebRTC data channels + introducer), ffi (JS boundary
helpers); storage, driver and the app modules are H4's.
"""
