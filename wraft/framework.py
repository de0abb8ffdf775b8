"""Where the framework is. In a checkout: the repository (raft/, signaling/,
components/, pages/, node_modules/ beside wraft/). In an installed wheel:
wraft/_site/, the same tree copied in at build time (setup.py), so that the
wheel installs one top-level package, wraft, and no `raft` or `signaling`
that would clash with the package index's projects of those names; the
`wraft` command puts that folder first on sys.path before importing them."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUNDLED = HERE / "_site"


def root():
    """The folder holding raft/, signaling/, components/, pages/ and the runtime."""
    return BUNDLED if BUNDLED.is_dir() else HERE.parent


def installed():
    return BUNDLED.is_dir()


def use_framework():
    """Make `import raft`, `import signaling` load this framework's copies."""
    where = str(root())
    if sys.path[:1] != [where]:
        sys.path.insert(0, where)
    return where
