"""Which host names this server answers to (the Host check, against DNS
rebinding) and which page origins may open /ws (against other web sites
using the visitor's browser to join or squat)."""

import ipaddress
from urllib.parse import urlsplit

# Browsers map localhost and *.localhost to loopback themselves.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(host: str) -> tuple[str, int | None] | None:
    """"Name:port" (a Host header, or the netloc of an origin) -> (lowercased
    name, port or None); None when malformed."""
    host = host.strip().lower()
    if not host or any(c in host for c in "/@?#\\ \t"):
        return None
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[1:end], host[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text = host.partition(":")
        if not sep:
            port_text = None
        elif ":" in port_text:
            return None
    if not name:
        return None
    if port_text is None:
        return name, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    return name, int(port_text)


def parse_origin(origin: str) -> tuple[str, str, int] | None:
    """"scheme://name[:port]" -> (scheme, name, port with the scheme's default)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or parts.path or parts.query or parts.fragment:
        return None
    hostport = split_host(parts.netloc)
    if hostport is None:
        return None
    name, port = hostport
    return parts.scheme, name, port or DEFAULT_PORTS[parts.scheme]


class Origins:
    """`names`: host names served besides the local ones (the LAN address,
    --server-name; "*.example.org" stands for every name under example.org).
    `extra_origins`: exact origins allowed on /ws although they are not this
    server (--allow-origin)."""

    def __init__(self, names=(), extra_origins=()):
        names = [n.lower().strip("[]") for n in (*LOCAL_NAMES, *names)]
        self.names = {n for n in names if not n.startswith("*.")}
        # Every *.localhost is loopback in browsers: our own pages (wraftN).
        self.suffixes = tuple({n[1:] for n in names if n.startswith("*.")} | {".localhost"})
        self.extra = set()
        for origin in extra_origins:
            parsed = parse_origin(origin)
            if parsed is None:
                raise ValueError(f"bad origin {origin!r}: expected http(s)://NAME[:PORT]")
            self.extra.add(parsed)

    def host_ok(self, host: str | None) -> bool:
        """A Host header naming this server (any port: the name is what DNS
        rebinding changes). An IP address is always fine: no DNS in the way,
        so a browser that sent it connected to that address, which is ours
        (the --lan addresses, whatever the interfaces)."""
        hostport = split_host(host or "")
        if hostport is None:
            return False
        name = hostport[0]
        if name in self.names or name.endswith(self.suffixes):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def ws_origin_ok(self, origin: str | None, host: str | None) -> bool:
        """A browser page may open /ws only from this server's own origin (the
        Host it connects to) or an --allow-origin one. No Origin header at
        all is not a browser page (tools, tests): allowed, as nothing in it
        rides on a visitor's browser."""
        if origin is None:
            return True
        parsed = parse_origin(origin)
        if parsed is None:  # "null" (sandboxed frames, file:) and anything malformed
            return False
        if parsed in self.extra:
            return True
        hostport = split_host(host or "")
        if hostport is None or not self.host_ok(host):
            return False
        scheme, name, port = parsed
        host_name, host_port = hostport
        if name != host_name:
            return False
        if host_port is None:  # behind a proxy that dropped the port: a default one
            return port == DEFAULT_PORTS[scheme]
        # Behind a TLS proxy the page is https while we see plain http: the
        # port the browser used is the one in Host.
        return port == host_port
