"""Token buckets with strikes (a flood is first refused, then cut) and a log
throttle (bad input costs at most one log line per interval)."""

import time


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

    def idle(self, now: float) -> bool:
        """Full again and no strikes left: as good as a new bucket."""
        elapsed = max(now - self.last, 0.0)
        return (self.tokens + elapsed * self.rate >= self.burst
                and self.strikes <= elapsed * self.strike_fade)


class LogThrottle:
    """At most one log line per `key` per `interval` seconds; the next line
    says how many were suppressed. Keys are a few fixed categories (never an
    address), so this stays small whatever the traffic."""

    def __init__(self, logger, interval: float = 10.0, clock=time.monotonic):
        self.logger = logger
        self.interval = interval
        self.clock = clock
        self._seen: dict[str, list] = {}  # key -> [time of last line, suppressed since]

    def __call__(self, level: int, key: str, msg: str, *args, **kwargs) -> bool:
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            msg += " (%d more like this in the last %.0f s)"
            args += (seen[1], now - seen[0])
        self._seen[key] = [now, 0]
        self.logger.log(level, msg, *args, **kwargs)
        return True
