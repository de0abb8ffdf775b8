"""The layering rules, read from the source (no browser):
no import cycle, no arrow from raft/ up to components/, js/pyscript only in
raft/browser/ (and there not in the modules that are tested in CPython),
and components use only what raft/browser/APP.md documents of the handle."""

import ast

import pytest

from test_pyscript_config import ROOT, imported_modules

# raft/browser modules that import neither js nor pyscript (tested in CPython)
PURE_BROWSER = ("runtime", "driver", "client_driver", "client_hub", "status_html", "timings")
# What components may use of the App handle (raft/browser/APP.md, "The handle")
HANDLE = {"state", "propose", "read", "change_membership", "on_change", "on_applied",
          "node_id", "applied_index", "read_only", "error"}
# ... and of raft: the KV state machine and the page conventions APP.md names
COMPONENT_IMPORTS = {"raft.kv", "raft.kv.KVStateMachine", "raft.browser.page_config",
                     "raft.cluster_key"} | {
    "raft.browser.page_config." + n for n in ("NAME_CHARS", "valid_name", "node_from_host")} | {
    "raft.cluster_key." + n for n in ("check_key", "client_key", "new_key")}


def modules():
    """module name -> file, for raft/**/*.py and components/*.py."""
    out = {}
    for path in sorted(ROOT.glob("raft/**/*.py")) + sorted(ROOT.glob("components/*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def import_edges(name, path):
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    known = modules()
    return {t for t in imported_modules(path.read_text(), package) if t in known and t != name}


def graph():
    return {name: import_edges(name, path) for name, path in modules().items()}


def find_cycle(g):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(n, stack):
        state[n] = "open"
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state:
                cycle = visit(m, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[n] = "done"
        return None
    for n in sorted(g):
        if n not in state:
            cycle = visit(n, [])
            if cycle:
                return cycle
    return None


def test_no_import_cycle():
    g = graph()
    assert find_cycle(g) is None, " -> ".join(find_cycle(g))
    # the checker sees one when there is one (as app <-> client_app once were)
    g["raft.browser.client_driver"] = g["raft.browser.client_driver"] | {"raft.browser.app"}
    g["raft.browser.app"] = g["raft.browser.app"] | {"raft.browser.client_driver"}
    assert find_cycle(g) is not None


# raft/replica/ (the CPython host beside the browser one) runs the browser's
# pure runtime modules and reads its page conventions; nothing else of it.
HOST_SHARED = {"raft.browser", "raft.browser.page_config"} | {
    "raft.browser." + m for m in PURE_BROWSER}


def upward_arrows(g):
    """(module, target) pairs where raft/ imports components/, or the core raft/browser/."""
    out = []
    for name, targets in g.items():
        for t in targets:
            if name.startswith("raft") and t.startswith("components"):
                out.append((name, t))
            elif (name.startswith("raft") and not name.startswith("raft.browser")
                  and t.startswith("raft.browser")
                  and not (name.startswith("raft.replica") and t in HOST_SHARED)):
                out.append((name, t))
    return out


def test_no_arrow_points_up():
    g = graph()
    assert upward_arrows(g) == []
    # as when raft/browser/app.py imported components.status
    g["raft.browser.app"] = g["raft.browser.app"] | {"components.todo"}
    assert upward_arrows(g) == [("raft.browser.app", "components.todo")]
    # the replica may not reach the js side of the browser layer
    g["raft.replica.host"] = g["raft.replica.host"] | {"raft.browser.transport"}
    assert ("raft.replica.host", "raft.browser.transport") in upward_arrows(g)


def js_imports(path):
    return sorted(m for m in imported_modules(path.read_text(), "x")
                  if m.split(".")[0] in ("js", "pyscript"))


@pytest.mark.parametrize("name", sorted(modules()))
def test_only_the_browser_layer_touches_js_or_pyscript(name):
    path = modules()[name]
    if name.startswith("raft.browser"):
        if name.rpartition(".")[2] in PURE_BROWSER:
            assert js_imports(path) == [], name
    elif name.startswith("raft"):
        assert js_imports(path) == [], name  # the sans-IO core


def handle_uses(source):
    """Attributes read from an App handle (`app.x` / `self.app.x`) in source."""
    uses = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            v = node.value
            if (isinstance(v, ast.Name) and v.id == "app") or \
                    (isinstance(v, ast.Attribute) and v.attr == "app"):
                uses.add(node.attr)
    return uses


@pytest.mark.parametrize("path", sorted(ROOT.glob("components/*.py")), ids=lambda p: p.name)
def test_components_use_only_the_documented_handle(path):
    source = path.read_text()
    assert handle_uses(source) <= HANDLE, handle_uses(source) - HANDLE
    raft_imports = {m for m in imported_modules(source, "components") if m.startswith("raft")}
    assert raft_imports <= COMPONENT_IMPORTS, raft_imports - COMPONENT_IMPORTS
    # the checker catches what components once did
    assert handle_uses("x = self.app.driver.node.applied_index; app.config") == {"driver", "config"}
    assert imported_modules("from raft.browser.app import valid_name", "components") \
        - COMPONENT_IMPORTS
