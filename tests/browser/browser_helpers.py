"""Shared helpers for the browser tests (constants, the signaling subprocess, polling)."""

import itertools
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_PAGES = Path(__file__).resolve().parent / "pages"  # harness pages: served in tests only
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
MPY_LOAD_MS = 15_000
PYODIDE_LOAD_MS = 60_000  # ~5 s alone; 30 s+ when the 2 cores are busy


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_site(path):
    """A site root at `path` serving the repository as it is plus the test
    pages (tests/browser/pages/*), which never ship with the apps: pages/ is
    a copy (the server refuses symlinks out of it), the rest are symlinks."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("raft", "components", "node_modules"):
        link = path / name
        if not link.exists():
            link.symlink_to(ROOT / name)
    pages = path / "pages"
    if pages.exists():
        shutil.rmtree(pages)
    pages.mkdir()
    for src in list((ROOT / "pages").iterdir()) + list(TEST_PAGES.iterdir()):
        if src.is_file():
            shutil.copy(src, pages / src.name)
    return path


class Introducer:
    """`python -m signaling` as a subprocess on 127.0.0.1; stop()/start() keep the port.
    root: the site to serve (default: the repository)."""

    def __init__(self, tmp_path, port=None, args=(), root=None, program=None):
        self.program = program or ["-m", "signaling"]  # or a test double's script
        self.port = port or free_port()
        self.args = list(args) + (["--root", str(root)] if root is not None else [])
        self.log_path = tmp_path / f"signaling-{self.port}.log"
        self.proc = None

    def base(self, node=0):
        return f"http://wraft{node}.localhost:{self.port}"

    def start(self, timeout=15.0):
        assert self.proc is None, "already running"
        log = open(self.log_path, "ab")
        cmd = [sys.executable, *self.program, "--host", "127.0.0.1",
               "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"signaling exited at start:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"signaling did not listen on {self.port}:\n{self.log()}")

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

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def wait_until(fn, timeout=15.0, interval=0.1, what="condition"):
    """Poll fn() until it returns a truthy value; that value is returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


# ----- the transport test page (tests/browser/pages/transport_harness.html) -----

_clusters = itertools.count()


def cluster_name(tag):
    return f"t{next(_clusters)}-{tag}"


def state(w):
    return json.loads(w.page.evaluate("wtState()"))


def open_nodes(srv, open_window, cluster, nodes=(0, 1, 2), runtimes=None):
    windows = []
    for n in nodes:
        runtime = (runtimes or {}).get(n)
        url = f"{srv.base(n)}/transport_harness?cluster={cluster}&node={n}"
        if runtime:
            url += "&runtime=" + runtime
        timeout = PYODIDE_LOAD_MS if runtime == "py" else 15_000
        windows.append(open_window(url, wait_for="body[data-ready]", timeout=timeout))
    return windows


def wait_mesh(windows, timeout=20.0):
    ids = [state(w)["node"] for w in windows]
    for w, me in zip(windows, ids):
        want = sorted(i for i in ids if i != me)
        wait_until(lambda: state(w)["up"] == want, timeout, what=f"node {me} up to {want}")


def send(w, peer, text):
    return w.page.evaluate("([p, t]) => wtSend(p, t)", [peer, text])


def exchange_all(windows, tag):
    """Every window sends one message to every other; all of them arrive."""
    ids = [state(w)["node"] for w in windows]
    for w, me in zip(windows, ids):
        for peer in ids:
            if peer != me:
                assert send(w, peer, f"{tag} {me}->{peer}") == "true"
    for w, me in zip(windows, ids):
        for peer in ids:
            if peer != me:
                wait_until(lambda: f"{tag} {peer}->{me}" in state(w)["log"].get(peer, []),
                           what=f"{tag} {peer}->{me}")
