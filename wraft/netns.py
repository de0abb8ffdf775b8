"""Where the test browsers and server run, so that WebRTC finds ICE candidates
and no test traffic leaves the machine.

Chromium gathers host candidates only on an interface that carries the
default route; loopback alone gives none. Three ways, best first:

  inside    this process already runs in a private network namespace
            (WRAFT_IN_NETNS=1: `wraft netns -- CMD` or the repository's
            scripts/in-netns); everything runs here.
  netns     make one: a holder process `unshare -n` (as root) or
            `unshare -rn` (a normal user, through a user namespace) sets up
            loopback plus a veth pair carrying a default route that leads
            nowhere; the server and the browsers are started in it with
            nsenter. The test process stays outside and drives the browser
            over Playwright's pipe.
  loopback  no namespace can be made (Docker's default seccomp profile,
            Ubuntu's AppArmor restriction of unprivileged user namespaces,
            macOS): Chromium runs here with --allow-loopback-in-peer-connection
            and every page is granted camera and microphone, which together
            (and only together) make it offer 127.0.0.1 candidates; the server
            binds 127.0.0.1. Pages on one machine then talk over loopback or
            the machine's own addresses, which never leave it.

WRAFT_NET=auto|inside|netns|loopback (or pytest --wraft-net) picks one; auto
takes the first that works and says why it fell back.
"""

import os
import shutil
import subprocess
import threading
from pathlib import Path

from wraft.chromium import LOOPBACK_FLAGS, LOOPBACK_PERMISSIONS

ENV = "WRAFT_NET"
MODES = ("auto", "inside", "netns", "loopback")
# The same network as the repository's scripts/in-netns.
SETUP = ("ip link set lo up && ip link add v0 type veth peer name v1 && "
         "ip addr add 10.77.0.1/24 dev v0 && ip link set v0 up && ip link set v1 up && "
         "ip route add default via 10.77.0.2 dev v0")
START_S = 10
HINTS = ("In Docker, run the container with --cap-add SYS_ADMIN (or --privileged); on Ubuntu "
         "24.04, allow unprivileged user namespaces (sysctl "
         "kernel.apparmor_restrict_unprivileged_userns=0) or run as root; or run the whole "
         "test command inside a namespace yourself: wraft netns -- pytest")


class NetworkError(RuntimeError):
    """No way to run the browsers was found (the message says what to do)."""


class Network:
    """mode, why (one line on how it was chosen), prefix (argv prefix that runs
    a program in the namespace), chromium_flags, permissions (for every
    Chromium context)."""

    def __init__(self, mode, why, prefix=(), holder=None):
        self.mode = mode
        self.why = why
        self.prefix = list(prefix)
        self.holder = holder
        loop = mode == "loopback"
        self.chromium_flags = list(LOOPBACK_FLAGS) if loop else []
        self.permissions = list(LOOPBACK_PERMISSIONS) if loop else []
        # Firefox: loopback candidates by preference
        self.firefox_prefs = {"media.peerconnection.ice.loopback": True} if loop else {}

    def wrap(self, program, workdir):
        """An executable that runs `program` in this network (for Playwright's
        executable_path: the pipe file descriptors pass through nsenter)."""
        if not self.prefix:
            return program
        path = Path(workdir) / ("wraft-netns-" + Path(program).name)
        path.write_text('#!/bin/sh\nexec %s "%s" "$@"\n' % (" ".join(self.prefix), program))
        path.chmod(0o755)
        return str(path)

    def close(self):
        if self.holder is not None:
            try:
                self.holder.stdin.close()  # the holder (cat) ends; the namespace goes with it
                self.holder.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.holder.kill()
                self.holder.wait(5)
            self.holder = None


def in_namespace():
    return os.environ.get("WRAFT_IN_NETNS") == "1"


def make_namespace():
    """A Network in a namespace of its own, or raises NetworkError(why)."""
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None and not os.access("/usr/sbin/" + tool, os.X_OK):
            raise NetworkError("%s is missing (util-linux, iproute2)" % tool)
    root = os.geteuid() == 0
    # As root: a network namespace only. Otherwise a user namespace too, in
    # which we are root and may set up the network.
    cmd = ["unshare", "-n"] if root else ["unshare", "-rn"]
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    holder = subprocess.Popen(cmd + ["--", "sh", "-c", SETUP + " && echo ready && exec cat"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env)
    line = []
    reader = threading.Thread(target=lambda: line.append(holder.stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_S)
    if not line or line[0].strip() != b"ready":
        holder.kill()
        err = holder.stderr.read().decode(errors="replace").strip() if holder.wait(5) is not None else ""
        raise NetworkError("`%s` failed: %s" % (" ".join(cmd), err or "no answer in %ds" % START_S))
    prefix = ["nsenter", "--target", str(holder.pid), "--net"]
    if not root:
        prefix += ["--user", "--preserve-credentials"]
    return Network("netns", "a private network namespace made with `%s`" % " ".join(cmd),
                   prefix + ["--"], holder)


def open_network(requested=None):
    """The Network for this run: WRAFT_NET or `requested` (default auto)."""
    mode = requested or os.environ.get(ENV) or "auto"
    if mode not in MODES:
        raise NetworkError("%s=%s: use one of %s" % (ENV, mode, ", ".join(MODES)))
    if mode == "inside" or (mode == "auto" and in_namespace()):
        if not in_namespace():
            raise NetworkError("%s=inside but this process is not in a private network "
                               "namespace (WRAFT_IN_NETNS != 1); run it under `wraft netns --`"
                               % ENV)
        return Network("inside", "already inside a private network namespace")
    if mode == "loopback":
        return Network("loopback", "asked for (%s=loopback)" % ENV)
    try:
        return make_namespace()
    except NetworkError as e:
        if mode == "netns":
            raise NetworkError("%s. %s" % (e, HINTS))
        return Network("loopback", "no private network namespace (%s); Chromium offers "
                       "loopback candidates instead. %s" % (e, HINTS))
