"""The MicroPython variant of a page bundle: /bundle/<page>.mpy.zip holds the
bundle's modules compiled by mpy-cross (signaling/mpy.py), cached like the
.py bundle; /pages/<page>.mpy.toml names it; and whenever the bytecode could
not be loaded (no mpy-cross, it fails, another .mpy version, a runtime the
server does not know) the .py bundle is served instead, with the reason
logged once. (tests/raft/test_mpy_bytecode.py runs the bytecode in the runtime.)"""

import io
import json
import logging
import stat
import zipfile

import pytest

from signaling import mpy
from signaling.static import StaticSite

from test_sig_static import get, write_bundle_config

RUNTIME = "node_modules/@micropython/micropython-webassembly-pyscript"
HEADER = bytes([ord("M"), 6, 0, 31])  # what the shipped runtime loads (MPY_ACCEPTS)


@pytest.fixture
def mpy_root(site_root):
    (site_root / RUNTIME / "package.json").write_text(json.dumps({"version": "1.28.0-6"}))
    (site_root / "raft" / "browser").mkdir()
    (site_root / "raft" / "browser" / "x.py").write_text("X = 1\n\ndef boom():\n    return 1 // 0\n")
    write_bundle_config(site_root, "todo", ["/raft/__init__.py", "/raft/browser/x.py",
                                            "/components/status.py", "/pages/app.css"])
    return site_root


def names(data):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {n: z.read(n) for n in z.namelist()}


def fake_compiler(tmp_path, header):
    """An mpy-cross stand-in that writes `header` + the source as its output."""
    path = tmp_path / "fake-mpy-cross"
    path.write_text("#!/bin/sh\n"
                    'if [ "$1" = --version ]; then echo "fake mpy-cross"; exit 0; fi\n'
                    'while [ $# -gt 1 ]; do case "$1" in -o) out="$2"; shift;; esac; shift; done\n'
                    "printf '%s' > \"$out\"; cat \"$1\" >> \"$out\"\n" % "".join("\\%03o" % b for b in header))
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


async def test_compiled_bundle_holds_bytecode_of_each_module_and_nothing_else(make_server, mpy_root):
    base = await make_server()
    status, headers, data = await get(base, "/bundle/todo.mpy.zip")
    assert status == 200 and headers["Content-Type"] == "application/zip"
    assert headers["X-Wraft-Bundle"] == "mpy" and headers["ETag"]
    files = names(data)
    # no .py beside its .mpy: MicroPython would import the .py first
    assert sorted(files) == ["app.css", "components/status.mpy", "raft/__init__.mpy",
                             "raft/browser/x.mpy"]
    assert files["app.css"] == b"body{}"  # a file of the page's folder: beside the page
    for name in ("components/status.mpy", "raft/__init__.mpy", "raft/browser/x.mpy"):
        assert files[name][:4] == HEADER, (name, files[name][:4])
    # the source name stays in the bytecode (tracebacks say 'File "raft/browser/x.py"')
    assert b"raft/browser/x.py" in files["raft/browser/x.mpy"]
    _, py_headers, _ = await get(base, "/bundle/todo.zip")
    assert py_headers["X-Wraft-Bundle"] == "py" and py_headers["ETag"] != headers["ETag"]


async def test_compiled_bundle_revalidates_and_is_rebuilt_when_a_file_changes(make_server, mpy_root):
    base = await make_server()
    _, headers, data = await get(base, "/bundle/todo.mpy.zip")
    status, _, _ = await get(base, "/bundle/todo.mpy.zip", headers={"If-None-Match": headers["ETag"]})
    assert status == 304
    (mpy_root / "raft" / "browser" / "x.py").write_text("X = 22222\n")
    status, headers2, data2 = await get(base, "/bundle/todo.mpy.zip",
                                        headers={"If-None-Match": headers["ETag"]})
    assert status == 200 and headers2["ETag"] != headers["ETag"]
    assert names(data2)["raft/browser/x.mpy"] != names(data)["raft/browser/x.mpy"]


async def test_mpy_config_names_the_compiled_bundle(make_server, mpy_root):
    base = await make_server()
    status, headers, text = await get(base, "/pages/todo.mpy.toml")
    assert status == 200 and headers["Content-Type"].startswith("application/toml")
    original = (mpy_root / "pages" / "todo.toml").read_text()
    assert text.decode() == original.replace('"/bundle/todo.zip"', '"/bundle/todo.mpy.zip"')
    # a config without a bundle is served as it is; no config: 404; a real file wins
    (mpy_root / "pages" / "plain.toml").write_text('[files]\n"/raft/__init__.py" = "./raft/__init__.py"\n')
    assert (await get(base, "/pages/plain.mpy.toml"))[2] == (mpy_root / "pages" / "plain.toml").read_bytes()
    assert (await get(base, "/pages/nope.mpy.toml"))[0] == 404
    (mpy_root / "pages" / "own.mpy.toml").write_text("# mine\n")
    assert (await get(base, "/pages/own.mpy.toml"))[2] == b"# mine\n"
    assert (await get(base, "/bundle/nope.mpy.zip"))[0] == 404


def test_mpy_config_is_left_alone_when_the_rewrite_is_not_plain(site_root):
    site = StaticSite(site_root)
    # the bundle's key written twice (once in a comment): no blind text replacement
    text = '# "/bundle/todo.zip"\n[files]\n"/bundle/todo.zip" = "./*"\n'
    (site_root / "pages" / "todo.toml").write_text(text)
    assert site.mpy_config("todo") == text
    text = "[files]\n'/bundle/todo.zip' = './*'\n"  # a literal-string key: left as it is
    (site_root / "pages" / "todo.toml").write_text(text)
    assert site.mpy_config("todo") == text


@pytest.mark.parametrize("case, reason", [
    ("absent", "mpy-cross is not installed"),
    ("wrong version", "emits .mpy version 5, the runtime loads version 6"),
    ("native code", "native code"),
    ("fails", "does not work"),
    ("unknown runtime", "not in signaling/mpy.py's MPY_ACCEPTS"),
    ("syntax error", "cannot compile: raft/browser/x.py"),
])
async def test_falls_back_to_the_py_bundle_and_says_why_once(make_server, mpy_root, tmp_path,
                                                           monkeypatch, caplog, case, reason):
    if case == "absent":
        monkeypatch.setenv(mpy.ENV_BINARY, "none")
    elif case == "wrong version":
        monkeypatch.setenv(mpy.ENV_BINARY, str(fake_compiler(tmp_path, bytes([77, 5, 0, 31]))))
    elif case == "native code":
        monkeypatch.setenv(mpy.ENV_BINARY, str(fake_compiler(tmp_path, bytes([77, 6, 0x1b, 31]))))
    elif case == "fails":
        monkeypatch.setenv(mpy.ENV_BINARY, str(tmp_path / "no-such-mpy-cross"))
    elif case == "unknown runtime":
        (mpy_root / RUNTIME / "package.json").write_text(json.dumps({"version": "9.1.0"}))
    elif case == "syntax error":
        (mpy_root / "raft" / "browser" / "x.py").write_text("def broken(:\n")
    caplog.set_level(logging.WARNING, logger="signaling.mpy")
    base = await make_server()
    _, py_headers, py_data = await get(base, "/bundle/todo.zip")
    for _ in range(2):
        status, headers, data = await get(base, "/bundle/todo.mpy.zip")
        assert status == 200 and headers["X-Wraft-Bundle"] == "py"
        assert data == py_data and headers["ETag"] == py_headers["ETag"]
    said = [r.getMessage() for r in caplog.records if r.name == "signaling.mpy"]
    assert len(said) == 1 and reason in said[0] and "/bundle/todo.mpy.zip" in said[0], said
    # the page is pointed at that archive all the same: it holds what the window can run
    assert b"/bundle/todo.mpy.zip" in (await get(base, "/pages/todo.mpy.toml"))[2]


def test_a_stand_in_that_emits_the_right_header_is_accepted(site_root, tmp_path):
    """The fake above is a fair stand-in: with the right header it passes the check."""
    (site_root / RUNTIME / "package.json").write_text(json.dumps({"version": "1.28.0-6"}))
    compiler = mpy.Compiler(site_root / RUNTIME, binary=fake_compiler(tmp_path, HEADER))
    assert compiler.problem is None
    assert compiler.compile(b"x = 1\n", "a.py") == HEADER + b"x = 1\n"


def test_header_check():
    assert mpy.header_problem(HEADER + b"...", (6, 31)) is None
    assert "version 7" in mpy.header_problem(bytes([77, 7, 0, 31]), (6, 31))
    assert "small ints" in mpy.header_problem(bytes([77, 6, 0, 63]), (6, 31))
    assert "not an .mpy" in mpy.header_problem(b"PK\x03\x04", (6, 31))
    assert "not an .mpy" in mpy.header_problem(b"M", (6, 31))
