"""The roles a Raft node plays, and the sentinels every part of the node
(raft/node.py and its mixins) shares. Imports nothing, so any module may
import it without a cycle."""

FOLLOWER = "follower"
PRECANDIDATE = "precandidate"   # PreVote: asking whether it could win, term unchanged
CANDIDATE = "candidate"
LEADER = "leader"

NOOP = None          # client id of the no-op entry a new leader appends (and of log[0])
FOREVER = 1 << 62    # a deadline (ms) that never comes
