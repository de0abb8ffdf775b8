"""A `python -m raft.replica` (or client) subprocess, driven from a test
through its stdin commands; plain threads, no asyncio (the browser tests
keep Playwright's loop in the main thread)."""

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from wraft.cluster import wait_until as plugin_wait_until

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    """A subprocess whose stdout JSON lines are collected by a thread."""

    def __init__(self, cmd, stdin=True, env=None):
        self.cmd = cmd
        self.lines = queue.Queue()
        self.out = []
        self.err = []
        full_env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        full_env.update(env or {})
        self.p = subprocess.Popen(cmd, cwd=str(ROOT), stdin=subprocess.PIPE if stdin else
                                  subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=full_env)
        threading.Thread(target=self._pump, args=(self.p.stdout, self.out, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err, False), daemon=True).start()

    def _pump(self, stream, sink, is_out):
        for line in stream:
            sink.append(line.rstrip("\n"))
            if is_out:
                self.lines.put(line)

    def wait(self, timeout=30):
        return self.p.wait(timeout)

    def alive(self):
        return self.p.poll() is None

    def kill(self):
        if self.alive():
            self.p.send_signal(signal.SIGKILL)
        self.p.wait(10)

    def interrupt(self, timeout=15):
        """Ctrl-C; returns the exit code."""
        self.p.send_signal(signal.SIGINT)
        return self.p.wait(timeout)

    def stderr(self):
        return "\n".join(self.err[-60:])


class ReplicaProc(Proc):
    def __init__(self, introducer, cluster, node, db, state=None, extra=(), loopback=True):
        cmd = [sys.executable, "-m", "raft.replica", "--introducer", introducer,
               "--cluster", cluster, "--node", str(node), "--db", str(db)]
        if state:
            cmd += ["--state", state]
        if loopback:
            cmd += ["--ice-host", "127.0.0.1"]
        super().__init__(cmd + list(extra))
        self.node = str(node)
        self.db = db

    def command(self, line, timeout=20):
        """Send a stdin command; its JSON answer."""
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                msg = json.loads(self.lines.get(timeout=max(0.01, end - time.monotonic())))
            except queue.Empty:
                break
            if msg.get("command") == line:
                return msg
        raise AssertionError("no answer to %r from replica %s within %ss; stderr:\n%s"
                             % (line, self.node, timeout, self.stderr()))

    def status(self):
        return self.command("status")["ok"]


def wait_until(fn, timeout=30.0, interval=0.1, what="condition"):
    """The plugin's poll, with a replica's longer default deadline."""
    return plugin_wait_until(fn, timeout, interval, what)


def client_cmd(introducer, cluster, *args, loopback=True):
    cmd = [sys.executable, "-m", "raft.replica.client", "--introducer", introducer,
           "--cluster", cluster]
    if loopback:
        cmd += ["--ice-host", "127.0.0.1"]
    return cmd + [str(a) for a in args]


def run_client(introducer, cluster, *args, timeout=60, loopback=True):
    """Run the CLI client to completion: (exit code, [JSON lines], stderr)."""
    p = subprocess.run(client_cmd(introducer, cluster, *args, loopback=loopback), cwd=str(ROOT),
                       capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return p.returncode, [json.loads(x) for x in p.stdout.splitlines() if x.strip()], p.stderr


async def until(pred, timeout=10.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
