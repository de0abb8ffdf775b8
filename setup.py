"""The wheel ships one top-level package, wraft: the framework (raft/,
signaling/, components/, pages/ and the pinned PyScript runtime from
node_modules/) is copied into wraft/_site/ at build time, where the `wraft`
command and the server find it (wraft/framework.py). An editable install
uses the checkout as it is."""

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
FRAMEWORK = ["raft", "signaling", "components", "pages", "package.json", "package-lock.json"]
RUNTIME = [  # what signaling/static.py serves from node_modules/
    "node_modules/@micropython/micropython-webassembly-pyscript",
    "node_modules/pyodide",
    "node_modules/@pyscript/core/dist",
    "node_modules/todomvc-app-css",
]
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildWithFramework(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        if any(not (HERE / r).is_dir() for r in RUNTIME) and shutil.which("npm"):
            # the pinned runtime, exactly as package-lock.json has it
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=HERE,
                           check=True)
        missing = [r for r in RUNTIME if not (HERE / r).is_dir()]
        if missing:
            raise SystemExit("wraft wheel: %s missing: install Node.js and run `npm ci` here "
                             "first (the wheel ships the pinned PyScript runtime)"
                             % ", ".join(missing))
        site = Path(self.build_lib) / "wraft" / "_site"
        if site.exists():
            shutil.rmtree(site)
        for rel in FRAMEWORK + RUNTIME:
            src, dst = HERE / rel, site / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=SKIP)
            else:
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildWithFramework})
