"""Log compaction and InstallSnapshot (Raft §7; part of Node, see
raft/node.py).

When the applied part of the log passes an entry or byte threshold, the node
snapshots its state machine, sessions and configuration at applied_index and
drops the log up to it. A leader sends its snapshot, in chunks paced by the
follower's acks, to a follower that needs compacted entries; the follower
keeps the log after the snapshot if it holds the snapshot's last entry with
the same term, else replaces its whole log.

State (set in Node.__init__): snapshot ([index, term, data], the latest),
snap_blob (its compact JSON, made when a follower needs it), snap_out /
snap_installed / snap_discard_log (the one Ready.snapshot not persisted
yet), snap_in (a follower's codec.IncomingSnapshot), log_bytes and
measured_upto (the byte trigger); it moves offset and cuts log.
"""
import json

from .codec import (compact, MSG_OVERHEAD as _MSG_OVERHEAD, utf8_len as _utf8_len,
                    snapshot_chunk, snapshot_reply, text_piece, IncomingSnapshot)
from .membership import config_problem, config_at
from .progress import SNAPSHOT
from .sessions import sessions_problem
from .roles import LEADER, NOOP

_MEASURE_EVERY = 64        # applied entries between two byte measurements of the log
_MAX_SNAPSHOT = 64 << 20   # chars: an incoming snapshot larger than this is refused


class LogCompaction:
    """Snapshots, compaction and InstallSnapshot; a mixin of Node."""

    def snapshot_state(self):
        c = config_at(self.conf_log, self.base_conf, self.applied_index)
        return {"sm": self.state_machine.snapshot(), "sessions": self.sessions.snapshot(),
                "index": self.applied_index,
                "config": {"voters": c[1], "learners": c[2]}}

    def restore_state(self, data):
        self.state_machine.restore(data["sm"])
        self.sessions.restore(data["sessions"])

    def log_too_long(self):
        """Compaction trigger: applied entries in the log over the entry or byte threshold."""
        cfg = self.cfg
        n = self.applied_index - self.offset
        if n <= 0:
            return False
        over = 0
        if cfg.snapshot_entries:
            over = n * 2 // cfg.snapshot_entries        # 1: over, 2: twice over
        if cfg.snapshot_bytes:
            if self.applied_index - self.measured_upto >= _MEASURE_EVERY:
                # One C-level dumps per chunk of entries, not one per entry.
                off = self.offset
                seg = self.log[self.measured_upto + 1 - off:self.applied_index + 1 - off]
                self.log_bytes += _utf8_len(compact(seg))
                self.measured_upto = self.applied_index
            b = self.log_bytes * 2 // cfg.snapshot_bytes
            if b > over:
                over = b
        if over < 2:
            return False
        if self.role == LEADER and over < 4:
            # Spare followers a snapshot transfer: wait (up to twice the
            # threshold) until every follower we hear from has these entries.
            horizon = self.now - self.cfg.election_min_ms
            for pr in self.progress.values():
                if pr.last_heard > horizon and pr.match < self.applied_index:
                    return False
        return True

    def compact_log(self):
        """Snapshot the state machine at applied_index and drop the log up to it."""
        index = self.applied_index
        term = self.term_at(index)
        data = self.snapshot_state()
        del self.log[:index - self.offset]
        self.log[0] = [term, NOOP, 0, None]
        self.offset = index
        # The snapshot now holds the configuration in effect at index.
        c = config_at(self.conf_log, self.base_conf, index)
        self.base_conf = [0, c[1], c[2], c[3]]
        self.conf_log = [x for x in self.conf_log if x[0] > index]
        self._adopt_latest_config()
        self._set_snapshot([index, term, data], False, False)
        self._count("snapshots_taken")

    def stored_log_replicated(self):
        """Leader: a majority of the other voters have stored every entry
        that is or may be committed (up to our commit index: no node marks
        more), so losing our own stored copy of the log loses nothing."""
        if self.role != LEADER:
            return False
        c = self.commit_index
        n = 0
        for pr in self.voter_prs:
            if pr.match >= c:
                n += 1
        return n >= self.quorum

    def _set_snapshot(self, snap, installed, discard_log):
        self.snapshot = snap
        self.snap_blob = None
        if self.snap_out is not None:
            installed = installed or self.snap_installed
            discard_log = discard_log or self.snap_discard_log
        self.snap_out = snap
        self.snap_installed = installed
        self.snap_discard_log = discard_log
        self.log_bytes = 0
        self.measured_upto = snap[0]
        if self.unstable_from <= snap[0]:
            self.unstable_from = snap[0] + 1

    def send_snapshot_chunk(self, to):
        """InstallSnapshot: send the chunk at the offset the follower asked for."""
        pr = self.progress[to]
        s_index, s_term, data = self.snapshot
        if pr.snap_index != s_index:
            pr.become_snapshot(s_index)      # a newer snapshot replaces the one in transfer
        if self.snap_blob is None:
            self.snap_blob = compact(data)
        blob = self.snap_blob
        start = pr.snap_offset
        text = text_piece(blob, start, self.cfg.max_bytes_per_msg - _MSG_OVERHEAD)
        done = 1 if start + len(text) >= len(blob) else 0
        self.msgs.append(snapshot_chunk(self.id, to, self.term, s_index, s_term, start, text, done))
        self._count("snapshot_chunks_sent")

    def handle_install_snapshot_reply(self, msg):
        _, src, _, _, s_index, answered, want, done = msg
        pr = self._reply_progress(src)
        if pr is None:
            return
        if pr.state != SNAPSHOT or s_index != pr.snap_index:
            self._count("dropped_stale_reply")
            return
        if done:
            # Installed (or already covered): resume normal replication after it.
            if s_index > pr.match:
                pr.match = s_index
            pr.become_probe(pr.match + 1)
            self.send_append(src, True)
            return
        if answered != pr.snap_offset:
            # Answers a chunk we no longer send (a duplicate, a reordered
            # ack, one from before the follower restarted): ignore it, or
            # copies would multiply and a stale offset could stall us.
            self._count("dropped_stale_reply")
            return
        blob_len = len(self.snap_blob) if self.snap_blob is not None else 0
        if want > blob_len:
            self._count("dropped_out_of_range")
            return
        # The follower's stated offset rules. Asked for the same chunk
        # again: the heartbeat reply resends it (no tight loop).
        if want != pr.snap_offset:
            pr.snap_offset = want
            self.send_snapshot_chunk(src)

    def handle_install_snapshot_request(self, msg):
        """Follower: collect chunks in order (ack = next offset wanted), then install."""
        if self.role == LEADER:
            self._count("dropped_second_leader")
            return
        _, src, _, _, s_index, s_term, start, part, last = msg
        self._heard_from_leader(src)
        if s_index <= self.commit_index:
            # We already have all it covers: let the leader go on after it.
            self.snap_in = None
            self.msgs.append(snapshot_reply(self.id, src, self.term, s_index, start, start, 1))
            return
        cur = self.snap_in
        if cur is None or cur.index != s_index or cur.term != s_term:
            if start != 0:
                self.msgs.append(snapshot_reply(self.id, src, self.term, s_index, start, 0, 0))
                return
            cur = IncomingSnapshot(s_index, s_term)
            self.snap_in = cur
        have = cur.size
        if start != have:
            self.msgs.append(snapshot_reply(self.id, src, self.term, s_index, start, have, 0))
            return
        cur.parts.append(part)
        have += len(part)
        cur.size = have
        if have > _MAX_SNAPSHOT:
            self._count("dropped_snapshot_too_large")
            self.snap_in = None
            return
        if not last:
            self.msgs.append(snapshot_reply(self.id, src, self.term, s_index, start, have, 0))
            return
        self.snap_in = None
        try:
            data = json.loads("".join(cur.parts))
        except Exception:
            data = None
        if (type(data) is not dict or data.get("index") != s_index or
                "sm" not in data or sessions_problem(data.get("sessions")) is not None or
                ("config" in data and config_problem(data["config"], False) is not None)):
            self._count("dropped_bad_snapshot")
            self.msgs.append(snapshot_reply(self.id, src, self.term, s_index, start, 0, 0))
            return
        self.install_snapshot(s_index, s_term, data)
        self.msgs.append(snapshot_reply(self.id, src, self.term, s_index, start, have, 1))

    def install_snapshot(self, index, term, data):
        """Raft §7: keep the log after the snapshot if it has the snapshot's
        last entry with the same term; otherwise discard the whole log."""
        off = self.offset
        last = self.last_index()
        keep = off < index <= last and self.term_at(index) == term
        if keep:
            del self.log[:index - off]
            self.log[0] = [term, NOOP, 0, None]
            self.conf_log = [c for c in self.conf_log if c[0] > index]
        else:
            self.log = [[term, NOOP, 0, None]]
            self.unstable_from = index + 1
            self.conf_log = []
        self.offset = index
        self.base_conf = self._snapshot_conf(data)
        self._adopt_latest_config()
        self.restore_state(data)
        self.applied_index = index
        if self.commit_index < index:
            self.commit_index = index
        self._set_snapshot([index, term, data], True, not keep)
        self._count("snapshots_installed")
        self._release_local_reads()
