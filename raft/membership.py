"""Cluster membership rules (single-server changes, Raft thesis §4.1) as small
pure functions; the node's hooks in raft/membership_node.py call them.

A configuration is {"voters": [ids], "learners": [ids]} (sorted, disjoint).
Voters vote and count toward every majority; learners only receive the log.
A configuration entry in the log is [term, None, 0, {"voters", "learners",
"by": [client_id, seq]}]; it takes effect as soon as it is appended.
"""

OPS = ("add_learner", "promote", "remove")
MAX_IDS = 64          # ids in one list of a configuration on the wire


def quorum_of(voters):
    """A majority of the voters."""
    return len(voters) // 2 + 1


def is_config_entry(entry):
    # The leader's no-op has command None; a configuration entry has a dict.
    return entry[1] is None and entry[3] is not None


def config_entry(term, voters, learners, client_id, seq):
    return [term, None, 0, {"voters": voters, "learners": learners, "by": [client_id, seq]}]


def _ids_problem(ids, what):
    if type(ids) is not list or len(ids) > MAX_IDS:
        return "bad " + what
    prev = None
    for x in ids:
        if type(x) is not str or not 0 < len(x) <= 64:
            return "bad id in " + what
        if prev is not None and not prev < x:
            return what + " not sorted and unique"
        prev = x
    return None


def config_problem(conf, with_by):
    """None if conf is a well-formed configuration (with its "by" field when
    it comes from a log entry), else why not."""
    if type(conf) is not dict:
        return "configuration is not a dict"
    keys = 3 if with_by else 2
    if len(conf) != keys or "voters" not in conf or "learners" not in conf:
        return "configuration needs voters and learners"
    err = _ids_problem(conf["voters"], "voters") or _ids_problem(conf["learners"], "learners")
    if err is not None:
        return err
    if not conf["voters"]:
        return "configuration without voters"
    for x in conf["learners"]:
        if x in conf["voters"]:
            return "learner is also a voter"
    if with_by:
        by = conf.get("by")
        if (type(by) is not list or len(by) != 2 or type(by[0]) is not str or
                not 0 < len(by[0]) <= 128 or type(by[1]) is not int or
                not 1 <= by[1] <= 9007199254740991):
            return "bad 'by' of configuration"
    return None


def changed_config(op, target, voters, learners):
    """The configuration after one change (assumes change_refusal said yes)."""
    v = [x for x in voters if x != target]
    ln = [x for x in learners if x != target]
    if op == "add_learner":
        ln.append(target)
    elif op == "promote":
        v.append(target)
    v.sort()
    ln.sort()
    return v, ln


def one_change_at_a_time(config_index, commit_index, commit_term, term):
    """Thesis §4.1: the previous change must be committed, and (the fix for
    the single-server bug, §4.1 errata) the leader must have committed an
    entry of its own term. None, or why we must wait."""
    if config_index > commit_index:
        return "the previous membership change (entry %d) is not committed yet" % config_index
    if commit_term != term:
        return "the leader has not committed an entry of its term yet"
    return None


def state_problem(op, target, voters, learners):
    """'invalid' reasons: target in the wrong state for op."""
    if op not in OPS:
        return "unknown membership operation %r" % (op,)
    if op == "add_learner":
        if target in voters:
            return "%s is already a voter" % target
        if target in learners:
            return "%s is already a learner" % target
    elif op == "promote":
        if target not in learners:
            return "%s is not a learner" % target
    elif target not in voters and target not in learners:
        return "%s is not a member" % target
    return None


def live_majority_problem(op, target, new_voters, live):
    """After the change, the voters we heard from recently must still form a
    majority, or the cluster would stall. `live`: ids heard recently (the
    leader itself included when it stays a voter)."""
    if not new_voters:
        return "no voter would be left"
    n = 0
    for v in new_voters:
        if v in live:
            n += 1
    need = quorum_of(new_voters)
    if n >= need:
        return None
    verb = "removing" if op == "remove" else "promoting"
    return "%s %s would leave %d live voter%s of %d (a majority needs %d)" % (
        verb, target, n, "" if n == 1 else "s", len(new_voters), need)


def catch_up_problem(target, heard, match, commit_index):
    """Promote only a learner that is live and holds every committed entry."""
    if not heard:
        return "learner %s has not been heard from recently" % target
    if match < commit_index:
        return "learner %s is not caught up (has %d of %d entries)" % (target, match, commit_index)
    return None


def change_refusal(op, target, voters, learners, live, match, commit_index,
                   max_voters, max_learners):
    """The leader's safety checks for one change: None (go ahead) or
    [error, reason] with error 'invalid' or 'unsafe'."""
    err = state_problem(op, target, voters, learners)
    if err is not None:
        return ["invalid", err]
    if op == "add_learner":
        if len(learners) >= max_learners:
            return ["unsafe", "a cluster has at most %d learners" % max_learners]
        return None
    if op == "promote":
        if len(voters) >= max_voters:
            return ["unsafe", "a cluster has at most %d voters" % max_voters]
        err = catch_up_problem(target, target in live, match, commit_index)
        if err is not None:
            return ["unsafe", err]
    elif target not in voters:
        return None               # removing a learner never endangers a quorum
    new_voters, _ = changed_config(op, target, voters, learners)
    err = live_majority_problem(op, target, new_voters, live)
    if err is not None:
        return ["unsafe", err]
    return None


def config_at(conf_log, base, index):
    """Configuration in effect at `index`: the last entry of conf_log
    ([index, voters, learners, by], ascending) at or below it, else base."""
    best = base
    for c in conf_log:
        if c[0] > index:
            break
        best = c
    return best
