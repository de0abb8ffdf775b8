"""The bench page's replicated state (pages/bench.py has its own copy: a
page's bundle holds only raft/, components/ and pages/), for the tools that
run it outside a browser: the replica bench (--state benchmarks.tally:Tally)
and the Node.js pipelining lab. A cheap apply, so figures measure replication."""


class Tally:
    def __init__(self):
        self.count = 0

    def apply(self, command):
        self.count += 1
        return self.count

    def snapshot(self):
        return self.count

    def restore(self, data):
        self.count = data
