"""The transport harness page's helpers; the names the benchmarks and the
replica tests import from the wraft plugin's modules (wraft/)."""

import itertools
import json
import shutil
from pathlib import Path

from wraft import chromium
from wraft.cluster import MPY_LOAD_MS, PYODIDE_LOAD_MS, wait_until  # noqa: F401 (re-exported)
from wraft.server import Server as Introducer, free_port  # noqa: F401 (re-exported)

ROOT = Path(__file__).resolve().parents[2]
TEST_PAGES = Path(__file__).resolve().parent / "pages"  # harness pages: served in tests only
CHROMIUM = chromium.find()[0] or "/usr/bin/chromium"
CHROMIUM_FLAGS = chromium.FLAGS


def test_site(path, root=ROOT):
    """A site root at `path` serving the repository `root` (default: this
    one) as it is plus the test pages (tests/browser/pages/*), which never
    ship with the apps: pages/ is a copy (the server refuses symlinks out of
    it), the rest are symlinks. The benchmarks serve another checkout so."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("raft", "components", "node_modules"):
        link = path / name
        if not link.exists():
            link.symlink_to(Path(root) / name)
    pages = path / "pages"
    if pages.exists():
        shutil.rmtree(pages)
    pages.mkdir()
    for src in list((Path(root) / "pages").iterdir()) + list(TEST_PAGES.iterdir()):
        if src.is_file():
            shutil.copy(src, pages / src.name)
    return path


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
