"""Per-socket token bucket with strikes, so a flood is first refused, then cut."""


class TokenBucket:
    """`rate` tokens/s up to `burst`. Refused frames add strikes that fade at
    `strike_fade` per second; more than `max_strikes` outstanding means a
    sustained flood. Time is passed in (seconds, monotonic) to keep it testable."""

    __slots__ = ("rate", "burst", "tokens", "strikes", "strike_fade", "max_strikes", "last")

    def __init__(self, rate: float, burst: float, now: float,
                 strike_fade: float = 100.0, max_strikes: float = 400.0):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.strikes = 0.0
        self.strike_fade = strike_fade
        self.max_strikes = max_strikes
        self.last = now

    def take(self, now: float) -> bool:
        """Spend one token; False when the frame must be refused."""
        elapsed = now - self.last
        if elapsed > 0:
            self.last = now
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
            if self.strikes:
                self.strikes = max(0.0, self.strikes - elapsed * self.strike_fade)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.strikes += 1.0
        return False

    @property
    def flooding(self) -> bool:
        return self.strikes > self.max_strikes
