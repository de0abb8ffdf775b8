"""Helpers at the JS boundary that behave the same on MicroPython and Pyodide.

Why: the two runtimes convert values differently (JS null is None on
MicroPython but jsnull on Pyodide; JS undefined is truthy on MicroPython;
len() of a JS array fails on MicroPython; dict -> JS object differs; MicroPython
wraps integral JS numbers beyond 32 bits), so we cross the boundary as JSON
text and keep Python-side values plain. Worst: on MicroPython 1.28 a JS
exception thrown by a synchronous call cannot be caught in Python; it unwinds
the whole Python call (finally blocks skipped). Awaited promise rejections do
arrive as a catchable JsException. So calls that may throw go through the JS
wrappers here.
"""

import json
import sys

import js
from pyscript.ffi import create_proxy

MICROPYTHON = sys.implementation.name == "micropython"


def to_js(value):
    """A plain JS object/array built from a JSON-able Python value."""
    return js.JSON.parse(json.dumps(value))


_try_new = js.Function.new(
    "C", "arg", "try { return new C(arg) } catch (e) { return 'error: ' + e }"
)


def try_new(cls, arg):
    """new cls(arg) that raises a Python RuntimeError if the constructor throws."""
    obj = _try_new(cls, arg)
    if isinstance(obj, str):
        raise RuntimeError(obj)
    return obj


_sender = js.Function.new(
    "o", "return t => { try { o.send(t); return true } catch (e) { return false } }"
)


def safe_sender(obj):
    """A JS function t -> bool sending t with obj.send, False where it would throw
    (e.g. a data channel that started closing). One FFI call per message."""
    return _sender(obj)


_received = js.Function.new(
    "pc",
    "try { return pc.getStats().then(r => { let n = 0;"
    " r.forEach(s => { if (s.type === 'transport') n += (s.bytesReceived || 0); });"
    " return String(n); }, () => ''); } catch (e) { return Promise.resolve(''); }",
)


async def bytes_received(pc):
    """Bytes this RTCPeerConnection has received (as text: may pass 2**31), or ''.
    Counted by the browser's network thread, so it moves even while the
    peer's page is too busy to answer a ping (its SCTP still acknowledges)."""
    return await _received(pc)


# PyScript's MicroPython starts with gc.threshold() at 16 KiB (the bench
# page reads 16384): a collection after every 16 KiB allocated, and a
# pipelined write allocates about that much every few writes. Collecting
# every GC_THRESHOLD bytes instead: in benchmarks/pipe_lab.py (Node.js, the
# three nodes in one heap, which overstates a page's share) CPU per write
# ~570 -> ~190 us; in the browser bench (load 6-14 on 2 cores, medians of
# 3-5 runs) batched 4,670 -> 5,682 writes/s, pipelined/core 0.31 -> 0.39.
# A page's live heap is a few MB, so a page grows by at most this much.
GC_THRESHOLD = 16 * 1024 * 1024


def tune_gc(threshold=GC_THRESHOLD):
    """Collect every `threshold` bytes allocated (MicroPython only; a no-op
    under Pyodide, whose CPython frees most objects by reference counting).
    Returns whether it applied."""
    import gc
    if not MICROPYTHON or not hasattr(gc, "threshold"):
        return False
    gc.threshold(threshold)
    return True


# A kept JS function: one FFI call (~2 us on MicroPython) instead of two
# attribute lookups and a call (~13 us); the runtimes read the clock per message.
_now = js.Function.new("return performance.now()")


def now_ms():
    """Milliseconds since the page loaded (monotonic, float).

    Not Date.now(): MicroPython wraps integral JS numbers to 32 bits, so
    Date.now() (about 1.8e12) arrives mangled there.
    """
    return _now()


# Divide on the JS side, for the same reason (the result fits 31 bits until 2038).
_unix_seconds = js.Function.new("return Math.floor(Date.now() / 1000)")


def unix_seconds():
    """Wall-clock unix time in whole seconds."""
    return int(_unix_seconds())


def rand():
    """A float in [0, 1) from the browser (MicroPython's seed may be fixed)."""
    return js.Math.random()


_random_hex = js.Function.new(
    "n", "const b = crypto.getRandomValues(new Uint8Array(n));"
    " return Array.from(b, x => x.toString(16).padStart(2, '0')).join('')")


def random_hex(nbytes):
    """`nbytes` cryptographically random bytes as hex text. getRandomValues
    works in plain-http pages too (only crypto.subtle needs a secure context)."""
    return str(_random_hex(nbytes))


# Firefox implements RTCPeerConnection in privileged JS: a Pyodide proxy set
# as one of its event handlers reaches it as an opaque object ("TypeError:
# ({}) is not a function") and never runs. A plain JS function in front works.
_plain_function = js.Function.new("f", "return function (e) { return f(e) }")


class Proxies:
    """Owns create_proxy callbacks: JS may call them until release()."""

    def __init__(self):
        self._items = []

    def make(self, fn):
        p = create_proxy(fn)
        self._items.append(p)
        return p

    def handler(self, fn):
        """make(fn) behind a plain JS function: for the event handlers of
        RTCPeerConnection (see _plain_function)."""
        return _plain_function(self.make(fn))

    def release(self):
        items, self._items = self._items, []
        if MICROPYTHON:
            return  # MicroPython proxies have no destroy(); dropping refs is all we can do
        for p in items:
            try:
                p.destroy()
            except Exception:
                pass
