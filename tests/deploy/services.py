"""The hosting kit's services, run for real for the tests: Caddy with its
internal CA in front of the server, coturn with short-lived credentials, and
a second "machine" (a network namespace joined to ours by a veth pair).

Everything listens inside the private namespace of scripts/in-netns (or on
127.0.0.1); every process started here is stopped by its owner's stop().
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def wait_for(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out after %ss waiting for %s" % (timeout, what))


def tcp_open(host, port):
    try:
        socket.create_connection((host, port), timeout=0.2).close()
        return True
    except OSError:
        return False


class Process:
    """A child process with its output in a log file; stop() ends it (and only it)."""

    def __init__(self, name, log_path):
        self.name = name
        self.log_path = Path(log_path)
        self.proc = None

    def spawn(self, cmd, env=None, cwd=None):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)

    def check_running(self):
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("%s exited:\n%s" % (self.name, self.log()))

    def log(self, tail=6000):
        """The end of its output (all of it with tail=None)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text if tail is None else text[-tail:]

    def count(self, text):
        return self.log(tail=None).count(text)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


# ----- Caddy ---------------------------------------------------------------

class Caddy(Process):
    """Debian's caddy serving deploy/caddy/wraft.caddy as it is, for
    wraft0/1/2.localhost (its internal CA: *.localhost never goes to ACME),
    proxying to the server at `upstream`. The global options keep it from
    touching the system: no trust-store install, no admin endpoint, its
    data (the CA) under `workdir`."""

    def __init__(self, workdir, upstream, https_port=443, http_port=80, domain="localhost"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().__init__("caddy", self.workdir / "caddy.log")
        self.upstream = upstream
        self.https_port = https_port
        self.http_port = http_port
        self.domain = domain

    @property
    def ca_cert(self):
        return self.workdir / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def base(self, node):
        port = "" if self.https_port == 443 else ":%d" % self.https_port
        return "https://wraft%d.%s%s" % (node, self.domain, port)

    def start(self, timeout=30):
        conf = self.workdir / "Caddyfile"
        conf.write_text(
            "{\n\tadmin off\n\tskip_install_trust\n\tlocal_certs\n"
            "\thttps_port %d\n\thttp_port %d\n}\n\nimport %s\n"
            % (self.https_port, self.http_port, DEPLOY / "caddy" / "wraft.caddy"))
        env = dict(os.environ, HOME=str(self.workdir), XDG_DATA_HOME=str(self.workdir / "data"),
                   XDG_CONFIG_HOME=str(self.workdir / "config"),
                   WRAFT_DOMAIN=self.domain, WRAFT_UPSTREAM=self.upstream)
        self.spawn(["caddy", "run", "--config", str(conf), "--adapter", "caddyfile"], env=env)
        try:
            wait_for(lambda: (self.check_running() or True) and self.ca_cert.exists()
                     and tcp_open("127.0.0.1", self.https_port), timeout, "caddy on :%d" % self.https_port)
        except Exception:
            self.stop()
            raise
        return self


def nss_trust(home, ca_cert, name="wraft-test-ca"):
    """An NSS database in `home`/.pki/nssdb that trusts `ca_cert` for TLS
    servers: what Chromium on Linux reads (run it with HOME=home)."""
    db = Path(home) / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-d", "sql:%s" % db, "-N", "--empty-password"], check=True,
                   capture_output=True)
    subprocess.run(["certutil", "-d", "sql:%s" % db, "-A", "-t", "C,,", "-n", name,
                    "-i", str(ca_cert)], check=True, capture_output=True)
    return db


# ----- coturn --------------------------------------------------------------

ALLOCATED = "ALLOCATE processed, success"  # coturn's log line for a relay handed out


class Coturn(Process):
    """Debian's coturn with deploy/coturn/turnserver.conf, its CHANGE lines
    set for this namespace: listening on `address`, relaying from it, the
    given secret, and `allow` (the namespace's own range, which the recipe
    refuses to relay to by default)."""

    def __init__(self, workdir, address, secret, allow=(), port=3478):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        super().__init__("turnserver", self.workdir / "turnserver.log")
        self.address = address
        self.secret = secret
        self.allow = list(allow)
        self.port = port

    def config(self):
        changes = {"listening-ip": self.address, "relay-ip": self.address,
                   "listening-port": str(self.port), "static-auth-secret": self.secret,
                   "realm": "wraft.test"}
        out = []
        for line in (DEPLOY / "coturn" / "turnserver.conf").read_text().splitlines():
            key = line.split("=", 1)[0]
            out.append("%s=%s" % (key, changes.pop(key)) if key in changes else line)
        assert not changes, "the recipe lost its %s line" % ", ".join(changes)
        out += ["allowed-peer-ip=%s" % a for a in self.allow]
        out += ["log-file=stdout", "verbose", "pidfile=%s" % (self.workdir / "turnserver.pid"),
                "userdb=%s" % (self.workdir / "turndb")]
        return "\n".join(out) + "\n"

    def start(self, timeout=15):
        conf = self.workdir / "turnserver.conf"
        conf.write_text(self.config())
        self.spawn([tool("turnserver"), "-c", str(conf)])
        try:
            wait_for(lambda: (self.check_running() or True) and self.answers_stun(),
                     timeout, "coturn on %s:%d" % (self.address, self.port))
        except Exception:
            self.stop()
            raise
        return self

    def answers_stun(self):
        """A STUN binding request (RFC 5389) gets a success response."""
        tid = os.urandom(12)
        req = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + tid
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            try:
                s.sendto(req, (self.address, self.port))
                data = s.recv(2048)
            except OSError:
                return False
        return data[:2] == b"\x01\x01" and data[8:20] == tid


# ----- a second machine ----------------------------------------------------

class SecondMachine:
    """Another network namespace (machine B), joined to this one (A) by a
    veth pair on its own subnet: A is `a_addr`, B is `b_addr`, and B's
    default route goes through A. `prefix` runs a command inside B.

    Needs CAP_SYS_ADMIN over this namespace: root, or inside `unshare -rn`
    (scripts/in-netns gives both)."""

    def __init__(self, a_addr="10.78.0.1", b_addr="10.78.0.2", a_dev="vA", b_dev="vB"):
        self.a_addr, self.b_addr = a_addr, b_addr
        self.a_dev, self.b_dev = a_dev, b_dev
        self.holder = None

    @property
    def prefix(self):
        return ["nsenter", "--target", str(self.holder.pid), "--net", "--"]

    def _ip(self, *args, inside=False):
        cmd = (self.prefix if inside else []) + ["ip", *args]
        subprocess.run(cmd, check=True, capture_output=True)

    def start(self):
        # The namespace lives as long as this sleeping process.
        self.holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "3600"],
                                       stdin=subprocess.DEVNULL)
        wait_for(lambda: os.readlink("/proc/%d/ns/net" % self.holder.pid)
                 != os.readlink("/proc/self/ns/net"), 5, "the second namespace")
        try:
            self._ip("link", "add", self.a_dev, "type", "veth", "peer", "name", self.b_dev)
            # No IPv6 link-local address on the pair: its duplicate-address
            # detection ends a second or two after the link comes up, and a
            # running Chromium in A takes that address change for a network
            # change and aborts every fetch in flight (ERR_NETWORK_CHANGED).
            for dev in (self.a_dev, self.b_dev):
                self._ip("link", "set", dev, "addrgenmode", "none")
            self._ip("link", "set", self.b_dev, "netns", str(self.holder.pid))
            self._ip("addr", "add", self.a_addr + "/24", "dev", self.a_dev)
            self._ip("link", "set", self.a_dev, "up")
            self._ip("link", "set", "lo", "up", inside=True)
            self._ip("addr", "add", self.b_addr + "/24", "dev", self.b_dev, inside=True)
            self._ip("link", "set", self.b_dev, "up", inside=True)
            self._ip("route", "add", "default", "via", self.a_addr, inside=True)
            wait_for(lambda: self._up(self.a_dev), 5, "the veth pair to come up")
        except Exception:
            self.stop()
            raise
        return self

    def _up(self, dev):
        out = subprocess.run(["ip", "-o", "link", "show", dev], capture_output=True, text=True)
        return "state UP" in out.stdout

    def wrapper(self, workdir, program):
        """An executable that runs `program` inside B (for Playwright's
        executable_path: the pipe file descriptors pass through nsenter)."""
        path = Path(workdir) / ("in-b-" + Path(program).name)
        path.write_text("#!/bin/sh\nexec %s %s \"$@\"\n" % (" ".join(self.prefix), program))
        path.chmod(0o755)
        return str(path)

    def stop(self):
        if self.holder is None:
            return
        self.holder.kill()  # its namespace goes with it, and the veth pair too
        self.holder.wait(10)
        self.holder = None
        subprocess.run(["ip", "link", "del", self.a_dev], capture_output=True)


def tool(program):
    """The path of a Debian tool (nginx, turnserver live in /usr/sbin, which a
    normal user's PATH may lack), or None."""
    found = shutil.which(program)
    if found is None and os.access("/usr/sbin/" + program, os.X_OK):
        found = "/usr/sbin/" + program
    return found


def have(*programs):
    """The programs that are missing."""
    return [p for p in programs if tool(p) is None]
