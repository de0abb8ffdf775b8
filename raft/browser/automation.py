"""window.wraft: a small JSON-in/JSON-out surface of the App handle for
automation (the end-to-end tests) and the browser console (raft/browser/APP.md).

    await wraft.propose(jsonText)      -> '{"ok": result}' | '{"error": code}'
    await wraft.read()                 -> '{"ok": state.snapshot()}' | '{"error": code}'
    await wraft.changeMembership(op, node) -> '{"ok": config}' | '{"error", "reason"}'
    wraft.status()   the status dict + the runtime's counters + app_error
    wraft.state()    state.snapshot()       wraft.applied()  recent [index, command]
    wraft.sendRaw(peer, text)   raw text on the data channel to peer (tests inject garbage)
"""

import asyncio
import json


def expose(app):
    """Set window.wraft for `app`; returns the proxies to keep for the page's life."""
    from js import Function, Object, window
    from pyscript.ffi import create_proxy

    # JS makes the Promise and hands its resolve to Python, which calls it with
    # JSON text when the work is done (no Python-built Promise executors).
    as_promise = Function.new("py", "return (...a) => new Promise(resolve => py(resolve, ...a))")

    def spawn(resolve, coro_fn):
        async def run():
            try:
                out = await coro_fn()
            except Exception as e:
                out = {"error": getattr(e, "error", None) or repr(e)}
            resolve(json.dumps(out))
        asyncio.get_event_loop().create_task(run())

    def propose(resolve, text):
        command = json.loads(str(text))

        async def go():
            return {"ok": await app.propose(command)}
        spawn(resolve, go)

    def read(resolve):
        async def go():
            await app.read()
            return {"ok": app.state.snapshot()}
        spawn(resolve, go)

    def change_membership(resolve, op, node):
        op, node = str(op), str(node)
        spawn(resolve, lambda: app.membership_action(op, node))

    def status():
        info = app.status()
        info["app_error"] = app.error
        if app.runtime is not None:
            info.update(app.runtime.diagnostics())
        return json.dumps(info)

    def state():
        return json.dumps(app.state.snapshot())

    def applied():
        return json.dumps(app.applied)

    def send_raw(peer, text):
        transport = app.runtime.transport if app.runtime is not None else None
        return bool(transport.send(str(peer), str(text))) if transport is not None else False

    obj = Object.new()
    kept = []
    for name, fn in (("propose", propose), ("read", read),
                     ("changeMembership", change_membership)):
        proxy = create_proxy(fn)
        kept.append(proxy)
        setattr(obj, name, as_promise(proxy))
    for name, fn in (("status", status), ("state", state), ("applied", applied),
                     ("sendRaw", send_raw)):
        proxy = create_proxy(fn)
        kept.append(proxy)
        setattr(obj, name, proxy)
    window.wraft = obj
    return kept
