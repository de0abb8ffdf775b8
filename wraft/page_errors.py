"""An author's page reports what went wrong in it (pages/loader.js posts
PyScript's traceback, or the node's data-raft-error, to /wraft/page-error
on `wraft serve`); explain() turns that into a message naming the file and
line, which the server logs and the page shows.

PyScript runs a page's inline script as "<stdin>": its line N is line
(the line where the code starts + N - 1) of the HTML file. A module
beside the page appears under its own name ("notes.py"). A bad <raft-node>
attribute is reported by the node as "<raft-node size='nine'>: ..."."""

import re
from pathlib import Path

from signaling.static import safe_join

from wraft.pyscript_config import PACKAGES, author_modules, python_scripts

FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)', re.M)
NO_MODULE = re.compile(r"(?:ImportError|ModuleNotFoundError): [Nn]o module named '([^']+)'")
MAX_TEXT = 8000
PYODIDE_HOME = "/home/pyodide/"  # Pyodide's cwd: where [files] puts ./notes.py


def source_line(path, line):
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return lines[line - 1].strip() if 0 < line <= len(lines) else None


def at(shown, line, real, what):
    """'notes.py, line 4: ZeroDivisionError: ...' and the line of code below it."""
    code = source_line(real, line) if real else None
    return "%s, line %d: %s%s" % (shown, line, what, ("\n    " + code) if code else "")


def frames(page, text, framework_root):
    """[(shown file, line, real path, the author's?)] of the traceback's frames
    in the page, the author's modules and the framework, outermost first
    (the interpreter's own frames are left out)."""
    scripts = [s for s in python_scripts(page) if not s[0].get("src")]
    out = []
    for name, line in FRAME.findall(text):
        line = int(line)
        if name in ("<stdin>", "<exec>"):  # MicroPython's, Pyodide's name for the page's script
            if scripts:
                out.append((str(page), scripts[0][2] + line - 1, page, True))
            continue
        name = name[len(PYODIDE_HOME):] if name.startswith(PYODIDE_HOME) else name
        name = name[2:] if name.startswith("./") else name
        # only files the server serves anyway: the report comes from a page
        mine, theirs = safe_join(page.parent, name), safe_join(Path(framework_root), name)
        if mine:
            out.append((str(page.parent / name), line, mine, True))
        elif theirs and name.split("/")[0] in PACKAGES:
            out.append((name, line, theirs, False))
    return out


def missing_module_hint(page, name):
    top = name.split(".")[0]
    here = sorted(m for m in author_modules(page.parent) if "/" not in m)
    stray = sorted(str(p.relative_to(page.parent)) for p in page.parent.rglob(top + ".py"))
    text = ("no %s.py (or %s/__init__.py) beside the page in %s" % (top, top, page.parent))
    if stray:
        text += "; %s is there but not importable: a folder needs an __init__.py" % ", ".join(stray)
    return text + " (its modules: %s)" % (", ".join(here) or "none")


def explain(page, kind, text, framework_root):
    """The message for an error of `kind` ("python" or "node") in `page`."""
    page = Path(page)
    text = text[:MAX_TEXT].strip()
    if kind == "node":
        if text.startswith("<raft-node"):
            html = page.read_text().splitlines()
            line = next((i for i, s in enumerate(html, 1) if "<raft-node" in s), None)
            if line:
                return at(str(page), line, page, text)
        return "%s: %s" % (page, text)
    last = text.splitlines()[-1] if text else "error"
    found = frames(page, text, framework_root)
    lines = []
    if found:
        # the innermost frame in the author's code, else the innermost of all
        headline = next((f for f in reversed(found) if f[3]), found[-1])
        lines.append(at(headline[0], headline[1], headline[2], last))
        rest = [f for f in reversed(found) if f is not headline]
        if rest:
            lines.append("  traceback, innermost first: " + "; ".join(
                "%s, line %d" % (f[0], f[1]) for f in rest))
    else:
        lines.append("%s: %s" % (page, last))
    m = NO_MODULE.search(text)
    if m:
        lines.append("  " + missing_module_hint(page, m.group(1)))
    return "\n".join(lines)
