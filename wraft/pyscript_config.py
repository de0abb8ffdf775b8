"""A page's PyScript config: the [files] that copy into the interpreter the
framework modules the page's Python imports (directly, through other
modules, or inside functions: those imports run later) and nothing else.
The repository's pages keep theirs in pages/<page>.toml (written by
tests/browser/test_pyscript_config.py); `wraft serve` makes an author's on
request, with the author's own modules beside the page added."""

import ast
import re
from pathlib import Path

PACKAGES = ("raft", "components")  # what the browser imports from the framework
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)
ATTR = re.compile(r'([a-z-]+)(?:="([^"]*)")?')
AUTHOR_SKIP = re.compile(r"^(test_.*|.*_test|conftest|setup)\.py$")  # never run in a window


def python_scripts(page):
    """[(attrs, code, line of the page where the code starts)] of the page's
    mpy/py scripts (code read from the src= file beside the page: line 1)."""
    out = []
    text = Path(page).read_text()
    for m in SCRIPT.finditer(text):
        attrs = {k: v for k, v in ATTR.findall(m.group(1))}
        if attrs.get("type") in ("mpy", "py"):
            src = attrs.get("src")
            if src:
                out.append((attrs, (Path(page).parent / Path(src).name).read_text(), 1))
            else:
                # PyScript's line 1 is the code's first line (leading blank lines dropped)
                body = m.group(2)
                first = m.start(2) + len(body) - len(body.lstrip())
                out.append((attrs, body, text.count("\n", 0, first) + 1))
    return out


def module_file(name, root):
    """The framework file of module `name` (package -> its __init__.py), or None."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = Path(root).joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_modules(code, package=None):
    """Every module an import statement in `code` may load (anywhere in it)."""
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names.update(base + "." + alias.name for alias in node.names)  # submodules
    return names


def files_needed(code, root):
    """Framework files the interpreter needs to run `code`, as URL paths."""
    todo, seen = list(imported_modules(code)), set()
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # a module needs its packages' __init__
            path = module_file(".".join(parts[:i]), root)
            if path is None or path in seen:
                continue
            seen.add(path)
            mod = ".".join(parts[:i])
            package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
            todo.extend(imported_modules(path.read_text(), package))
    return {"/" + p.relative_to(root).as_posix() for p in seen}


def page_files(page, root):
    need = set()
    for _, code, _ in python_scripts(page):
        need |= files_needed(code, root)
    return need


def author_modules(folder):
    """The author's Python files in `folder` (and its packages), relative paths:
    what a window may import beside the page."""
    folder = Path(folder)
    out = []
    for path in sorted(folder.rglob("*.py")):
        rel = path.relative_to(folder)
        if any(p.startswith((".", "__pycache__")) for p in rel.parts) or AUTHOR_SKIP.match(rel.name):
            continue
        if len(rel.parts) > 1 and not all((folder.joinpath(*rel.parts[:k]) / "__init__.py").is_file()
                                          for k in range(1, len(rel.parts))):
            continue  # not inside a package: nothing can import it
        out.append(rel.as_posix())
    return out


def author_config(page, root):
    """The PyScript config text of an author's page: one archive,
    /bundle/<page>.zip, that the server builds from the [wraft] bundle list
    (signaling/static.py): the framework files its Python and its modules
    import, and its modules (served at /pages/<file>, unpacked to ./<file> so
    `import notes` finds notes.py). MicroPython windows get it as bytecode
    when the page has <meta name="wraft-bundle" content="<page>">."""
    page = Path(page)
    modules = author_modules(page.parent)
    codes = [code for _, code, _ in python_scripts(page)]
    codes += [(page.parent / rel).read_text() for rel in modules]
    need = set()
    for code in codes:
        try:
            need |= files_needed(code, root)
        except SyntaxError:
            pass  # the window reports it, with its file and line, when it runs the code
    listed = sorted(need) + ["/pages/%s" % rel for rel in modules]
    if not listed:
        return ("# PyScript config of /%s, made by `wraft serve`: its Python imports nothing\n"
                "# of the framework and has no modules beside it.\n" % page.stem)
    return ("# PyScript config of /%s, made by `wraft serve` from the page's imports and the\n"
            "# Python files beside it. Write %s.toml beside the page to use your own.\n\n"
            '[files]\n"/bundle/%s.zip" = "./*"\n\n[wraft]\nbundle = [\n%s]\n'
            % (page.stem, page.stem, page.stem, "".join('  "%s",\n' % u for u in listed)))
