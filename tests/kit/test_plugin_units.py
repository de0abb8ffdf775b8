"""The wraft pytest plugin's choices, without a browser: which Chromium
(wraft/chromium.py), which network (wraft/netns.py), and what a failing
wait says (wraft/cluster.py)."""

import json
import os
import stat

import pytest

from wraft import chromium, netns
from wraft.cluster import Cluster, wait_until


def script(path, body):
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def bare_path(tmp_path, monkeypatch):
    """PATH holds only a scratch bin/; no Playwright cache."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path / "no-cache"))
    monkeypatch.delenv(chromium.ENV, raising=False)
    monkeypatch.setattr(chromium, "FALLBACK_DIRS", ())
    return bin_dir


def test_chromium_from_the_env_the_path_or_playwrights_download(bare_path, tmp_path, monkeypatch):
    assert chromium.find() == (None, "no Chromium found on the PATH; " + chromium.INSTALL_HINT)
    real = script(bare_path / "google-chrome", "exec true")
    assert chromium.find() == (str(real), None)
    monkeypatch.setenv(chromium.ENV, str(tmp_path / "nowhere"))
    path, problem = chromium.find()
    assert path is None and "WRAFT_CHROMIUM=" in problem and "not an executable" in problem
    monkeypatch.setenv(chromium.ENV, str(real))
    assert chromium.find() == (str(real), None)
    # Playwright's own download, when nothing else is there
    monkeypatch.delenv(chromium.ENV)
    real.unlink()
    cache = tmp_path / "no-cache"
    for build in ("chromium-1100", "chromium-999"):
        (cache / build / "chrome-linux").mkdir(parents=True)
        script(cache / build / "chrome-linux" / "chrome", "exec true")
    assert chromium.find() == (str(cache / "chromium-1100" / "chrome-linux" / "chrome"), None)


def test_a_snap_chromium_is_never_picked_and_the_message_says_why(bare_path, monkeypatch):
    # Ubuntu's /usr/bin/chromium-browser: a script that runs the snap
    snap = script(bare_path / "chromium-browser", "exec /snap/bin/chromium \"$@\"")
    path, problem = chromium.find()
    assert path is None and str(snap) in problem and "snap confinement" in problem
    assert "WRAFT_CHROMIUM" in problem and "playwright install chromium" in problem
    monkeypatch.setenv(chromium.ENV, str(snap))
    assert chromium.find()[1].startswith("WRAFT_CHROMIUM=%s is a snap" % snap)
    real = script(bare_path / "chromium", "exec true")  # found first on the list
    monkeypatch.delenv(chromium.ENV)
    assert chromium.find() == (str(real), None)


@pytest.fixture
def no_namespaces(tmp_path, monkeypatch):
    """An `unshare` that fails as Docker's default seccomp profile makes it fail."""
    bin_dir = tmp_path / "nsbin"
    bin_dir.mkdir()
    script(bin_dir / "unshare", "echo 'unshare: unshare failed: Operation not permitted' >&2; exit 1")
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    monkeypatch.delenv("WRAFT_IN_NETNS", raising=False)
    monkeypatch.delenv(netns.ENV, raising=False)


def test_without_namespaces_auto_falls_back_to_loopback_and_says_why(no_namespaces):
    net = netns.open_network()
    assert net.mode == "loopback" and net.prefix == []
    assert "Operation not permitted" in net.why and "--cap-add SYS_ADMIN" in net.why
    assert net.chromium_flags == ["--allow-loopback-in-peer-connection"]
    assert net.permissions == ["camera", "microphone"]
    assert net.firefox_prefs == {"media.peerconnection.ice.loopback": True}
    # asked for a namespace: a clear error with what to do instead
    with pytest.raises(netns.NetworkError, match="Operation not permitted.*wraft netns -- pytest"):
        netns.open_network("netns")


def test_the_mode_comes_from_the_env_and_inside_needs_a_namespace(monkeypatch):
    monkeypatch.delenv("WRAFT_IN_NETNS", raising=False)
    with pytest.raises(netns.NetworkError, match="use one of auto, inside, netns, loopback"):
        netns.open_network("elsewhere")
    with pytest.raises(netns.NetworkError, match="not in a private network namespace"):
        netns.open_network("inside")
    monkeypatch.setenv(netns.ENV, "loopback")
    assert netns.open_network().mode == "loopback"
    monkeypatch.setenv("WRAFT_IN_NETNS", "1")
    monkeypatch.setenv(netns.ENV, "auto")
    net = netns.open_network()
    assert (net.mode, net.prefix, net.chromium_flags) == ("inside", [], [])


def test_a_made_namespace_runs_programs_in_it(monkeypatch, tmp_path):
    if os.environ.get("WRAFT_IN_NETNS") != "1" and os.geteuid() != 0:
        pytest.skip("needs root or scripts/in-netns (user namespaces may be off)")
    net = netns.make_namespace()
    try:
        assert net.mode == "netns" and net.prefix[:3] == ["nsenter", "--target", str(net.holder.pid)]
        import subprocess
        out = subprocess.run(net.prefix + ["ip", "-o", "route"], capture_output=True, text=True,
                             check=True).stdout
        assert "default via 10.77.0.2 dev v0" in out  # the route Chromium wants
        wrapper = net.wrap("/bin/echo", tmp_path)
        assert subprocess.run([wrapper, "hi"], capture_output=True, text=True).stdout == "hi\n"
        ns = os.readlink("/proc/%d/ns/net" % net.holder.pid)
        assert ns != os.readlink("/proc/self/ns/net")
    finally:
        net.close()
    assert net.holder is None


class FakePage:
    def __init__(self, status):
        self._status = status

    def evaluate(self, expression, arg=None):
        if "wraft.status" in expression:
            return json.dumps(self._status)
        return self._status.get("attrs", {}).get(arg)


class FakeServer:
    def base(self, node):
        return "http://wraft%s.localhost:1" % node


def test_a_wait_that_times_out_names_every_window():
    c = Cluster(object(), FakeServer(), "/counter", name="demo")
    c.pages = [FakePage({"role": "follower", "term": 3, "leader": None, "commit": 7, "applied": 7,
                         "peers": ["2"]}),
               None,
               FakePage({"role": "follower", "term": 3, "leader": None, "commit": 9, "applied": 8,
                         "peers": ["0"], "error": "localStorage is full"})]
    c.contexts = [object(), object(), object()]  # window 1 was closed
    c.blocked = {0: {1}}
    with pytest.raises(AssertionError) as e:
        c.leader(timeout=0.3)
    c.close_all()
    text = str(e.value)
    assert "timed out after 0.3s waiting for one leader among windows [0, 2]" in text
    lines = text.splitlines()
    assert lines[1] == "cluster demo (/counter, http://wraftN.localhost:1):"
    assert lines[2].split() == ["node", "role", "term", "leader", "commit", "applied", "peers",
                                "error"]
    assert lines[3].split() == ["0", "follower", "3", "None", "7", "7", "2", "cut:1"]
    assert lines[4].split() == ["1", "(closed)"]
    assert lines[5].split()[:6] == ["2", "follower", "3", "None", "9", "8"]
    assert lines[5].endswith("localStorage is full")
    with pytest.raises(AssertionError, match="waiting for x; last: 0$"):
        wait_until(lambda: 0, timeout=0.1, what="x")
