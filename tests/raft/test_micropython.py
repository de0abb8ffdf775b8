"""Runs the core unit tests under real MicroPython 1.28 and Pyodide (the npm
builds PyScript uses, via Node.js) and checks that every one ran and passed."""
import importlib
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(ROOT, "tests", "mpy", "run_core_tests.mjs")
MODULES = ["test_rules", "test_clients", "test_codec", "test_snapshots", "test_membership",
           "test_regressions", "test_receive", "test_peering"]


def _expected_count():
    n = 0
    for name in MODULES:
        mod = importlib.import_module(name)
        n += len([k for k in dir(mod) if k.startswith("test_") and callable(getattr(mod, k))])
    return n


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_core_unit_tests_pass_under_micropython():
    with open(RUNNER) as f:
        assert re.search(r"TESTS = \[(.*?)\]", f.read()).group(1).replace('"', "").split(", ") == MODULES
    proc = subprocess.run(["node", RUNNER], cwd=ROOT, capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert "micropython" in out and "version=(1, 28" in out, out[-2000:]
    m = re.search(r"RESULT (\d+) (\d+)", out)
    assert m, out[-2000:]
    passed, failed = int(m.group(1)), int(m.group(2))
    assert failed == 0 and proc.returncode == 0, out[-4000:]
    assert passed == _expected_count() >= 55


PYODIDE_RUNNER = os.path.join(ROOT, "tests", "mpy", "run_core_tests_pyodide.mjs")


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_core_unit_tests_pass_under_pyodide():
    proc = subprocess.run(["node", PYODIDE_RUNNER], cwd=ROOT, capture_output=True, text=True,
                          timeout=280)
    out = proc.stdout + proc.stderr
    assert "pyodide 3." in out, out[-2000:]
    m = re.search(r"RESULT (\d+) (\d+)", out)
    assert m, out[-2000:]
    assert int(m.group(2)) == 0 and proc.returncode == 0, out[-4000:]
    assert int(m.group(1)) == _expected_count()
