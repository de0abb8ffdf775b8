"""deploy/wraft-replica.service stays in step with the replica's command
line (its ExecStart parses), and systemd finds nothing wrong in it."""

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from raft.replica.__main__ import parse_args

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "wraft-replica.service"


def exec_start():
    for line in UNIT.read_text().splitlines():
        if line.startswith("ExecStart="):
            return shlex.split(line[len("ExecStart="):])
    raise AssertionError("no ExecStart")


def test_exec_start_is_a_valid_replica_command_line():
    argv = exec_start()
    assert argv[1:3] == ["-m", "raft.replica"]
    opts = parse_args(argv[3:])
    assert (opts.cluster, opts.node, opts.state) == ("todo", "3", "components.todo:TodoState")
    assert opts.db.startswith("/var/lib/wraft/") and opts.commands is False
    with pytest.raises(SystemExit):
        parse_args(argv[3:] + ["--node", "x"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_verifies_the_unit():
    out = subprocess.run(["systemd-analyze", "verify", str(UNIT)], capture_output=True, text=True)
    problems = [line for line in (out.stdout + out.stderr).splitlines()
                if line.strip() and "is not executable" not in line]  # /opt/wraft is not here
    assert not problems, problems
