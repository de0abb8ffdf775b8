"""Headers on every response: a Content-Security-Policy that allows only what
the pages need, no Referer, no framing (the membership buttons must not be
clickjacked), no MIME sniffing, and a Server header without versions.

The CSP was found by loading every page under MicroPython and Pyodide in
Chromium with a stricter policy in report-only mode and allowing nothing
more than they used (tests/browser/test_security_headers.py fails on any
violation):
- script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval': our modules and the
  runtime's, no inline script; WebAssembly compilation (both interpreters
  are wasm); and string evaluation, which PyScript 0.7.31 itself needs (its
  core composes plugin hooks with Function(), e.g. the error plugin's
  onReady), as do raft/browser's FFI helpers (js.Function.new). It adds
  little here: a page that runs <script type="mpy"> runs code from its DOM
  anyway.
- worker-src 'self' blob:: a page bundle (/bundle/<page>.zip) is unpacked
  by PyScript's zip.js, which runs its inflater in a worker made from a
  blob: URL of its own code (without it no page that has a bundle loads).
- style-src 'self' 'unsafe-inline': the pages' <style> blocks and style=
  attributes (a style cannot run code).
- img-src 'self' data:: the `data:,` favicon.
- connect-src 'self': the runtime's fetches and the /ws WebSocket.
"""

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self' 'wasm-unsafe-eval' 'unsafe-eval'",
    "worker-src 'self' blob:",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])

SERVER_NAME = "wraft"

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP 2
    "Cross-Origin-Opener-Policy": "same-origin",
    "Server": SERVER_NAME,
}
