"""A state class for the replica tests (--state tests.replica.counter_state:Counter):
the README's shared counter, so a write applied twice shows."""


class Counter:
    def __init__(self):
        self.value = 0

    def apply(self, delta):
        if not isinstance(delta, int):
            raise TypeError("need an int")
        self.value += delta
        return self.value

    def snapshot(self):
        return self.value

    def restore(self, data):
        self.value = data
