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

from .addresses import AddressBook, DEFAULT_CLUSTERS_PER_ADDRESS, DEFAULT_SOCKETS_PER_ADDRESS
from .app import DEFAULT_ROOT, make_app
from .auth import load_secret_file, new_secret
from .ice import parse_ice_server
from .identity import DEFAULT_MEMBER_MEMORY_S, IdBook
from .introducer import (DEFAULT_HEARTBEAT_S, DEFAULT_JOIN_TIMEOUT_S, DEFAULT_MAX_CLUSTERS,
                         DEFAULT_MAX_SOCKETS, MAX_NODES_PER_CLUSTER)
from .origins import Origins
from .static import NPM_HINT, StaticSite
from .turn import DEFAULT_TTL_S as DEFAULT_TURN_TTL_S, TurnMinter

WINDOWS = 3
MAX_WINDOWS = 7  # a cluster has at most 7 voters
LAN_PROBE = ("192.0.2.1", 9)  # TEST-NET-1: a UDP connect() picks the route, sends nothing
# Descriptors kept back from WebSockets: listening sockets, files being
# served, plain HTTP requests, logs.
FD_RESERVE = 64
# Idle HTTP connections (and requests whose headers never finish) are closed after this.
KEEPALIVE_S = 15.0


def parse_args(argv=None, prog="python -m signaling", add_arguments=None) -> argparse.Namespace:
    """add_arguments(parser): more options, for a command that wraps this one (`wraft serve`)."""
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 with --lan)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--secret", action="store_true",
                   help="joins must prove they know a random access secret made at start; the "
                        "printed links carry it in their #fragment (see PROTOCOL.md)")
    p.add_argument("--secret-file", type=Path, metavar="FILE",
                   help="like --secret, with the secret kept in FILE (made if missing, mode 0600) "
                        "so links survive restarts; the links are printed without it")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL",
                   help="STUN/TURN server for the pages, repeatable: stun:HOST:PORT, "
                        "turn:HOST:PORT (with --turn-secret), turn:USER:PASS@HOST:PORT")
    p.add_argument("--turn-secret", metavar="SECRET|@FILE",
                   help="coturn's static-auth-secret: joined sockets get short-lived TURN "
                        "credentials for the turn: servers (@FILE reads it from FILE)")
    p.add_argument("--turn-ttl", type=float, default=DEFAULT_TURN_TTL_S,
                   help="seconds a TURN credential is valid (default %(default)g)")
    p.add_argument("--server-name", action="append", default=[], metavar="NAME",
                   help="a host name this server is reached by besides localhost and loopback "
                        "(e.g. behind a reverse proxy); others get 421")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="another page origin (https://NAME[:PORT]) that may use /ws")
    p.add_argument("--trusted-proxy", action="append", default=[], metavar="ADDR",
                   help="address of a reverse proxy in front (e.g. 127.0.0.1 for Caddy on this "
                        "machine): its X-Forwarded-For names the client, for the per-address "
                        "limits; it checks the host names itself")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="repo root to serve (default: %(default)s)")
    p.add_argument("--lan", action="store_true",
                   help="serve on PORT, PORT+1, ... (one origin per window) and print ?node=N URLs on the LAN address")
    p.add_argument("--windows", type=int, default=WINDOWS,
                   help=f"window URLs to print (and ports to serve with --lan), 1..{MAX_WINDOWS} (default %(default)s)")
    p.add_argument("--max-clusters", type=int, default=DEFAULT_MAX_CLUSTERS)
    p.add_argument("--max-nodes", type=int, default=MAX_NODES_PER_CLUSTER,
                   help="sockets per cluster: members and client windows (default %(default)s)")
    p.add_argument("--max-sockets", type=int,
                   help="WebSockets in all (default: what the descriptor limit leaves room for)")
    p.add_argument("--max-sockets-per-ip", type=int, default=DEFAULT_SOCKETS_PER_ADDRESS,
                   help="WebSockets per client address (IPv6: per /64) (default %(default)s)")
    p.add_argument("--max-clusters-per-ip", type=int, default=DEFAULT_CLUSTERS_PER_ADDRESS,
                   help="clusters one client address may be joined to at once (default %(default)s)")
    p.add_argument("--id-memory", type=float, default=DEFAULT_MEMBER_MEMORY_S,
                   help="seconds a member id stays reserved for its window after it left "
                        "(default %(default)g)")
    p.add_argument("--join-timeout", type=float, default=DEFAULT_JOIN_TIMEOUT_S,
                   help="seconds from connecting (or leaving) to joining, pings or not (0: no limit)")
    p.add_argument("--heartbeat", type=float, default=DEFAULT_HEARTBEAT_S,
                   help="seconds between WebSocket pings to idle sockets (0: off)")
    p.add_argument("--verbose", action="store_true", help="log every HTTP request")
    if add_arguments is not None:
        add_arguments(p)
    args = p.parse_args(argv)
    if not 1 <= args.windows <= MAX_WINDOWS:
        p.error(f"--windows {args.windows}: need 1..{MAX_WINDOWS}")
    if args.max_nodes < 1 or args.join_timeout < 0 or args.id_memory < 0:
        p.error("--max-nodes must be >= 1, --join-timeout and --id-memory >= 0")
    if min(args.max_sockets_per_ip, args.max_clusters_per_ip, args.max_sockets or 1) < 1:
        p.error("--max-sockets, --max-sockets-per-ip and --max-clusters-per-ip must be >= 1")
    if not 0 <= args.port <= 65535 - (args.windows - 1 if args.lan else 0):
        p.error(f"--port {args.port} out of range")
    if args.lan and args.port == 0:
        p.error("--lan needs a fixed --port (one port per window, consecutive)")
    if args.secret and args.secret_file:
        p.error("--secret and --secret-file: pick one")
    if args.host is None:
        args.host = "0.0.0.0" if args.lan else "127.0.0.1"
    if not (args.root / "pages").is_dir() and not (args.root / "raft").is_dir():
        p.error(f"--root {args.root} does not look like the WRaft repo (no pages/ or raft/)")
    try:
        args.ice_server = [parse_ice_server(u, bare_turn=bool(args.turn_secret)) for u in args.ice_server]
        args.access_secret = (new_secret() if args.secret else
                              load_secret_file(args.secret_file) if args.secret_file else None)
        args.turn = None
        if args.turn_secret:
            secret = args.turn_secret
            if secret.startswith("@"):
                secret = Path(secret[1:]).read_text().strip()
            bare = [s for s in args.ice_server if s["urls"].startswith("turn") and "username" not in s]
            args.ice_server = [s for s in args.ice_server if s not in bare]
            args.turn = TurnMinter(secret, [s["urls"] for s in bare], args.turn_ttl)
        Origins(args.server_name, args.allow_origin)
        for proxy in args.trusted_proxy:
            ipaddress.ip_address(proxy)
    except (ValueError, OSError) as exc:
        p.error(str(exc))
    return args


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


def max_sockets(args, fds: int) -> int:
    if args.max_sockets:
        return args.max_sockets
    return max(16, min(DEFAULT_MAX_SOCKETS, fds - min(FD_RESERVE, fds // 4)))


def server_names(args) -> list[str]:
    """Host names to serve besides localhost, *.localhost and IP addresses:
    --server-name, and the machine's own name when others can reach it."""
    names = list(args.server_name)
    if not is_loopback(args.host):
        names.append(socket.gethostname())
    return names


def startup_warnings(args, site: StaticSite) -> list[str]:
    warnings = [f"{missing} is missing: {NPM_HINT.format(root=site.root)}. Serving everything else."
                for missing in site.missing_runtime()]
    if not is_loopback(args.host) and not args.access_secret:
        warnings.append(
            f"binding {args.host} (reachable from other machines) without --secret: anyone who "
            "can reach this port can join any cluster and relay signals. Use --secret on "
            "untrusted networks.")
    if any("credential" in s for s in args.ice_server):
        warnings.append("a turn:USER:PASS@ server: every joined window gets that long-term "
                        "password. Prefer coturn's use-auth-secret with --turn-secret.")
    return warnings


def window_urls(args, ports: list[int], names: list[str]) -> list[str]:
    # The access secret rides in the fragment, which browsers never send.
    fragment = f"#access={args.access_secret}" if args.access_secret and args.secret else ""
    lines = []
    apps = [("landing", "/")] + [(n, "/" + n) for n in names]
    for app, path in apps:
        if args.lan:
            addr = lan_address() if not is_loopback(args.host) else args.host
            urls = [f"http://{addr}:{ports[i]}{path}?node={i}{fragment}" for i in range(args.windows)]
        else:
            urls = [f"http://wraft{i}.localhost:{ports[0]}{path}{fragment}" for i in range(args.windows)]
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

    sockets = max_sockets(args, fds)
    app = make_app(site=site, server_names=server_names(args), allow_origins=args.allow_origin,
                   trusted_proxies=args.trusted_proxy,
                   access_secret=args.access_secret, ice_servers=args.ice_server, turn=args.turn,
                   max_clusters=args.max_clusters, heartbeat=args.heartbeat,
                   max_nodes=args.max_nodes, join_timeout=args.join_timeout, max_sockets=sockets,
                   addresses=AddressBook(max_sockets=args.max_sockets_per_ip,
                                         max_clusters=args.max_clusters_per_ip),
                   ids=IdBook(member_memory=args.id_memory))
    where = ", ".join(f"{args.host}:{p}" for p in ports)
    print(f"WRaft introducer listening on {where} (ws path /ws), serving {site.describe()}, "
          f"fd limit {fds} ({sockets} WebSockets){', access secret required' if args.access_secret else ''}",
          flush=True)
    print("Open one window per URL (each is its own origin, hence its own localStorage):", flush=True)
    for line in window_urls(args, ports, site.page_names()):
        print(line, flush=True)
    if args.secret_file:
        print(f"Add #access=<the secret in {args.secret_file}> to each link once; the window "
              "keeps it.", flush=True)
    print(more_windows_hint(args, ports), flush=True)
    web.run_app(app, sock=socks, print=None, access_log=logging.getLogger("aiohttp.access") if args.verbose else None,
                shutdown_timeout=5, backlog=2048, keepalive_timeout=KEEPALIVE_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())
