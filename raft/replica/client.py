"""`python -m raft.replica.client`: the cluster from the command line.

It attaches to one member like a client window (raft/CLIENT.md): same
transport and introducer, the client protocol's session (raft/client.py:
same-seq retries, so a write is applied exactly once across leader changes
and member switches; reads linearizable through the member's ReadIndex and
our own applied stream) and the client runtime
(raft/runtime/client_driver.py, which a client window runs too).

    python -m raft.replica.client --cluster kv put greeting '"hello"'
    python -m raft.replica.client --cluster kv get greeting
    python -m raft.replica.client --cluster kv cas greeting '"hello"' '"bye"'
    python -m raft.replica.client --cluster kv delete greeting
    python -m raft.replica.client --cluster kv watch greet        (until Ctrl-C)
    python -m raft.replica.client --cluster todo --state components.todo:TodoState \\
        propose '["add", "t1", "milk"]'
    python -m raft.replica.client --cluster todo --state components.todo:TodoState read

Values are JSON (a word that is not JSON is taken as a string). Output: one
JSON line per answer on stdout ({"ok": true, ...} or {"ok": false,
"error": code, "message": words}); status on stderr. The KV commands use
the /kv app's state class (components.kv_view:KVState) unless --state says
otherwise (e.g. raft.kv:KVStateMachine for a cluster of plain KV replicas);
`propose` and `read` need --state to compute results (without it a write's
result is null).

Exit codes: 0 done; 1 a compare-and-set that did not swap; 2 bad command
line; 5 introducer unreachable; 6 refused by the introducer (wrong or
missing access secret: --secret-file, WRAFT_SECRET); 7 no leader (or no member) within --timeout; 8 the cluster
refused the command (invalid, too large, failed in the app); 9 the members
refuse our cluster key (another, or none: --key-file, WRAFT_KEY); 130 cut
short by Ctrl-C (which ends `watch` with 0).
"""

import argparse
import asyncio
import json
import random
import signal
import sys
import time

from raft.runtime.client_driver import ClientDriver
from raft.runtime.contract import GuardedState, ProposalError, new_client_id
from raft.client import ClientSession
from raft.replica.options import add_connection_args, check_connection_args
from raft.replica.host import (EXIT_INTRODUCER, EXIT_KEY, EXIT_REFUSED, EXIT_USAGE, KeyTrouble,
                               OpaqueState, load_state_class, refusal_message)
from raft.replica.status import StatusPrinter
from raft.replica.transport import Transport

EXIT_NOT_SWAPPED = 1
EXIT_NO_LEADER = 7
EXIT_FAILED = 8
EXIT_INTERRUPTED = 130
# The /kv app's state class, imported by name at run time (nothing in raft/
# imports components/); --state names another.
KV_STATE = "components.kv_view:KVState"
RETRYABLE = ("no_leader", "leadership_lost", "timeout", "too_many_pending", "busy", "halted")


class ClientError(Exception):
    def __init__(self, code, error, message):
        super().__init__(message)
        self.code, self.error, self.message = code, error, message


def json_arg(text):
    """A JSON value, or the text itself as a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m raft.replica.client", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_args(p)
    p.add_argument("--via", help="prefer this member (node id)")
    p.add_argument("--state", metavar="MODULE:CLASS",
                   help="the app's state class (default for KV commands: %s)" % KV_STATE)
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="give up (exit 7) when the command has no outcome after S seconds")
    p.add_argument("--quiet", action="store_true", help="no status on stderr")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("get", help="linearizable read of a key").add_argument("key")
    put = sub.add_parser("put", help="set a key")
    put.add_argument("key")
    put.add_argument("value", type=json_arg)
    sub.add_parser("delete", help="delete a key").add_argument("key")
    cas = sub.add_parser("cas", help="compare-and-set: set KEY to NEW if it holds OLD")
    cas.add_argument("key")
    cas.add_argument("old", type=json_arg)
    cas.add_argument("new", type=json_arg)
    sub.add_parser("watch", help="print each change (of keys with this prefix) until Ctrl-C"
                   ).add_argument("prefix", nargs="?", default="")
    sub.add_parser("propose", help="propose any JSON command to the app"
                   ).add_argument("json", type=json.loads)
    sub.add_parser("read", help="linearizable read of the whole state (needs --state)")
    args = p.parse_args(argv)
    check_connection_args(p, args)
    if args.via is not None and not args.via.isdigit():
        p.error("--via %r: need a member's node number" % args.via)
    if args.state is None and args.command in ("get", "put", "delete", "cas", "watch"):
        args.state = KV_STATE
    if args.command == "read" and not args.state:
        p.error("read needs --state MODULE:CLASS (the app's state class)")
    return args


def clock():
    return int(time.monotonic() * 1000)


class Client:
    def __init__(self, opts, out=None, printer=None):
        self.opts = opts
        self.out = out or sys.stdout
        self.printer = printer or StatusPrinter()
        cls, why = load_state_class(opts.state)
        if opts.state and cls is None:
            raise ClientError(EXIT_USAGE, "invalid", why)
        self.state = cls() if cls is not None else OpaqueState()
        self.client_id = new_client_id(random.random)
        self.guard = GuardedState(self.state)  # its on_apply: the watch's
        session = ClientSession(self.client_id, self.guard, now_ms=clock())
        self.driver = ClientDriver(session, clock, random.random, via=opts.via)
        self.transport = Transport(opts.cluster, self.client_id, on_message=self.driver.on_message,
                                   on_peer=self.driver.on_peer,
                                   on_presence=self.driver.on_presence, ws_url=opts.introducer,
                                   ice_servers=opts.ice_servers, secret=opts.secret,
                                   wants=self.driver.wants, ask_after_ms=0, key=opts.cluster_key)
        self.key_trouble = KeyTrouble()
        self.driver.transport = self.transport

    def emit(self, obj):
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def show(self):
        if not self.opts.quiet:
            info = self.driver.status()
            info["introducer_up"] = bool(self.transport.introducer_up)
            self.printer.show(info)

    async def run(self):
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        self.driver.start()
        self.transport.start()
        work = asyncio.ensure_future(self.command())
        try:
            start = time.monotonic()
            while not work.done():
                self.show()
                self.check_introducer(start)
                if stop.is_set():  # Ctrl-C: the way to end `watch`; else cut short
                    return 0 if self.opts.command == "watch" else EXIT_INTERRUPTED
                await asyncio.wait([work], timeout=0.25)
            return work.result()
        finally:
            if not work.done():
                work.cancel()
            self.driver.stop()
            await self.transport.aclose()
            if not self.opts.quiet:
                self.printer.done()

    def check_introducer(self, start):
        t = self.transport
        if t.error is not None:
            raise ClientError(EXIT_REFUSED, t.error, refusal_message(t.error, self.client_id))
        why = self.key_trouble.check(t, time.monotonic())
        if why is not None:
            raise ClientError(EXIT_KEY, "key_refused", why)
        if not t.joined_once and time.monotonic() - start > self.opts.wait_introducer:
            raise ClientError(EXIT_INTRODUCER, "introducer_unreachable",
                              t.last_error or "no answer from the introducer")

    def no_leader_message(self, error):
        d, s = self.driver, self.driver.session
        if not self.transport.joined_once:
            where = "not joined to the introducer"
        elif not d.present:
            where = "no member of cluster %s is present" % self.opts.cluster
        elif s.stats["refused"]:
            where = ("member %s refused us (busy, or a replica without --state that does not "
                     "apply the log) and no other member took us" % d.member)
        elif s.member is None:
            t = self.transport
            # A member drops the asks it cannot verify without a word back
            # (anything it said could be forged), so the key is only a guess.
            hint = t.key_error or ("a keyed cluster drops a client without its key: give "
                                   "--key-file or WRAFT_KEY" if t.key is None else
                                   "is --key-file / WRAFT_KEY this cluster's key?")
            where = "members present (%s) but no channel to one yet (%s)" % (
                ",".join(d.present), hint)
        else:
            where = "attached to member %s, which knows no leader with a quorum" % s.member
        return "%s after %g s: %s" % (error, self.opts.timeout, where)

    async def bounded(self, coro):
        """Await a proposal or read within --timeout; map failures to exits."""
        try:
            return await asyncio.wait_for(coro, self.opts.timeout)
        except asyncio.TimeoutError:
            raise ClientError(EXIT_NO_LEADER, "no_leader", self.no_leader_message("no outcome"))
        except ProposalError as e:
            if e.error in RETRYABLE:
                raise ClientError(EXIT_NO_LEADER, e.error, self.no_leader_message(e.error))
            raise ClientError(EXIT_FAILED, e.error, "the cluster refused the command: %s%s"
                              % (e.error, " (%s)" % e.reason if e.reason else ""))

    async def propose(self, command):
        return await self.bounded(self.driver.propose(command))

    async def read(self):
        await self.bounded(self.driver.read())
        return self.driver.session.applied_index

    def kv_data(self):
        data = getattr(self.state, "data", None)
        if not isinstance(data, dict):
            raise ClientError(EXIT_USAGE, "invalid", "--state %s is not a key/value state (no .data)"
                              % self.opts.state)
        return data

    async def command(self):
        o = self.opts
        c = o.command
        if c == "get":
            index = await self.read()
            data = self.kv_data()
            self.emit({"ok": True, "key": o.key, "found": o.key in data,
                       "value": data.get(o.key), "index": index})
        elif c == "put":
            prev = await self.propose(["put", o.key, o.value])
            self.emit({"ok": True, "key": o.key, "value": o.value, "previous": prev})
        elif c == "delete":
            existed = await self.propose(["del", o.key])
            self.emit({"ok": True, "key": o.key, "existed": existed})
        elif c == "cas":
            swapped, current = await self.propose(["cas", o.key, o.old, o.new])
            self.emit({"ok": True, "key": o.key, "swapped": swapped, "value": current})
            if not swapped:
                return EXIT_NOT_SWAPPED
        elif c == "propose":
            result = await self.propose(o.json)
            out = {"ok": True, "result": result}
            if isinstance(self.state, OpaqueState):
                out["note"] = "result unknown: pass --state MODULE:CLASS to compute it"
            self.emit(out)
        elif c == "read":
            index = await self.read()
            self.emit({"ok": True, "state": self.state.snapshot(), "index": index})
        elif c == "watch":
            await self.watch(o.prefix)
        return 0

    async def watch(self, prefix):
        """One line per change until cancelled: {"index", "op", "key",
        "value"} for the KV app (the change event its apply_entry records),
        else {"index", "command"} for every applied command (each once)."""
        kv = isinstance(getattr(self.state, "events", None), list)

        def on_apply(index, command):
            if not kv:
                self.emit({"index": index, "command": command})
                return
            events = self.state.events
            if events and events[-1][0] == index:  # this command changed a key
                _, _term, op, key, value = events[-1]
                if key.startswith(prefix):
                    self.emit({"index": index, "op": op, "key": key, "value": value})
        await self.read()  # attached, and in step: changes from now on
        self.printer.say("watching cluster %s%s (Ctrl-C to stop)"
                         % (self.opts.cluster, " keys %s*" % prefix if prefix else ""))
        self.guard.on_apply = on_apply
        await asyncio.Event().wait()


def main(argv=None):
    try:
        opts = parse_args(argv)
    except SystemExit as e:
        return EXIT_USAGE if e.code else 0
    out, sys.stdout = sys.stdout, sys.stderr  # stdout: JSON answers only
    printer = StatusPrinter()

    def fail(code, error, message):
        out.write(json.dumps({"ok": False, "error": error, "message": message}) + "\n")
        out.flush()
        printer.say("wraft client: " + message)
        return code

    try:
        client = Client(opts, out=out, printer=printer)
        return asyncio.run(client.run())
    except ClientError as e:
        return fail(e.code, e.error, e.message)
    finally:
        sys.stdout = out


if __name__ == "__main__":
    sys.exit(main())
