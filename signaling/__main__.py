"""`python -m signaling`: host the WRaft pages and run the /ws introducer.

Default: one port on loopback; each window gets its own origin (so its own
localStorage) from the wraft0/1/2.localhost host names, which browsers map to
loopback. `--lan`: consecutive ports (one origin per window) on the machine's
address, windows pick their node with ?node=N. `--windows N` (1..7, default 3)
sets how many window URLs are printed (and ports served with --lan); more
windows can join a running cluster later (wraft3.localhost, ...) from a
member's status panel.
"""

import argparse
import ipaddress
import logging
import resource
import socket
import sys
from pathlib import Path

from aiohttp import web

from .app import DEFAULT_ROOT, make_app
from .ice import parse_ice_server
from .introducer import (DEFAULT_HEARTBEAT_S, DEFAULT_JOIN_TIMEOUT_S, DEFAULT_MAX_CLUSTERS,
                         MAX_NODES_PER_CLUSTER)
from .static import NPM_HINT, StaticSite

WINDOWS = 3
MAX_WINDOWS = 7  # a cluster has at most 7 voters
LAN_PROBE = ("192.0.2.1", 9)  # TEST-NET-1: a UDP connect() picks the route, sends nothing


def parse_args(argv=None, prog="python -m signaling", add_arguments=None) -> argparse.Namespace:
    """add_arguments(parser): more options, for a command that wraps this one (`wraft serve`)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 with --lan)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--secret", help="require joins signed with this shared secret (see PROTOCOL.md)")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL", type=_ice_arg,
                   help="STUN/TURN server for the pages, repeatable: stun:HOST:PORT, turn:USER:PASS@HOST:PORT")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="repo root to serve (default: %(default)s)")
    p.add_argument("--lan", action="store_true",
                   help="serve on PORT, PORT+1, ... (one origin per window) and print ?node=N URLs on the LAN address")
    p.add_argument("--windows", type=int, default=WINDOWS,
                   help=f"window URLs to print (and ports to serve with --lan), 1..{MAX_WINDOWS} (default %(default)s)")
    p.add_argument("--max-clusters", type=int, default=DEFAULT_MAX_CLUSTERS)
    p.add_argument("--max-nodes", type=int, default=MAX_NODES_PER_CLUSTER,
                   help="sockets per cluster: members and client windows (default %(default)s)")
    p.add_argument("--join-timeout", type=float, default=DEFAULT_JOIN_TIMEOUT_S,
                   help="seconds a socket may stay without joining a cluster (0: no limit)")
    p.add_argument("--heartbeat", type=float, default=DEFAULT_HEARTBEAT_S,
                   help="seconds between WebSocket pings to idle sockets (0: off)")
    p.add_argument("--verbose", action="store_true", help="log every HTTP request")
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args(argv)
    if not 1 <= args.windows <= MAX_WINDOWS:
        p.error(f"--windows {args.windows}: need 1..{MAX_WINDOWS}")
    if args.max_nodes < 1 or args.join_timeout < 0:
        p.error("--max-nodes must be >= 1 and --join-timeout >= 0")
    if not 0 <= args.port <= 65535 - (args.windows - 1 if args.lan else 0):
        p.error(f"--port {args.port} out of range")
    if args.lan and args.port == 0:
        p.error("--lan needs a fixed --port (one port per window, consecutive)")
    if args.host is None:
        args.host = "0.0.0.0" if args.lan else "127.0.0.1"
    if not (args.root / "pages").is_dir() and not (args.root / "raft").is_dir():
        p.error(f"--root {args.root} does not look like the WRaft repo (no pages/ or raft/)")
    return args


def _ice_arg(text: str) -> dict:
    try:
        return parse_ice_server(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def lan_address() -> str:
    """This machine's address on its default route, without sending a packet."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(LAN_PROBE)
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def raise_fd_limit() -> int:
    """Each WebSocket is a descriptor: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def startup_warnings(args, site: StaticSite) -> list[str]:
    warnings = [f"{missing} is missing: {NPM_HINT.format(root=site.root)}. Serving everything else."
                for missing in site.missing_runtime()]
    if not is_loopback(args.host) and not args.secret:
        warnings.append(
            f"binding {args.host} (reachable from other machines) without --secret: anyone who "
            "can reach this port can join any cluster and relay signals. Use --secret on "
            "untrusted networks.")
    return warnings


def window_urls(args, ports: list[int], names: list[str]) -> list[str]:
    lines = []
    apps = [("landing", "/")] + [(n, "/" + n) for n in names]
    for app, path in apps:
        if args.lan:
            addr = lan_address() if not is_loopback(args.host) else args.host
            urls = [f"http://{addr}:{ports[i]}{path}?node={i}" for i in range(args.windows)]
        else:
            urls = [f"http://wraft{i}.localhost:{ports[0]}{path}" for i in range(args.windows)]
        lines.append(f"  {app:<8} " + "  ".join(urls))
    return lines


def more_windows_hint(args, ports: list[int]) -> str:
    """How to grow a running cluster: a window that is not a member yet."""
    n = args.windows
    if args.lan:
        where = f"?node={n} on any of these ports"
    else:
        where = f"http://wraft{n}.localhost:{ports[0]}/<app> (any id 0..63)"
    return (f"More windows: open {where}, then add it from a member's status panel "
            "(Add as learner, then Promote). Add ?client=1 for a client window that is not a member.")


def main(argv=None, prog="python -m signaling", add_arguments=None, make_site=None) -> int:
    """make_site(args) -> the StaticSite to serve (default: the one at --root)."""
    args = parse_args(argv, prog, add_arguments)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    site = make_site(args) if make_site is not None else StaticSite(args.root)
    for warning in startup_warnings(args, site):
        print("WARNING: " + warning, file=sys.stderr, flush=True)
    fds = raise_fd_limit()

    ports = [args.port + i for i in range(args.windows)] if args.lan else [args.port]
    socks = []
    for port in ports:
        try:
            family = socket.getaddrinfo(args.host, port, type=socket.SOCK_STREAM,
                                        flags=socket.AI_PASSIVE)[0][0]
            socks.append(socket.create_server((args.host, port), family=family, backlog=2048))
        except OSError as exc:
            print(f"ERROR: cannot listen on {args.host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            for s in socks:
                s.close()
            return 2
    ports = [s.getsockname()[1] for s in socks]

    app = make_app(site=site, secret=args.secret, ice_servers=args.ice_server,
                   max_clusters=args.max_clusters, heartbeat=args.heartbeat,
                   max_nodes=args.max_nodes, join_timeout=args.join_timeout)
    where = ", ".join(f"{args.host}:{p}" for p in ports)
    print(f"WRaft introducer listening on {where} (ws path /ws), serving {site.describe()}, "
          f"fd limit {fds}{', secret required' if args.secret else ''}", flush=True)
    print("Open one window per URL (each is its own origin, hence its own localStorage):", flush=True)
    for line in window_urls(args, ports, site.page_names()):
        print(line, flush=True)
    print(more_windows_hint(args, ports), flush=True)
    web.run_app(app, sock=socks, print=None, access_log=logging.getLogger("aiohttp.access") if args.verbose else None,
                shutdown_timeout=5, backlog=2048)
    return 0


if __name__ == "__main__":
    sys.exit(main())
