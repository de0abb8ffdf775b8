"""The landing page (/): pick a cluster, get the three window links of each app.

Window i of a cluster is its own origin (so its own localStorage):
- on localhost or real subdomains: http://wraft<i>.<domain>:<port>/<app>
  (the landing page may itself be on wraftN.<domain> or on <domain>);
- on a LAN address (`python -m signaling --lan`): three consecutive ports,
  http://<ip>:<port + i>/<app>?node=i.
A new cluster is keyed (raft/cluster_key.py): its links carry a fresh
random key in their fragment (#key=..., never sent to a server), which each
window keeps in its origin's storage. A cluster joined by name without a
key, or the default one, is open: anyone who reaches the server can join.
The pure functions here are tested in CPython; LandingView runs in the page.
"""

from html import escape

from raft.browser.page_config import NAME_CHARS, node_from_host, valid_name
from raft.cluster_key import check_key, client_key, new_key

APPS = [  # (path, title, what it shows)
    ("/todo", "TodoMVC", "a to-do list kept in step across the windows"),
    ("/kv", "Key/value store", "etcd-like put / get / delete / compare-and-set, with watches"),
    ("/counter", "Counter", "the smallest app: one shared number"),
    ("/bench", "Benchmark", "how many writes per second the cluster commits"),
]
WINDOWS = 3
NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_cluster_name(rand, length=8):
    """A fresh random cluster name, e.g. 'c-k3x9q0ab'. rand() -> float in [0, 1)."""
    return "c-" + "".join(NAME_ALPHABET[int(rand() * len(NAME_ALPHABET)) % len(NAME_ALPHABET)]
                          for _ in range(length))


def check_cluster_name(name):
    """None if `name` is a usable cluster name, else the reason."""
    if not name:
        return "enter a cluster name"
    if not valid_name(name):
        bad = sorted(set(c for c in name if c not in NAME_CHARS))
        if len(name) > 64:
            return "a cluster name has at most 64 characters"
        return "a cluster name uses only A-Z a-z 0-9 _ . - (not %s)" % " ".join(repr(c) for c in bad)
    return None


def is_ip_address(hostname):
    if hostname.startswith("["):  # IPv6 literal
        return True
    parts = hostname.split(".")
    return len(parts) == 4 and all(p.isdigit() for p in parts)


def split_host(host, protocol="http:"):
    """'wraft1.localhost:8000' -> ('wraft1.localhost', 8000)."""
    default = 443 if protocol == "https:" else 80
    if host.startswith("["):  # [::1]:8000
        end = host.find("]")
        rest = host[end + 1:]
        return host[:end + 1], int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default
    if ":" in host:
        name, port = host.rsplit(":", 1)
        return name, int(port) if port.isdigit() else default
    return host, default


def window_urls(protocol, host, path, cluster=None, current_node=None, windows=WINDOWS,
                key=None):
    """The URL of each window 0..windows-1 of app `path`, on the same port
    scheme as the page at protocol//host; a keyed cluster's key goes in the
    fragment."""
    urls = _window_urls(protocol, host, path, cluster, current_node, windows)
    return [u + "#key=" + key for u in urls] if key else urls


def _window_urls(protocol, host, path, cluster, current_node, windows):
    hostname, port = split_host(host, protocol)
    default = 443 if protocol == "https:" else 80
    urls = []
    if is_ip_address(hostname):
        # --lan: window i is on port base + i; the landing page is on window current_node
        node = int(current_node) if current_node is not None and str(current_node).isdigit() else 0
        base = port - node
        for i in range(windows):
            p = base + i
            query = ["node=%d" % i]
            if cluster:
                query.append("cluster=" + cluster)
            urls.append("%s//%s%s%s?%s" % (protocol, hostname, "" if p == default else ":%d" % p,
                                           path, "&".join(query)))
        return urls
    domain = hostname
    if node_from_host(hostname) is not None and "." in hostname:
        domain = hostname.split(".", 1)[1]
    port_text = "" if port == default else ":%d" % port
    for i in range(windows):
        urls.append("%s//wraft%d.%s%s%s%s" % (protocol, i, domain, port_text, path,
                                              "?cluster=" + cluster if cluster else ""))
    return urls


def client_url(protocol, host, path, cluster=None, current_node=None, key=None):
    """A client window of app `path` (raft/CLIENT.md) on window 0's origin: it
    reads and writes through a member but never votes; in a keyed cluster
    its link carries only the client key, which cannot act as a member."""
    url = window_urls(protocol, host, path, cluster, current_node)[0]
    url += ("&" if "?" in url else "?") + "client=1"
    return url + ("#key=" + client_key(key) if key else "")


def render_apps_html(protocol, host, cluster=None, current_node=None, key=None):
    rows = []
    for path, title, about in APPS:
        links = []
        for i, url in enumerate(window_urls(protocol, host, path, cluster, current_node,
                                            key=key)):
            links.append('<a href="%s" data-node="%d" target="_blank" rel="noopener">window %d</a>'
                         % (escape(url), i, i))
        links.append('<a href="%s" data-client target="_blank" rel="noopener">client</a>'
                     % escape(client_url(protocol, host, path, cluster, current_node, key)))
        rows.append('<tr data-app="%s"><th>%s</th><td>%s</td><td class="links">%s</td></tr>'
                    % (path[1:], escape(title), escape(about), " ".join(links)))
    return "".join(rows)


def keyed_text(keyed):
    if keyed:
        return ("keyed: its links carry a random key in their #fragment, which never "
                "reaches a server; only windows opened from them can join")
    return "open: no key, anyone who reaches this server can join it (fine on localhost)"


class LandingView:
    """Wires pages/index.html: new cluster, join by name, and the link table."""

    def __init__(self):
        from js import URLSearchParams, window
        from pyscript import document, when
        self.window = window
        self.document = document
        params = URLSearchParams.new(window.location.search)
        self.current_node = self._param(params, "node")
        asked = self._param(params, "cluster")
        self.cluster = asked if asked and check_cluster_name(asked) is None else None
        self.key = self._fragment_key() if self.cluster else None
        # when() needs plain functions (MicroPython cannot inspect bound methods)
        when("click", "#new-cluster")(lambda event: self.on_new_cluster(event))
        when("submit", "#join-form")(lambda event: self.on_join(event))
        when("click", "#no-cluster")(lambda event: self.on_no_cluster(event))
        if asked and self.cluster is None:
            self.say_error("?cluster=: " + check_cluster_name(asked))
        self.render()

    def _fragment_key(self):
        """The key of a shared landing link (/?cluster=NAME#key=...), if well formed."""
        from js import URLSearchParams
        key = URLSearchParams.new(str(self.window.location.hash)[1:]).get("key")
        if not isinstance(key, str):
            return None
        try:
            return check_key(key)
        except ValueError as e:
            self.say_error("#key=: %s" % e)
            return None

    @staticmethod
    def _param(params, name):
        v = params.get(name)
        return v if isinstance(v, str) else None

    def on_new_cluster(self, event):
        from js import Math, Uint8Array, crypto

        def random_bytes(n):  # getRandomValues works on plain-http pages too
            arr = crypto.getRandomValues(Uint8Array.new(n))
            return bytes([int(arr[i]) for i in range(n)])
        self.choose(new_cluster_name(lambda: float(Math.random())), new_key(random_bytes))

    def on_join(self, event):
        event.preventDefault()
        name = str(self.document.getElementById("cluster-name").value).strip()
        problem = check_cluster_name(name)
        if problem:
            self.say_error(problem)
            return
        self.choose(name)

    def on_no_cluster(self, event):
        self.choose(None)

    def choose(self, name, key=None):
        """Show the links of cluster `name` (None: each app's default), keyed
        with `key` or open."""
        self.cluster = name
        self.key = key
        self.say_error("")
        query = []
        if self.current_node is not None:
            query.append("node=" + self.current_node)
        if name:
            query.append("cluster=" + name)
        # Keep the choice in the address bar, so this page can be shared
        # (the key in the fragment, which is never sent to a server).
        self.window.history.replaceState(None, "", "/" + ("?" + "&".join(query) if query else "")
                                         + ("#key=" + key if key else ""))
        self.render()

    def say_error(self, text):
        self.document.getElementById("cluster-error").textContent = text

    def render(self):
        loc = self.window.location
        doc = self.document
        doc.getElementById("apps").innerHTML = render_apps_html(
            str(loc.protocol), str(loc.host), self.cluster, self.current_node, self.key)
        current = doc.getElementById("current-cluster")
        if self.cluster:
            current.textContent = self.cluster
            current.setAttribute("data-cluster", self.cluster)
        else:
            current.textContent = "each app's default cluster (its own name)"
            current.setAttribute("data-cluster", "")
        keyed = doc.getElementById("cluster-keyed")
        keyed.setAttribute("data-keyed", "true" if self.key else "false")
        keyed.textContent = keyed_text(self.key is not None)
