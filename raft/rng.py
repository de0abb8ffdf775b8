"""A small deterministic PRNG (xorshift32): same sequence on CPython and
MicroPython, so simulator seeds replay everywhere. Not for cryptography."""


class Rng:
    def __init__(self, seed=1):
        s = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF
        self.state = s or 0x6D2B79F5

    def next_u32(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def random(self):
        """Float in [0, 1): the callable Node expects as its rng."""
        return self.next_u32() / 4294967296.0

    def randint(self, lo, hi):
        """Integer in [lo, hi], both inclusive."""
        return lo + self.next_u32() % (hi - lo + 1)

    def choice(self, seq):
        return seq[self.next_u32() % len(seq)]

    def chance(self, p):
        return p > 0 and self.random() < p


def seed_from_text(text):
    """Stable seed from a string (hash() differs between implementations)."""
    h = 2166136261
    for ch in text:
        h = ((h ^ ord(ch)) * 16777619) & 0xFFFFFFFF
    return h
