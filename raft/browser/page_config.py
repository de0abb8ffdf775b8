"""What a page asks for: its <raft-node> attributes and its URL, as one config dict.

    <raft-node size="3" introducer="/ws" ice-servers='[]' cluster="notes"
               snapshot-entries="2000" snapshot-bytes="262144" role="client"
               ice-transport-policy="relay">

Every attribute is optional (raft/browser/APP.md): size (voters the cluster
starts with, 1..7, default 3; ?size=N overrides it), introducer (WebSocket
URL, default /ws), ice-servers (JSON list of RTCIceServer dicts; absent = the
introducer's list), cluster (name), log compaction thresholds, role="client",
ice-transport-policy ("relay": TURN relay candidates only, to check a TURN
set-up; ?ice-transport-policy=relay does the same for one window).
runtime ("py": Pyodide instead of MicroPython) is read by pages/loader.js
before any Python runs, not here.
The node id comes from the host name (wraftN.<domain> is node N) or from
?node=N (0..63; ids from size on start outside the cluster until a member
adds them); the cluster name from ?cluster=NAME, else the attribute, else the
page's path (/counter -> "counter"); ?client=1 runs the page as a client
window (raft/CLIENT.md), ?via=N prefers member N. The URL hash is the app's.

resolve() is pure (tested in CPython) and raises PageConfigError with a
message fit for the page; page_attrs() and page_query() read the DOM.
"""

import json

# the names every host accepts (raft/runtime/names.py); components read them here
from raft.runtime.names import MAX_NODE_ID, MAX_SIZE, NAME_CHARS, valid_name  # noqa: F401

DEFAULT_SIZE = 3
# Log compaction defaults: keeps localStorage to a snapshot + a few hundred
# KiB of log, far under the ~5 MiB per-origin quota.
DEFAULT_SNAPSHOT_ENTRIES = 2000
DEFAULT_SNAPSHOT_BYTES = 256 * 1024

ATTRS = ("size", "introducer", "ice-servers", "cluster", "snapshot-entries", "snapshot-bytes",
         "role", "ice-transport-policy")
# Never a secret: a query travels in request lines, Referers and logs (the
# access secret and the cluster key come in the fragment, raft/browser/transport.py).
QUERY = ("node", "cluster", "size", "client", "via", "ice-transport-policy")


class PageConfigError(ValueError):
    """The page's markup or URL does not describe a valid node."""


def cluster_from_path(path):
    """'/counter' -> 'counter', '/' -> 'index', '/a/b.html' -> 'a.b'."""
    parts = [p for p in path.split("/") if p]
    name = ".".join(parts) if parts else "index"
    if name.endswith(".html"):
        name = name[:-5]
    name = "".join(c if c in NAME_CHARS else "_" for c in name)[:64]
    return name or "index"


def node_from_host(host):
    """'wraft2.localhost' (or 'wraft2.example.org:8080') -> '2', else None."""
    label = host.split(".")[0]
    if label.startswith("wraft") and label[5:].isdigit():
        return str(int(label[5:]))
    return None


def client_requested(attrs, query):
    """True when the page should run as a client: ?client=1 or role="client"."""
    flag = query.get("client")
    if flag is not None:
        return flag not in ("", "0", "false", "no")
    return attrs.get("role") == "client"


def resolve(attrs, host, path, query):
    """The config of a member ("client": False) or a client window
    ("client": True) from markup (attrs), location and ?query."""
    cluster = query.get("cluster") or attrs.get("cluster") or cluster_from_path(path)
    if not valid_name(cluster):
        raise PageConfigError("cluster name %r: use 1-64 of A-Z a-z 0-9 _ . -" % cluster)
    cfg = {"cluster": cluster, "ice_servers": _ice_servers(attrs),
           "introducer": attrs.get("introducer") or "/ws",
           "ice_transport_policy": _ice_transport_policy(attrs, query)}
    if client_requested(attrs, query):
        via = query.get("via") or None
        if via is not None and not (via.isdigit() and len(via) <= 3):
            raise PageConfigError("?via=%r: need a member's node number" % via)
        cfg.update(client=True, via=str(int(via)) if via else None)
        return cfg
    # ?size= (for experiments and tests) wins over the markup; every window
    # of a cluster must start from the same size: it is the bootstrap
    # configuration, used until the log holds a membership change.
    size_text = query.get("size") or attrs.get("size") or str(DEFAULT_SIZE)
    if not size_text.isdigit() or not 1 <= int(size_text) <= MAX_SIZE:
        raise PageConfigError("<raft-node size=%r>: need a cluster size 1..%d" % (size_text, MAX_SIZE))
    size = int(size_text)
    node = query.get("node") or node_from_host(host)
    if node is None:
        raise PageConfigError("no node id: open this page as wraftN.<host> or add ?node=N")
    if not node.isdigit() or int(node) > MAX_NODE_ID:
        raise PageConfigError("node id %r: must be a number 0..%d" % (node, MAX_NODE_ID))
    # Ids 0..size-1 are the bootstrap voters; any other id is a window that
    # is not a member yet: it connects and follows once a member adds it.
    cfg.update(client=False, size=size, node=str(int(node)),
               voters=[str(i) for i in range(size)],
               snapshot_entries=_threshold(attrs, "snapshot-entries", DEFAULT_SNAPSHOT_ENTRIES),
               snapshot_bytes=_threshold(attrs, "snapshot-bytes", DEFAULT_SNAPSHOT_BYTES))
    return cfg


def _ice_servers(attrs):
    """<raft-node ice-servers='[...]'>: a list of RTCIceServer dicts, or None
    (absent: the introducer's list)."""
    ice = attrs.get("ice-servers")
    if ice is not None:
        try:
            ice = json.loads(ice)
        except ValueError:
            raise PageConfigError("<raft-node ice-servers>: not JSON")
        if not isinstance(ice, list) or not all(isinstance(s, dict) for s in ice):
            raise PageConfigError("<raft-node ice-servers>: need a JSON list of objects")
    return ice


def _ice_transport_policy(attrs, query):
    """?ice-transport-policy=relay (or the attribute): gather TURN relay
    candidates only, for diagnosis; default "all"."""
    policy = query.get("ice-transport-policy") or attrs.get("ice-transport-policy") or "all"
    if policy not in ("all", "relay"):
        raise PageConfigError("ice-transport-policy %r: use all or relay" % policy)
    return policy


def _threshold(attrs, name, default):
    """Log compaction: snapshot once that many applied entries (or bytes of
    them) sit in the log; "0" turns one off."""
    text = attrs.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) > 1 << 30:
        raise PageConfigError("<raft-node %s=%r>: need a whole number (0 = off)" % (name, text))
    return int(text)


def ws_url(introducer, location):
    """Absolute ws(s):// URL for the introducer attribute."""
    if introducer.startswith("ws://") or introducer.startswith("wss://"):
        return introducer
    scheme = "wss:" if location.protocol == "https:" else "ws:"
    if introducer.startswith("//"):
        return scheme + introducer
    if not introducer.startswith("/"):
        introducer = "/" + introducer
    return scheme + "//" + location.host + introducer


def page_attrs(document):
    """The <raft-node> attributes the page sets."""
    el = document.querySelector("raft-node")
    attrs = {}
    if el:  # JS null: None on MicroPython, jsnull (falsy) on Pyodide
        for name in ATTRS:
            if el.hasAttribute(name):
                attrs[name] = str(el.getAttribute(name))
    return attrs


def page_query(location):
    """The ?query parameters of QUERY that the URL has."""
    from js import URLSearchParams
    params = URLSearchParams.new(location.search)
    out = {}
    for name in QUERY:
        v = params.get(name)
        if isinstance(v, str):
            out[name] = v
    return out
