"""The `wraft` command.

  wraft serve [--pages DIR]... [server options]   the framework, the pinned
        PyScript runtime and your pages (DIR/<name>.html at /<name>); prints
        the window URLs. Every option of `python -m signaling` works here.
  wraft new DIR          a starter app in DIR: page, state class, test
  wraft replica ...      a CPython member of a cluster (raft/replica)
  wraft client ...       the command-line client (raft/replica/client.py)
  wraft --version
"""

import argparse
import sys
from pathlib import Path

from wraft import __version__, framework

USAGE = __doc__.split("\n", 2)[2]


def pages_dir(text):
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError("%s is not a folder" % text)
    return path


def add_serve_arguments(parser):
    parser.add_argument("--pages", type=pages_dir, action="append", default=[], metavar="DIR",
                        help="a folder of your pages and their Python modules, repeatable: "
                             "DIR/<name>.html is served at /<name>")


def serve(argv):
    framework.use_framework()
    from signaling.__main__ import main as serve_main

    from wraft.site import AuthorSite
    return serve_main(argv, prog="wraft serve", add_arguments=add_serve_arguments,
                      make_site=lambda args: AuthorSite(args.root, args.pages))


def new(argv):
    from wraft.starter import write_starter
    p = argparse.ArgumentParser(prog="wraft new", description="Write a starter app into DIR.")
    p.add_argument("dir", type=Path, metavar="DIR")
    args = p.parse_args(argv)
    try:
        written = write_starter(args.dir)
    except FileExistsError as e:
        print(e, file=sys.stderr)
        return 1
    for path in written:
        print("wrote", path)
    page = written[0].stem
    print("\nNext:\n  wraft serve --pages %s    # then open the three /%s URLs it prints\n"
          "  cd %s && pytest    # its Playwright test (needs the package's [testing] extra)"
          % (args.dir, page, args.dir))
    return 0


def replica(argv):
    framework.use_framework()
    from raft.replica.__main__ import main as replica_main
    return replica_main(argv)


def client(argv):
    framework.use_framework()
    from raft.replica.client import main as client_main
    return client_main(argv)


COMMANDS = {"serve": serve, "new": new, "replica": replica, "client": client}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: wraft COMMAND ...\n\n" + USAGE, end="")
        return 0 if argv else 2
    if argv[0] == "--version":
        print("wraft", __version__)
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print("wraft: unknown command %r (use %s)" % (argv[0], ", ".join(COMMANDS)), file=sys.stderr)
        return 2
    return command(argv[1:]) or 0
