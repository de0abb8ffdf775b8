"""Which Chromium to drive, and with which flags.

WRAFT_CHROMIUM names the executable; otherwise the first of CANDIDATES on
the PATH (then /usr/bin, /usr/local/bin) that is a real program. Ubuntu's
`chromium` and `chromium-browser` are wrappers around a snap: snap
confinement keeps the browser out of the profile directory Playwright makes
under /tmp and out of a network namespace entered with nsenter, so a snap is
never picked. Without a usable Chromium, Playwright's own build is used when
it was downloaded (`python -m playwright install chromium`); else
`find()` says what to install.
"""

import os
import re
import shutil
from pathlib import Path

ENV = "WRAFT_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FALLBACK_DIRS = ("/usr/bin", "/usr/local/bin")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
# Where no private network namespace can be made (wraft/netns.py): Chromium
# offers loopback ICE candidates with this flag, and only to pages that hold
# a media capture permission (measured: either alone gives no candidate).
LOOPBACK_FLAGS = ["--allow-loopback-in-peer-connection"]
LOOPBACK_PERMISSIONS = ["camera", "microphone"]

INSTALL_HINT = ("install Chromium (Debian: apt install chromium), or "
                "`python -m playwright install chromium`, or set %s=/path/to/chrome" % ENV)


def is_snap(path):
    """True for a snap's binary or for a distribution's snap wrapper script."""
    real = os.path.realpath(path)
    if real.startswith("/snap/") or real == "/usr/bin/snap":
        return True
    try:
        with open(real, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"snap" in head


def _on_path(name):
    found = shutil.which(name)
    if found:
        return found
    for d in FALLBACK_DIRS:
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def playwright_chromium():
    """The newest Chromium that `python -m playwright install chromium`
    downloaded (its cache: PLAYWRIGHT_BROWSERS_PATH, else the default), or None."""
    base = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    roots = [Path(base)] if base and base != "0" else [
        Path.home() / ".cache" / "ms-playwright", Path.home() / "Library" / "Caches" / "ms-playwright"]
    found = []
    for root in roots:
        for pattern in ("chromium-*/chrome-linux*/chrome",
                        "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
                        "chromium-*/chrome-mac*/Google Chrome for Testing.app/Contents/MacOS/"
                        "Google Chrome for Testing"):
            found += [p for p in root.glob(pattern) if os.access(p, os.X_OK)]
    return str(max(found, key=lambda p: int(re.search(r"chromium-(\d+)", str(p)).group(1)))) \
        if found else None


def find():
    """(executable path, None), or (None, why not and what to do).

    An executable of None with no problem never happens: the caller can
    launch Playwright with executable_path=path."""
    asked = os.environ.get(ENV)
    if asked:
        if not os.access(asked, os.X_OK) or Path(asked).is_dir():
            return None, "%s=%s is not an executable file" % (ENV, asked)
        if is_snap(asked):
            return None, ("%s=%s is a snap: snap confinement keeps it out of Playwright's "
                          "profile in /tmp and out of network namespaces; %s"
                          % (ENV, asked, INSTALL_HINT))
        return asked, None
    snaps = []
    for name in CANDIDATES:
        path = _on_path(name)
        if path is None:
            continue
        if is_snap(path):
            snaps.append(path)
            continue
        return path, None
    downloaded = playwright_chromium()
    if downloaded:
        return downloaded, None
    if snaps:
        return None, ("only a snap Chromium was found (%s): snap confinement keeps it out of "
                      "Playwright's profile in /tmp and out of network namespaces; %s"
                      % (", ".join(snaps), INSTALL_HINT))
    return None, "no Chromium found on the PATH; " + INSTALL_HINT
