"""WRaft consensus core: sans-IO Raft (see raft/API.md)."""
from .config import Config
from .node import Node, Ready, FOLLOWER, PRECANDIDATE, CANDIDATE, LEADER
from .kv import KVStateMachine
from .sessions import Sessions
from . import codec
