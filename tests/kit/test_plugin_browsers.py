"""The wraft pytest plugin with real browsers: its partition helper, and an
author's project run by pytest in a subprocess, once with the namespace the
plugin makes itself (netns mode) and once where no namespace can be made
and Chromium offers loopback candidates (loopback mode, in a namespace that
has nothing but loopback, so no traffic can leave).

    scripts/in-netns .venv/bin/pytest tests/kit -q
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

PROJECT_TESTS = '''
def test_counter_commits_everywhere(wraft_cluster, wraft_network):
    print("wraft network:", wraft_network.mode)
    cluster = wraft_cluster("/counter", size=3)
    leader = cluster.leader()
    assert cluster.propose(leader, 5) == {"ok": 5}
    cluster.wait_committed(cluster.commit(leader))
    assert cluster.converged() == 5
'''
FAILING_TEST = '''
def test_fails_on_purpose(wraft_cluster):
    cluster = wraft_cluster("/counter", size=3)
    cluster.leader()
    assert cluster.state(0) == 999
'''


def author_project(tmp_path, tests):
    project = tmp_path / "myapp"
    project.mkdir()
    (project / "test_app.py").write_text(tests)
    return project


def run_pytest(project, env, prefix=()):
    env = dict(env)
    env.pop("WRAFT_IN_NETNS", None)  # as an author's shell has it
    env.pop("PYTEST_ADDOPTS", None)
    cmd = list(prefix) + [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                          "-W", "always::pytest.PytestWarning", "--wraft-artifacts",
                          str(project / "shots"), str(project)]
    proc = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


def test_partition_cuts_a_window_off_and_heal_brings_it_back(wraft_cluster):
    c = wraft_cluster("/counter", size=3)
    leader = c.leader()
    others = [i for i in range(3) if i != leader]
    c.partition(leader, others)
    # The old leader hears no majority: it steps down; the others elect one of them.
    c.wait_attr([leader], "data-raft-readonly", "true", timeout=30)
    new = c.leader(among=others, timeout=30)
    assert new in others
    assert c.propose(new, 7) == {"ok": 7}
    assert c.state(leader) == 0  # cut off: it never saw the write
    assert "cut:" in c.describe()
    c.heal()
    assert c.leader() in others
    assert c.converged() == 7


def test_an_authors_project_in_a_namespace_the_plugin_makes(tmp_path):
    project = author_project(tmp_path, PROJECT_TESTS + FAILING_TEST)
    code, out = run_pytest(project, dict(os.environ, WRAFT_NET="netns"))
    assert code == 1 and re.search(r"1 failed, 1 passed", out), out[-4000:]
    assert "wraft network: netns" in out
    # The failure report: every window's role, term and commit, and screenshots.
    section = out.split("Captured wraft call")[1] if "Captured wraft call" in out else out
    assert re.search(r"cluster counter-\d+-\d+ \(/counter", section), out[-4000:]
    assert re.search(r"node +role +term +leader +commit +applied +peers", section)
    roles = re.findall(r"^  [012] +(leader|follower) +\d+ ", section, re.M)
    assert sorted(roles) == ["follower", "follower", "leader"], section[-3000:]
    shots = sorted((project / "shots").rglob("*.png"))
    assert len(shots) == 3 and all(p.read_bytes()[:4] == b"\x89PNG" for p in shots), shots
    assert all(str(p) in out for p in shots)


def test_an_authors_project_where_no_namespace_can_be_made(tmp_path):
    project = author_project(tmp_path, PROJECT_TESTS)
    # unshare fails as under Docker's default seccomp profile ...
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "unshare").write_text("#!/bin/sh\necho 'unshare: unshare failed: Operation not "
                                  "permitted' >&2\nexit 1\n")
    (fake / "unshare").chmod(0o755)
    env = dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"]))
    env.pop("WRAFT_NET", None)
    # ... on a machine with nothing but loopback (no default route at all).
    code, out = run_pytest(project, env, prefix=[
        "/usr/bin/unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"])
    assert code == 0 and "1 passed" in out, out[-4000:]
    assert "wraft network: loopback" in out
    assert "no private network namespace" in out and "Operation not permitted" in out
