"""WRaft for Python: the `wraft` command (wraft/cli.py) and the pytest plugin
for app authors (wraft/testing.py). The consensus core, the browser runtime
and the server are the raft, components and signaling packages."""

__version__ = "0.1.0"
