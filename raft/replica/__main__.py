"""`python -m raft.replica`: a durable CPython member of a cluster of windows.

It joins the cluster through the same introducer and protocol as a window
(WebRTC data channels, aiortc), keeps its Raft state in one SQLite file and
restarts from it. Start it next to the server, then add it from any
window's status panel ("Add as learner", later "Promote"), exactly like a
new window; or type the same on its stdin:

    python -m raft.replica --introducer ws://127.0.0.1:8000/ws --cluster todo \\
        --node 3 --state components.todo:TodoState --db /var/lib/wraft/todo-3.sqlite

stdin commands (one per line, a JSON line answers each on stdout):
    add_learner N | promote N | remove N | propose JSON | read | status | state | quit
    bench {"seconds": S, "inflight": K, "command": JSON, "writes": N}  (pipelined writes from here)
Status (role, term, leader, commit, peers) goes to stderr. Exit codes: see
raft/replica/host.py (0 clean stop, 3 storage refused, 4 disk full,
5 introducer unreachable at start, 6 refused by the introducer).
"""

import argparse
import asyncio
import os
import sys

from raft.runtime.names import MAX_NODE_ID, MAX_SIZE
from raft.replica.host import EXIT_USAGE, Replica
from raft.replica.options import add_connection_args, check_connection_args


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m raft.replica", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_args(p)
    p.add_argument("--node", required=True,
                   help="this replica's node id, a number 0..%d; ids from --size on start "
                        "outside the cluster until a member adds them" % MAX_NODE_ID)
    p.add_argument("--size", type=int, default=3,
                   help="voters the cluster started with (the windows' <raft-node size>, "
                        "default %(default)s)")
    p.add_argument("--db", help="SQLite file (default: wraft-CLUSTER-NODE.sqlite here)")
    p.add_argument("--state", metavar="MODULE:CLASS",
                   help="the app's state class, e.g. components.todo:TodoState; without it "
                        "(or if it does not import) the log is kept, not applied")
    p.add_argument("--snapshot-entries", type=int, default=10000,
                   help="snapshot once this many applied entries are in the log (0: off)")
    p.add_argument("--snapshot-bytes", type=int, default=1 << 20,
                   help="... or this many bytes of them (0: off)")
    p.add_argument("--max-db-bytes", type=int, default=None, metavar="N",
                   help="cap the SQLite file at N bytes: reaching it stops the replica as a "
                        "full disk does (exit 4)")
    p.add_argument("--no-commands", dest="commands", action="store_false",
                   help="do not read commands from stdin")
    args = p.parse_args(argv)
    check_connection_args(p, args)
    if not args.node.isdigit() or int(args.node) > MAX_NODE_ID:
        p.error("--node %r: must be a number 0..%d" % (args.node, MAX_NODE_ID))
    args.node = str(int(args.node))
    if not 1 <= args.size <= MAX_SIZE:
        p.error("--size %d: need 1..%d" % (args.size, MAX_SIZE))
    if args.snapshot_entries < 0 or args.snapshot_bytes < 0:
        p.error("snapshot thresholds must be >= 0")
    if args.db is None:
        args.db = os.path.join(os.getcwd(), "wraft-%s-%s.sqlite" % (args.cluster, args.node))
    return args


def main(argv=None):
    try:
        opts = parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else 0
    # stdout carries only the JSON answers to stdin commands; what the
    # driver and transport print (events, warnings) goes to stderr.
    out, sys.stdout = sys.stdout, sys.stderr
    try:
        return asyncio.run(Replica(opts, out=out).run())
    finally:
        sys.stdout = out


if __name__ == "__main__":
    sys.exit(main())
