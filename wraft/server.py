"""The WRaft server (`wraft serve`, wraft/cli.py) as a subprocess for tests:
on 127.0.0.1 and a free port, serving the framework and the author's page
folders, optionally inside a network namespace (`prefix`, wraft/netns.py);
stop()/start() keep the port. Its output goes to a log file that failure
reports quote."""

import socket
import subprocess
import sys
import time
from pathlib import Path

from wraft import framework

LISTENING = "WRaft introducer listening on"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """pages: folders of pages served beside the framework's (--pages);
    root: another framework tree to serve (--root); args: more command line
    options; prefix: argv prefix that runs it elsewhere (nsenter); program:
    what Python runs instead of `-m wraft serve` (a test double's script,
    taking the same options)."""

    def __init__(self, workdir, port=None, args=(), root=None, prefix=(), pages=(), program=None):
        self.program = list(program) if program else ["-m", "wraft", "serve"]
        self.port = port or free_port()
        self.args = [a for d in pages for a in ("--pages", str(d))] + list(args) + (
            ["--root", str(root)] if root is not None else [])
        self.prefix = list(prefix)
        self.log_path = Path(workdir) / ("signaling-%d.log" % self.port)
        self.proc = None

    def base(self, node=0):
        return "http://wraft%s.localhost:%d" % (node, self.port)

    def url(self, path="/", node=0):
        return self.base(node) + path

    def start(self, timeout=20.0):
        assert self.proc is None, "already running"
        start_at = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            cmd = self.prefix + [sys.executable, *self.program, "--host", "127.0.0.1",
                                 "--port", str(self.port), *self.args]
            # In a checkout its cwd holds wraft/ (importable without an install).
            self.proc = subprocess.Popen(cmd, cwd=framework.root(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError("the WRaft server exited at start:\n" + self.log())
            # Its sockets listen before it prints this line.
            with open(self.log_path, "rb") as f:
                f.seek(start_at)
                if LISTENING.encode() in f.read():
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the WRaft server did not listen on %d within %ss:\n%s"
                           % (self.port, timeout, self.log()))

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def log(self, tail=4000):
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""
