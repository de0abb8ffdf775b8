"""Command-line options the replica and the command-line client share
(introducer, cluster, access secret, cluster key, ICE)."""

import argparse
import os

from raft.runtime.names import valid_name
from raft.cluster_key import check_key
from raft.replica.transport import gather_on
from signaling.ice import parse_ice_server


def _ice_arg(text):
    try:
        return parse_ice_server(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def add_connection_args(p):
    """Options the replica and the command-line client share."""
    p.add_argument("--introducer", default="ws://127.0.0.1:8000/ws", metavar="URL",
                   help="the server's introducer WebSocket (default %(default)s)")
    p.add_argument("--cluster", required=True, help="cluster name, as in the windows' ?cluster= "
                   "(default there: the page's path, e.g. todo)")
    p.add_argument("--secret-file", metavar="PATH",
                   help="the server's access secret (its --secret-file, or the #access=... of "
                        "its links), for a server that wants one; or set WRAFT_SECRET")
    # Never a secret on the command line (process lists and shell history
    # show it): --secret VALUE is refused without repeating the value.
    p.add_argument("--secret", nargs="?", const="", default=None, help=argparse.SUPPRESS)
    p.add_argument("--key-file", metavar="PATH",
                   help="the cluster key (the #key=... of the windows' links; for the "
                        "client, a client link's client key does), for a keyed cluster; or "
                        "set WRAFT_KEY. Without one the cluster is open")
    p.add_argument("--key", nargs="?", const="", default=None, dest="key_given",
                   help=argparse.SUPPRESS)
    p.add_argument("--ice-server", action="append", default=None, metavar="URL", type=_ice_arg,
                   help="STUN/TURN server, repeatable (default: the introducer's list)")
    p.add_argument("--ice-host", action="append", default=None, metavar="ADDR",
                   help="gather ICE host candidates on this address only, repeatable "
                        "(default: every interface but loopback)")
    p.add_argument("--wait-introducer", type=float, default=15.0, metavar="S",
                   help="give up (exit 5) if the introducer cannot be joined within S seconds "
                        "of starting (default %(default)s)")


def check_connection_args(p, args):
    if not valid_name(args.cluster):
        p.error("--cluster %r: use 1-64 of A-Z a-z 0-9 _ . -" % args.cluster)
    if not args.introducer.startswith(("ws://", "wss://")):
        p.error("--introducer %r: need a ws:// or wss:// URL" % args.introducer)
    if args.secret is not None:
        p.error("--secret: the access secret is never taken from the command line; use "
                "--secret-file PATH or the environment variable WRAFT_SECRET")
    args.secret = read_secret(p, args.secret_file, "WRAFT_SECRET")
    if args.key_given is not None:
        p.error("--key: the cluster key is never taken from the command line; use "
                "--key-file PATH or the environment variable WRAFT_KEY")
    args.cluster_key = read_secret(p, args.key_file, "WRAFT_KEY")
    if args.cluster_key is not None:
        try:
            check_key(args.cluster_key)
        except ValueError as e:
            p.error("%s: %s" % ("--key-file" if args.key_file else "WRAFT_KEY", e))
    args.ice_servers = args.ice_server
    if args.ice_host:
        gather_on(args.ice_host)


def read_secret(p, path, env):
    """A secret from a file (first line, stripped) or else the environment;
    None when neither gives one."""
    if path:
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError as e:
            p.error("--secret-file: %s" % e)
        if not text:
            p.error("--secret-file %s is empty" % path)
        return text
    return os.environ.get(env) or None
