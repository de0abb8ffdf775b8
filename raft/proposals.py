"""Client proposals (part of Node, see raft/node.py).

A leader appends a client's command as one log entry tagged with the client
id and sequence number (applied exactly once by raft/sessions.py); a follower
forwards it to the leader it knows (Raft §8). Flow control: a command that
would not fit one message, or a log too far ahead of the commit index, is
refused at once. The outcome arrives in Ready.results.

State (set in Node.__init__): pending {(client id, seq): deadline} of the
proposals and membership changes made on this node, until their outcome is
in Ready.results (node.py's apply loop and timers also end them); it
appends to log and sets need_bcast on a leader.
"""
from .codec import (client_problem, json_size, compact, MSG_OVERHEAD as _MSG_OVERHEAD,
                    utf8_len as _utf8_len, proposal, proposal_failure)
from .roles import LEADER


class ClientProposals:
    """propose() and the leader's append of proposals; a mixin of Node."""

    def propose(self, client_id, seq, command):
        err = client_problem(client_id, seq)
        size = json_size(command, 0)
        if err is None and size < 0:
            err = "command is not JSON"
        if err is not None:
            self.results.append([client_id, seq, "invalid", err])
            return
        key = (client_id, seq)
        if self.role == LEADER:
            err = self.leader_append_proposal(client_id, seq, command, size)
            if err is not None:
                self.results.append([client_id, seq, err, self.leader_id])
                return
        elif self.leader_id is None:
            self.results.append([client_id, seq, "no_leader", None])
            return
        else:
            self.msgs.append(proposal(self.id, self.leader_id, self.term, client_id, seq, command))
        self.pending[key] = self.now + self.cfg.request_timeout_ms

    def leader_append_proposal(self, client_id, seq, command, size):
        entry = [self.term, client_id, seq, command]
        budget = self.cfg.max_bytes_per_msg - _MSG_OVERHEAD
        if size * 4 > budget:   # cheap estimate first; exact encoding when big
            if _utf8_len(compact(entry)) > budget:
                return "too_large"     # would not fit one message, ever
        if self.last_index() - self.commit_index >= self.cfg.max_uncommitted:
            return "too_many_pending"
        self.log.append(entry)
        self.need_bcast = True     # sent as one batch at the next ready()
        return None

    def handle_forwarded_proposal(self, msg):
        _, src, _, _, client_id, seq, command = msg
        if self.role != LEADER:
            err = "no_leader"
        else:
            err = self.leader_append_proposal(client_id, seq, command, json_size(command, 0))
        if err is not None:
            self.msgs.append(proposal_failure(self.id, src, self.term, client_id, seq, err,
                                              self.leader_id))

    def handle_proposal_failure(self, msg):
        _, _, _, _, client_id, seq, error, leader_id = msg
        key = (client_id, seq)
        if key in self.pending:
            del self.pending[key]
            self.results.append([client_id, seq, error, leader_id])
