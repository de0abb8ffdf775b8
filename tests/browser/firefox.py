"""Debian's firefox-esr driven over its built-in WebDriver BiDi (W3C), for the tests.

Why not a client library: the pinned Playwright cannot drive Firefox ESR
(`emulation.setMediaFeaturesOverride: unknown command` on every context);
Selenium needs geckodriver, which Debian does not package; marionette-driver
(Firefox-only protocol) pulls in Mozilla's whole mozrunner/mozprofile/mozlog
tree and has no per-window storage or console capture; puppeteer-core would
put a Node.js bridge between pytest and the browser. WebDriver BiDi is built
into Firefox and needs one WebSocket (the pinned `websockets`) and the
handful of commands below: user contexts (a fresh storage partition per
window, like Playwright's contexts), navigation, script calls, key and
pointer input, console and uncaught-error events.

The page object answers the subset of Playwright's sync Page that the tests
use (goto, reload, evaluate, wait_for_selector, fill, press, click, on,
close), so a window is used the same way in either browser.

Firefox runs headless from a throwaway profile with telemetry, updates,
safe browsing, captive-portal detection and DNS-over-HTTPS off, under
MOZ_DISABLE_NONLOCAL_CONNECTIONS=1, so it makes no outside lookups.
"""

import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

from websockets.sync.client import connect

FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"
START_S = 60  # cold start with a new profile: ~3 s idle, far more on a busy machine
COMMAND_S = 30
LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")

PREFS = {
    # no first-run pages, no session restore
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "",
    "startup.homepage_welcome_url.additional": "",
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.sessionstore.resume_from_crash": False,
    "browser.tabs.warnOnClose": False,
    "toolkit.startup.max_resumed_crashes": -1,
    # telemetry, studies, update, remote settings
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": "",
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.update.disabledForTesting": True,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "browser.region.update.enabled": False,
    "browser.region.network.url": "",
    "geo.provider.network.url": "",
    # safe browsing, captive portal, connectivity checks, DNS over HTTPS, prefetch
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.google.updateURL": "",
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "network.captive-portal-service.enabled": False,
    "captivedetect.canonicalURL": "",
    "network.connectivity-service.enabled": False,
    "network.trr.mode": 5,  # off by choice
    "network.proxy.type": 0,  # direct: no proxy auto-detection
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "security.OCSP.enabled": 0,
    "security.remote_settings.crlite_filters.enabled": False,
    # WebRTC: plain host candidates, as Chromium's WebRtcHideLocalIpsWithMdns off
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # several windows of one process all run at full speed
    "dom.min_background_timeout_value": 4,
    "dom.timeout.enable_budget_timer_throttling": False,
}


class BidiError(RuntimeError):
    pass


def user_js(prefs):
    return "".join("user_pref(%s, %s);\n" % (json.dumps(k), json.dumps(v))
                   for k, v in sorted(prefs.items()))


class Firefox:
    """One headless firefox-esr process and its BiDi session; `prefs` are
    added to PREFS."""

    def __init__(self, workdir, prefs=None):
        self.workdir = Path(workdir)
        self.profile = self.workdir / "profile"
        self.prefs = dict(PREFS, **(prefs or {}))
        self.proc = None
        self.ws = None
        self.stderr_tail = []
        self._ids = itertools.count(1)
        self._pending = {}  # id -> [threading.Event, message]
        self._listeners = {}  # browsing context id -> callback(event params)
        self._lock = threading.Lock()
        self.version = None

    # ----- process and session -----

    def start(self, timeout=START_S):
        self.profile.mkdir(parents=True, exist_ok=True)
        (self.profile / "user.js").write_text(user_js(self.prefs))
        env = dict(os.environ, MOZ_DISABLE_NONLOCAL_CONNECTIONS="1", MOZ_CRASHREPORTER_DISABLE="1",
                   MOZ_HEADLESS="1", HOME=str(self.workdir))
        cmd = [FIREFOX, "--headless", "--no-remote", "--profile", str(self.profile),
               "--remote-debugging-port=0", "about:blank"]
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        found = threading.Event()
        url = []

        def read_stderr():
            with open(self.workdir / "firefox.log", "ab") as log:
                for raw in self.proc.stderr:
                    log.write(raw)
                    line = raw.decode(errors="replace").rstrip()
                    self.stderr_tail = (self.stderr_tail + [line])[-40:]
                    m = LISTENING.search(line)
                    if m and not found.is_set():
                        url.append(m.group(1))
                        found.set()
            found.set()

        threading.Thread(target=read_stderr, daemon=True).start()
        if not found.wait(timeout) or not url:
            self.close()
            raise RuntimeError("firefox-esr printed no WebDriver BiDi address within %ss:\n%s"
                               % (timeout, "\n".join(self.stderr_tail)))
        self.ws = connect(url[0] + "/session", max_size=None, open_timeout=timeout, proxy=None,
                          legacy=True)  # a plain connection we close ourselves
        threading.Thread(target=self._read_socket, daemon=True).start()
        caps = self.command("session.new", {"capabilities": {}})["capabilities"]
        self.version = caps.get("browserVersion")
        self.command("session.subscribe", {"events": ["log.entryAdded"]})
        return self

    def _read_socket(self):
        try:
            for raw in self.ws:
                msg = json.loads(raw)
                if msg.get("type") == "event":
                    params = msg.get("params") or {}
                    ctx = (params.get("source") or {}).get("context")
                    callback = self._listeners.get(ctx)
                    if callback is not None:
                        try:
                            callback(msg.get("method"), params)
                        except Exception as e:  # a listener's bug must not stop the reader
                            self.stderr_tail.append("listener failed: %r" % e)
                    continue
                with self._lock:
                    slot = self._pending.get(msg.get("id"))
                if slot is not None:
                    slot[1] = msg
                    slot[0].set()
        except Exception:
            pass
        with self._lock:  # the socket is gone: wake every waiter
            for slot in self._pending.values():
                slot[0].set()

    def command(self, method, params=None, timeout=COMMAND_S):
        if self.ws is None:
            raise BidiError("Firefox is not running")
        cid = next(self._ids)
        slot = [threading.Event(), None]
        with self._lock:
            self._pending[cid] = slot
        try:
            self.ws.send(json.dumps({"id": cid, "method": method, "params": params or {}}))
            if not slot[0].wait(timeout):
                raise BidiError("%s: no answer within %ss" % (method, timeout))
        finally:
            with self._lock:
                self._pending.pop(cid, None)
        msg = slot[1]
        if msg is None:
            raise BidiError("%s: connection to Firefox lost\n%s"
                            % (method, "\n".join(self.stderr_tail[-10:])))
        if msg.get("type") == "error":
            raise BidiError("%s: %s: %s" % (method, msg.get("error"), msg.get("message")))
        return msg.get("result") or {}

    def new_context(self, **_playwright_options):
        """A fresh storage partition (cookies, localStorage), like a Playwright context."""
        return FirefoxContext(self, self.command("browser.createUserContext")["userContext"])

    def close(self):
        asked = self.ws is not None  # browser.close sent: give it time to exit by itself
        if asked:
            try:
                self.command("browser.close", timeout=10)
            except BidiError:
                pass
            self.ws.close()
            self.ws = None
        if self.proc is not None:
            try:
                self.proc.wait(10 if asked else 0.1)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


class FirefoxContext:
    def __init__(self, firefox, user_context):
        self.firefox = firefox
        self.id = user_context
        self.pages = []

    def new_page(self):
        page = FirefoxPage(self.firefox, self.id)
        self.pages.append(page)
        return page

    def close(self):
        for page in self.pages:
            page.close()
        try:
            self.firefox.command("browser.removeUserContext", {"userContext": self.id})
        except BidiError:
            pass


class ConsoleMessage:
    """What a Playwright console callback gets: .type and .text."""

    def __init__(self, type_, text):
        self.type = type_
        self.text = text


# script.callFunction wrapper: Playwright's evaluate() semantics (a function
# expression is called with the argument; promises are awaited), the result
# crossing as JSON text; a value JSON cannot carry (a function, a node)
# arrives as true, or None when it is falsy.
_EVALUATE = ("async (argText) => { const arg = JSON.parse(argText); let v = (%s);"
             " if (typeof v === 'function') v = v(arg); v = await v;"
             " const t = JSON.stringify(v); return t === undefined ? (v ? 'true' : 'null') : t; }")

WAIT = {"commit": "none", "domcontentloaded": "interactive", "load": "complete"}
KEYS = {"Enter": "\ue007", "Escape": "\ue00c", "Tab": "\ue004", "Backspace": "\ue003"}


class FirefoxPage:
    """One top-level Firefox window: the subset of Playwright's Page the tests use."""

    def __init__(self, firefox, user_context):
        self.firefox = firefox
        self.url = "about:blank"
        self._handlers = {"console": [], "pageerror": []}
        self.context = firefox.command("browsingContext.create",
                                       {"type": "window", "userContext": user_context})["context"]
        firefox._listeners[self.context] = self._on_event

    def _on_event(self, method, params):
        if method != "log.entryAdded":
            return
        text = params.get("text") or ""
        if params.get("type") == "javascript":  # an uncaught error
            for cb in self._handlers["pageerror"]:
                cb(text)
            return
        level = params.get("level") or "info"
        kind = {"warn": "warning", "info": params.get("method") or "log"}.get(level, level)
        for cb in self._handlers["console"]:
            cb(ConsoleMessage(kind, text))

    def on(self, event, callback):
        self._handlers[event].append(callback)

    def goto(self, url, wait_until="load", timeout=60_000):
        self.url = url
        self.firefox.command("browsingContext.navigate",
                             {"context": self.context, "url": url, "wait": WAIT[wait_until]},
                             timeout=timeout / 1000)

    def reload(self, wait_until="load", timeout=60_000):
        self.firefox.command("browsingContext.reload",
                             {"context": self.context, "wait": WAIT[wait_until]},
                             timeout=timeout / 1000)

    def evaluate(self, expression, arg=None):
        result = self.firefox.command("script.callFunction", {
            "functionDeclaration": _EVALUATE % expression,
            "arguments": [{"type": "string", "value": json.dumps(arg)}],
            "target": {"context": self.context},
            "awaitPromise": True,
            "resultOwnership": "none",
        })
        if result.get("type") == "exception":
            details = result.get("exceptionDetails") or {}
            raise BidiError("evaluate(%r) threw: %s" % (expression[:80], details.get("text")))
        return json.loads(result["result"]["value"])

    def wait_for_function(self, expression, arg=None, timeout=30_000):
        """Poll evaluate(expression, arg) until it is truthy; returns it. A
        navigation in progress (no document to run in yet) counts as falsy."""
        deadline = time.monotonic() + timeout / 1000
        while True:
            try:
                value = self.evaluate(expression, arg)
            except BidiError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError("%s: %s not true within %d ms" % (self.url, expression[:80], timeout))
            time.sleep(0.05)

    def wait_for_selector(self, selector, state="visible", timeout=30_000):
        """Wait until `selector` matches (state 'attached') or matches a
        rendered element ('visible')."""
        check = ("s => { const e = document.querySelector(s[0]); if (!e) return false;"
                 " return s[1] !== 'visible' || e.getClientRects().length > 0; }")
        self.wait_for_function(check, [selector, state], timeout)

    def _element(self, selector):
        found = self.firefox.command("script.callFunction", {
            "functionDeclaration": "s => { const e = document.querySelector(s);"
                                   " if (e) e.scrollIntoView({block: 'center'}); return e; }",
            "arguments": [{"type": "string", "value": selector}],
            "target": {"context": self.context}, "awaitPromise": False,
        })["result"]
        if found.get("type") != "node":
            raise BidiError("%s: nothing matches %r" % (self.url, selector))
        return {"sharedId": found["sharedId"]}

    def _actions(self, *sources):
        self.firefox.command("input.performActions", {"context": self.context, "actions": list(sources)})

    def click(self, selector):
        """A real mouse click in the middle of the element."""
        self._actions({"type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                       "actions": [{"type": "pointerMove", "x": 0, "y": 0,
                                    "origin": {"type": "element", "element": self._element(selector)}},
                                   {"type": "pointerDown", "button": 0},
                                   {"type": "pointerUp", "button": 0}]})

    def _keys(self, keys):
        acts = []
        for k in keys:
            acts += [{"type": "keyDown", "value": k}, {"type": "keyUp", "value": k}]
        self._actions({"type": "key", "id": "keyboard", "actions": acts})

    def fill(self, selector, text):
        """Click into the field, clear it, then type `text` key by key."""
        self.click(selector)
        self.evaluate("s => { const e = document.querySelector(s); e.select && e.select(); }", selector)
        self._keys([KEYS["Backspace"]] + list(text))

    def press(self, selector, key):
        self.click(selector)
        self._keys([KEYS.get(key, key)])

    def close(self):
        if self.context is None:
            return
        self.firefox._listeners.pop(self.context, None)
        try:
            self.firefox.command("browsingContext.close", {"context": self.context}, timeout=10)
        except BidiError:
            pass
        self.context = None


# ----- pytest fixtures (import them into a test module) -----

import pytest  # noqa: E402


def firefox_unavailable_reason():
    if os.environ.get("WRAFT_IN_NETNS") != "1":
        return "browser tests run only inside scripts/in-netns (WRAFT_IN_NETNS != 1)"
    if not os.access(FIREFOX, os.X_OK):
        return "%s is missing (make setup-test installs Debian's firefox-esr)" % FIREFOX
    return None


@pytest.fixture(scope="session")
def firefox(tmp_path_factory):
    """One headless firefox-esr for the session; new_context() per window."""
    reason = firefox_unavailable_reason()
    if reason is not None:
        if os.environ.get("WRAFT_REQUIRE_BROWSER") == "1":
            pytest.fail("WRAFT_REQUIRE_BROWSER=1 but " + reason, pytrace=False)
        pytest.skip(reason)
    ff = Firefox(tmp_path_factory.mktemp("firefox")).start()
    yield ff
    ff.close()


class Mix:
    """A stand-in browser whose new_context() comes from each of `browsers` in
    turn, round and round, so the helpers written for one browser (a context
    per window, windows 0, 1, 2 in that order) open a mixed cluster:
    Cluster(Mix([chromium, chromium, firefox]), ...)."""

    def __init__(self, browsers):
        self.browsers = list(browsers)
        self._next = itertools.cycle(self.browsers)

    def new_context(self, **options):
        return next(self._next).new_context(**options)
