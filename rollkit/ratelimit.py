"""Per-endpoint request and token budgets.

Each budget is a bucket that refills continuously (the way OpenAI and Azure meter RPM and TPM):
capacity is the per-minute limit, refill is limit/60 per second. A request reserves its estimate
before it is sent, so the client never sends what the server would refuse; the server's
`x-ratelimit-remaining-*` headers then pull the bucket down when the server knows better.
"""

from __future__ import annotations

import re
import time

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_reset(value: str | None) -> float | None:
    """Seconds from OpenAI's reset header format: `1s`, `6m0s`, `120ms`, `1.5s` (or a bare number)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts:
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


class Budget:
    """A refilling bucket of `limit` units per `window` seconds; limit 0 means unlimited."""

    def __init__(self, limit: float, window: float = 60.0, clock=time.monotonic) -> None:
        self.limit = float(limit)
        self.rate = self.limit / window if limit else 0.0
        self._clock = clock
        self._level = self.limit
        self._stamp = clock()
        # Running total of reservations, so a server reading can be aged to the present (see observe).
        self.reserved_total = 0.0

    @property
    def unlimited(self) -> bool:
        return self.limit <= 0

    def level(self) -> float:
        if self.unlimited:
            return float("inf")
        now = self._clock()
        self._level = min(self.limit, self._level + (now - self._stamp) * self.rate)
        self._stamp = now
        return self._level

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` fits; a request larger than the whole bucket waits for a full one."""
        if self.unlimited:
            return 0.0
        needed = min(amount, self.limit) - self.level()
        return max(0.0, needed / self.rate)

    def take(self, amount: float) -> None:
        if not self.unlimited:
            self.level()
            self._level -= amount
            self.reserved_total += amount

    def give_back(self, amount: float) -> None:
        if not self.unlimited:
            self.level()
            self._level = min(self.limit, self._level + amount)

    def observe_remaining(self, remaining: float, age: float, reserved_since: float) -> None:
        """Adopt the server's count when it is lower (another client may share the key, or our
        estimates run low). The reading is `age` seconds old and predates `reserved_since` units we
        reserved after it, so it is brought to the present before comparing."""
        if self.unlimited:
            return
        now_remaining = min(self.limit, remaining + age * self.rate) - reserved_since
        if now_remaining < self.level():
            self._level = now_remaining

    def headroom(self) -> float:
        """Share of the bucket that is free now, 0..1 (1 for unlimited)."""
        return 1.0 if self.unlimited else max(0.0, self.level()) / self.limit
