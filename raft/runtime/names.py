"""The names and ids every host accepts, so a window and a replica agree on
them: cluster names (1-64 of NAME_CHARS), node ids 0..MAX_NODE_ID, and the
cluster's starting size 1..MAX_SIZE. raft/browser/page_config.py reads them
from the page; raft/replica/ from its command line."""

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
MAX_SIZE = 7  # voters at most (the core's Config.max_voters)
MAX_NODE_ID = 63  # node ids 0..63; ids >= size start as non-members


def valid_name(name, limit=64):
    return 0 < len(name) <= limit and all(c in NAME_CHARS for c in name)
