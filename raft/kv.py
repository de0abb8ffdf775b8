"""Deterministic key/value state machine (put, get, delete, compare-and-set)."""


class KVStateMachine:
    def __init__(self):
        self.data = {}

    def apply(self, command):
        """command: ["put", k, v] | ["get", k] | ["del", k] | ["cas", k, old, new]."""
        if type(command) is not list or len(command) < 2 or type(command[1]) is not str:
            return ["error", "command must be [op, key, ...] with a string key"]
        op = command[0]
        n = len(command)
        key = command[1]
        data = self.data
        if op == "put" and n == 3:
            prev = data.get(key)
            data[key] = command[2]
            return prev
        if op == "get" and n == 2:
            return data.get(key)
        if op == "del" and n == 2:
            if key in data:
                del data[key]
                return True
            return False
        if op == "cas" and n == 4:
            cur = data.get(key)
            if cur == command[2]:
                data[key] = command[3]
                return [True, command[3]]
            return [False, cur]
        return ["error", "unknown command"]

    def snapshot(self):
        return [[k, self.data[k]] for k in sorted(self.data)]

    def restore(self, data):
        self.data = dict((k, v) for k, v in data)
