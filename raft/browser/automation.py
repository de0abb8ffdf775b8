"""window.wraft: a small JSON-in/JSON-out surface of the App handle for
automation (the end-to-end tests) and the browser console (raft/browser/APP.md).

    await wraft.propose(jsonText)      -> '{"ok": result}' | '{"error": code}'
    await wraft.proposeMany(jsonList)  -> '{"ok": [result, ...]}' | '{"error": code}'
    await wraft.read()                 -> '{"ok": state.snapshot()}' | '{"error": code}'
    await wraft.changeMembership(op, node) -> '{"ok": config}' | '{"error", "reason"}'
    wraft.status()   the status dict + the runtime's counters + app_error
    wraft.state()    state.snapshot()       wraft.applied()  recent [index, command]
    wraft.sendRaw(peer, text)   raw text on the data channel to peer (tests inject garbage)
    wraft.isolate(jsonText)     drop every Raft message this window sends to the
                                listed peers ('[]' heals); channels stay up
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

    def propose_many(resolve, text):
        commands = json.loads(str(text))

        async def go():
            if not isinstance(commands, list):
                return {"error": "invalid"}
            return {"ok": await app.propose_many(commands)}
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

    blocked = []  # peers this window's messages do not reach (a test's partition)

    def isolate(text):
        """Partition, for tests: the driver looks up transport.send at every
        send, so a filter in front of it drops this window's messages to
        `peers`; the far side does the same, and the channels stay up."""
        transport = app.runtime.transport if app.runtime is not None else None
        if transport is None:
            return False
        blocked[:] = [str(p) for p in json.loads(str(text))]
        if not hasattr(transport, "unfiltered_send"):
            transport.unfiltered_send = transport.send
            transport.send = lambda peer, data: (peer not in blocked
                                                 and transport.unfiltered_send(peer, data))
        return True

    obj = Object.new()
    kept = []
    for name, fn in (("propose", propose), ("proposeMany", propose_many), ("read", read),
                     ("changeMembership", change_membership)):
        proxy = create_proxy(fn)
        kept.append(proxy)
        setattr(obj, name, as_promise(proxy))
    for name, fn in (("status", status), ("state", state), ("applied", applied),
                     ("sendRaw", send_raw), ("isolate", isolate)):
        proxy = create_proxy(fn)
        kept.append(proxy)
        setattr(obj, name, proxy)
    window.wraft = obj
    return kept
