"""The node's side of single-server membership changes (Raft thesis §4.1;
part of Node, see raft/node.py). The pure rules are in raft/membership.py.

The configuration in effect is the latest one in the log, committed or not:
taken when appended, dropped when truncated. One change at a time, each
checked for safety before the leader appends it. The leader replicates to
members being removed until their removal commits, then lets them go; a
removed leader steps down once the change commits. Learners and outsiders
never campaign; a leader catches up a stray ex-member that asks for votes.

State (set in Node.__init__, changed only here and where the log changes:
append_entries_after, compact_log, install_snapshot): boot_conf, base_conf
(the snapshot's), conf_log ([index, voters, learners, by] of each entry in
the log); derived by _adopt_latest_config: config_index, config_by, voters,
learners, quorum, self_voter, membership, electors, peers, known_ids; on a
leader: targets, voter_prs, leader_cleanup, leave_at.
"""
from .codec import client_problem, membership_request, membership_reply
from .membership import (OPS, quorum_of, config_entry, changed_config, one_change_at_a_time,
                         change_refusal)
from .progress import Progress
from .roles import LEADER, FOREVER as _FOREVER


class NodeMembership:
    """Configuration tracking and change_membership(); a mixin of Node."""

    def _snapshot_conf(self, data):
        conf = data.get("config")
        if conf is None:
            return self.boot_conf        # a snapshot taken before membership changes existed
        return [0, conf["voters"], conf["learners"], None]

    def _note_config_entries(self, first_index, ents, start):
        """Record the configuration entries among ents[start:] (ents[start]
        being at first_index); True if there was one."""
        found = False
        n = len(ents)
        i = start
        while i < n:
            e = ents[i]
            if e[1] is None and e[3] is not None:
                c = e[3]
                self.conf_log.append([first_index + i - start, c["voters"], c["learners"], c["by"]])
                found = True
            i += 1
        return found

    def _adopt_latest_config(self):
        """A configuration takes effect when appended (thesis §4.1)."""
        index, voters, learners, by = self.conf_log[-1] if self.conf_log else self.base_conf
        self.config_index = index
        self.config_by = by
        self.voters = voters
        self.learners = learners
        self.quorum = quorum_of(voters)
        me = self.id
        self.self_voter = me in voters
        if self.self_voter:
            self.membership = "voter"
        elif me in learners:
            self.membership = "learner"
        else:
            self.membership = "none"
        self.electors = [x for x in voters if x != me]
        self.peers = sorted(self.electors + [x for x in learners if x != me])
        # Every id of every configuration we know: who may send us Raft.
        known = set()
        for conf in [self.boot_conf, self.base_conf] + self.conf_log:
            known.update(conf[1])
            known.update(conf[2])
        self.known_ids = known
        if self.role == LEADER:
            self._update_leader_progress()

    def _update_leader_progress(self):
        """Leader: track every member; members being removed stay tracked
        (and replicated to) until the change commits."""
        prs = self.progress
        for p in self.peers:
            if p not in prs:
                prs[p] = Progress(self.last_index() + 1, self.now)
        self.targets = sorted(prs)
        self.voter_prs = [prs[v] for v in self.electors]
        self.leader_cleanup = len(self.targets) != len(self.peers) or not self.self_voter

    def _leader_config_committed(self):
        """The latest change is applied: step down if we were removed. Removed
        members keep getting the log and heartbeats (so they commit their
        removal) for election_max_ms more; then we let them go."""
        self.leader_cleanup = False
        if not self.self_voter:
            self._count("removed_leader_step_down")
            self.become_follower(self.term, None)
        elif len(self.targets) != len(self.peers):
            self.leave_at = self.now + self.cfg.election_max_ms

    def _catch_up_stray(self, src):
        """Leader: a node outside our configuration asks for votes, so it
        missed its removal. Replicate to it for a while (like a member being
        removed) so that it learns it and stops campaigning."""
        if src in self.progress or len(self.progress) >= 64:
            return
        self.progress[src] = Progress(self.last_index() + 1, self.now)
        self.targets = sorted(self.progress)
        if self.leave_at == _FOREVER:
            self.leave_at = self.now + self.cfg.election_max_ms
        self._count("stray_caught_up")
        self.send_append(src, True)

    def _let_go_of_removed(self):
        self.leave_at = _FOREVER
        for p in self.targets:
            if p not in self.peers:
                del self.progress[p]
        self.targets = sorted(self.progress)

    @property
    def config_committed(self):
        return self.commit_index >= self.config_index

    def configuration(self):
        return {"voters": list(self.voters), "learners": list(self.learners)}

    def peer_status(self):
        """Leader: {id: {"match", "recent", "voter"}} for every other member."""
        if self.role != LEADER:
            return {}
        horizon = self.now - self.cfg.election_min_ms
        out = {}
        for p in self.peers:
            pr = self.progress.get(p)
            if pr is not None:
                out[p] = {"match": pr.match, "recent": pr.last_reply > horizon,
                          "voter": p in self.voters}
        return out

    def _live_members(self):
        """Ids heard from within election_min_ms (the leader itself if a voter)."""
        horizon = self.now - self.cfg.election_min_ms
        live = [self.id] if self.self_voter else []
        for p in self.progress:
            if self.progress[p].last_reply > horizon:
                live.append(p)
        return live

    def change_membership(self, client_id, seq, op, target):
        """Single-server membership change; the outcome comes in Ready.results."""
        err = client_problem(client_id, seq)
        if err is None and (type(op) is not str or op not in OPS):
            err = "unknown membership operation %r" % (op,)
        if err is None and (type(target) is not str or not 0 < len(target) <= 64):
            err = "target must be a node id (non-empty str of <= 64 chars)"
        if err is not None:
            self.results.append([client_id, seq, "invalid", err])
            return
        key = (client_id, seq)
        if self.role == LEADER:
            out = self.leader_change_membership(client_id, seq, op, target)
            if out is not None:
                self.results.append([client_id, seq, out[0], out[1]])
                return
        elif self.sessions.outcome(client_id, seq) is not None:
            # Applied here already (or its session expired): answer at once.
            out = self.sessions.outcome(client_id, seq)
            self.results.append([client_id, seq, out[0], out[1]])
            return
        elif self.leader_id is None:
            self.results.append([client_id, seq, "no_leader", None])
            return
        else:
            self.msgs.append(membership_request(self.id, self.leader_id, self.term, client_id, seq,
                                                op, target))
        self.pending[key] = self.now + self.cfg.request_timeout_ms

    def leader_change_membership(self, client_id, seq, op, target):
        """Check and append one configuration entry. None: appended (or
        already in the log: wait for its apply); else [error, value]."""
        # Exactly once, like proposals: a change applied before (even long
        # ago, or before a snapshot) is answered from the session table...
        done = self.sessions.outcome(client_id, seq)
        if done is not None:
            return done
        by = self.config_by
        if by is not None and by[0] == client_id and by[1] == seq:
            return None    # ... one in the log but not applied yet answers when it is
        # The previous change must be applied here too (not only committed),
        # so that its outcome is in the session table before a newer one
        # can hide it from the check above.
        wait = one_change_at_a_time(self.config_index, self.applied_index,
                                    self.term_at(self.commit_index), self.term)
        if wait is not None:
            return ["conf_pending", wait]
        pr = self.progress.get(target)
        refusal = change_refusal(op, target, self.voters, self.learners, self._live_members(),
                                 pr.match if pr is not None else 0, self.commit_index,
                                 self.cfg.max_voters, self.cfg.max_learners)
        if refusal is not None:
            return refusal
        voters, learners = changed_config(op, target, self.voters, self.learners)
        entry = config_entry(self.term, voters, learners, client_id, seq)
        self.log.append(entry)
        self.conf_log.append([self.last_index(), voters, learners, [client_id, seq]])
        self._adopt_latest_config()
        self._count("membership_changes")
        self.need_bcast = True
        return None

    def handle_membership_request(self, msg):
        _, src, _, _, client_id, seq, op, target = msg
        if self.role != LEADER:
            out = ["no_leader", self.leader_id]
        else:
            out = self.leader_change_membership(client_id, seq, op, target)
        if out is not None:
            self.msgs.append(membership_reply(self.id, src, self.term, client_id, seq,
                                              out[0], out[1]))

    def handle_membership_reply(self, msg):
        _, _, _, _, client_id, seq, error, value = msg
        key = (client_id, seq)
        if key in self.pending:
            del self.pending[key]
            self.results.append([client_id, seq, error, value])
