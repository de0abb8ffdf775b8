"""The `wraft` command without a browser: what `wraft serve --pages DIR`
serves (wraft/site.py), the PyScript config it makes for an author's page,
and `wraft new`'s starter (wraft/starter.py)."""

import io
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from wraft import cli, framework
from wraft.site import AuthorSite
from wraft.starter import STATE, write_starter

ROOT = Path(__file__).resolve().parents[2]


def wraft(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "wraft", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def author(tmp_path):
    """An author's folder: a page importing a module and a package, a test file,
    a module in a plain subfolder (not a package), and a page that hides /counter."""
    d = tmp_path / "myapp"
    (d / "lib").mkdir(parents=True)
    (d / "scratch").mkdir()
    (d / "shop.html").write_text(
        '<raft-node></raft-node>\n<script type="mpy" config="/pages/shop.toml">\n'
        "from raft.browser.app import start\nfrom cart import Cart\n</script>\n")
    (d / "cart.py").write_text("from lib.money import cents\nclass Cart: pass\n")
    (d / "lib" / "__init__.py").write_text("")
    (d / "lib" / "money.py").write_text("from raft.kv import KVStateMachine\ndef cents(x): return x\n")
    (d / "scratch" / "notes.py").write_text("x = 1\n")
    (d / "test_shop.py").write_text("import pytest\n")
    (d / "conftest.py").write_text("")
    (d / "counter.html").write_text("<p>my own counter</p>\n")
    return d


def served(site, path):
    made = site.generated(path)
    if made is not None:
        return made.text
    hit = site.locate(path)
    return None if hit is None else hit[0].read_text()


def test_the_authors_pages_and_files_are_served_beside_the_framework(author):
    site = AuthorSite(framework.root(), [author])
    assert "<raft-node>" in served(site, "/shop")
    assert served(site, "/counter") == "<p>my own counter</p>\n"  # the author's hides the demo's
    assert "class Cart" in served(site, "/pages/cart.py")
    assert "WRaft page loader" in served(site, "/pages/loader.js")  # the framework's
    assert "def start" in served(site, "/raft/browser/app.py")
    assert served(site, "/nowhere") is None and served(site, "/pages/../setup.py") is None
    assert {"shop", "counter", "todo", "kv"} <= set(site.page_names())
    assert str(author) in site.describe()


def test_an_authors_page_gets_a_config_of_its_imports_and_its_modules(author):
    site = AuthorSite(framework.root(), [author])
    text = served(site, "/pages/shop.toml")
    config = tomllib.loads(text)
    assert config["files"] == {"/bundle/shop.zip": "./*"}  # one archive, not a request per file
    listed = config["wraft"]["bundle"]
    mine = [u for u in listed if u.startswith("/pages/")]
    assert mine == ["/pages/cart.py", "/pages/lib/__init__.py", "/pages/lib/money.py"]  # no tests,
    framework_files = set(listed) - set(mine)                                         # no plain folders
    assert {"/raft/browser/app.py", "/raft/kv.py", "/raft/__init__.py"} <= framework_files
    assert not any(k.startswith("/components/") for k in listed)  # nothing it does not import
    # the archive: the framework's modules at their paths, the author's beside the page
    data, _ = site.bundle("shop")
    names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert {"cart.py", "lib/__init__.py", "lib/money.py", "raft/browser/app.py"} <= names
    assert names == {u[len("/pages/"):] if u.startswith("/pages/") else u[1:] for u in listed}
    # MicroPython windows: the same as bytecode, through the config loader.js points them at
    assert '"/bundle/shop.mpy.zip" = "./*"' in site.mpy_config("shop")
    data, _, variant = site.compiled_bundle("shop")
    assert variant == "mpy" and "cart.mpy" in zipfile.ZipFile(io.BytesIO(data)).namelist()
    # the framework's own pages keep their files; other names get nothing made
    assert served(site, "/pages/counter.toml").startswith("# PyScript config of /counter")
    assert site.generated("/pages/nothing.toml") is None
    # an author's own config wins
    (author / "shop.toml").write_text("[files]\n")
    assert served(site, "/pages/shop.toml") == "[files]\n"
    assert site.bundle("shop") is None


def test_a_page_whose_python_does_not_parse_still_gets_a_config(author):
    (author / "cart.py").write_text("class Cart(:\n")
    site = AuthorSite(framework.root(), [author])
    listed = tomllib.loads(served(site, "/pages/shop.toml"))["wraft"]["bundle"]
    assert "/pages/cart.py" in listed and "/raft/browser/app.py" in listed
    # MicroPython windows get the .py archive then: the window reports the error, file and line
    data, _, variant = site.compiled_bundle("shop")
    assert variant == "py" and data == site.bundle("shop")[0]


def test_wraft_new_writes_a_starter_and_never_overwrites(tmp_path):
    written = write_starter(tmp_path / "my-notes")
    assert sorted(p.name for p in written) == ["my-notes.html", "notes.py", "pytest.ini",
                                               "test_my_notes.py"]
    page = (tmp_path / "my-notes" / "my-notes.html").read_text()
    assert '<raft-node size="3"' in page and "<raft-status>" in page
    assert 'config="/pages/my-notes.toml"' in page
    assert 'wraft_cluster("/my-notes", size=3)' in (tmp_path / "my-notes" / "test_my_notes.py").read_text()
    (tmp_path / "my-notes" / "notes.py").write_text("# mine\n")
    with pytest.raises(FileExistsError, match="notes.py.*nothing written"):
        write_starter(tmp_path / "my-notes")
    assert (tmp_path / "my-notes" / "notes.py").read_text() == "# mine\n"
    # a folder whose name is no URL path: the page is /app
    assert write_starter(tmp_path / "a b")[0].name == "app.html"


def test_the_starters_state_class_is_ten_lines_that_replicate(tmp_path):
    assert len(STATE.strip().splitlines()) <= 10
    ns = {}
    exec(STATE, ns)
    a, b = ns["Notes"](), ns["Notes"]()
    assert [a.apply("x"), a.apply("y")] == [1, 2]
    b.restore(a.snapshot())
    assert b.items == ["x", "y"] and b.snapshot() is not b.items


def test_the_command_line(tmp_path):
    out = wraft("--version")
    assert (out.returncode, out.stdout) == (0, "wraft 0.1.0\n")
    out = wraft("frobnicate")
    assert out.returncode == 2 and "unknown command 'frobnicate'" in out.stderr
    out = wraft("serve", "--pages", tmp_path / "nowhere")
    assert out.returncode == 2 and "nowhere is not a folder" in out.stderr
    out = wraft("serve", "--help")
    assert out.returncode == 0 and "usage: wraft serve" in out.stdout and "--pages DIR" in out.stdout
    out = wraft("new", tmp_path / "app1")
    assert out.returncode == 0 and "wraft serve --pages" in out.stdout
    assert wraft("new", tmp_path / "app1").returncode == 1
    for sub in ("replica", "client"):
        out = wraft(sub, "--help", cwd=tmp_path)  # run from anywhere
        assert out.returncode == 0 and "--introducer" in out.stdout, out.stderr
    assert cli.main([]) == 2
