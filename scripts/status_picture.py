"""Make docs/status-picture.png: the <raft-status> picture of a `wraft new`
starter, three windows in headless Chromium, after three notes and with
window 2 closed (so the picture shows a leader, a live follower with its
match index, and a member that is not connected). Runs the browser inside
the private network namespace (re-runs itself through scripts/in-netns):

    .venv/bin/python scripts/status_picture.py [OUT.png]
"""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wraft import chromium  # noqa: E402
from wraft.cluster import Cluster, wait_until  # noqa: E402
from wraft.server import Server  # noqa: E402
from wraft.starter import write_starter  # noqa: E402

OUT = ROOT / "docs" / "status-picture.png"


def main(argv):
    out = Path(argv[0]) if argv else OUT
    if os.environ.get("WRAFT_IN_NETNS") != "1":
        os.execv(str(ROOT / "scripts" / "in-netns"),
                 [str(ROOT / "scripts" / "in-netns"), sys.executable, __file__, str(out.resolve())])
    path, problem = chromium.find()
    if path is None:
        sys.exit("status_picture: " + problem)
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "myapp"
        write_starter(app)
        srv = Server(tmp, pages=[app]).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=path, headless=True, args=chromium.FLAGS)
                c = Cluster(browser, srv, "/myapp", size=3,
                            context_options={"viewport": {"width": 900, "height": 700}})
                c.open_all()
                leader = c.leader()
                for text in ("milk", "eggs", "bread"):
                    assert c.propose(leader, text).get("ok"), "the write failed"
                c.wait_committed(c.commit(leader))
                gone = next(i for i in range(3) if i != leader and i != (leader + 1) % 3)
                c.close(gone)
                page = c.pages[leader]
                wait_until(lambda: page.query_selector("raft-status svg"), timeout=10,
                           what="the status picture", describe=c.describe)
                # the closed window is drawn apart once its channel drops
                wait_until(lambda: str(gone) not in c.status(leader).get("peers", []), timeout=20,
                           what="window %d gone from the leader's peers" % gone,
                           describe=c.describe)
                page.wait_for_timeout(500)  # one more redraw: the election ring settles
                out.parent.mkdir(parents=True, exist_ok=True)
                page.locator("raft-status").screenshot(path=str(out))
                c.close_all()
                browser.close()
        finally:
            srv.stop()
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv[1:])
