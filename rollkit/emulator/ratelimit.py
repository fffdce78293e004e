"""Server-side RPM/TPM enforcement as OpenAI does it: token buckets and `x-ratelimit-*` headers.

This is the emulator's limiter (the thing a client must respect), deliberately independent of the
client's own budget in `rollkit.ratelimit`, so a bug in one cannot hide a bug in the other.

Each limit is a bucket of `limit` units refilling continuously at `limit / window` per second and
starting full. A request must fit in every limited bucket at once; a refused request (429) takes
nothing. All durations in headers are wall-clock seconds: with `--window-seconds 1` a client that
waits for `retry-after` or `x-ratelimit-reset-*` waits the right (short) time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """A continuously refilling budget. `limit == 0` means unlimited."""

    limit: int
    window_seconds: float
    clock: Callable[[], float] = time.monotonic
    level: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.level = float(self.limit)
        self.updated = self.clock()

    @property
    def unlimited(self) -> bool:
        return self.limit <= 0

    @property
    def rate(self) -> float:
        return self.limit / self.window_seconds

    def refill(self) -> None:
        now = self.clock()
        if not self.unlimited:
            self.level = min(float(self.limit), self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` fits (0 if it fits now). A cost above the limit waits for a full bucket."""
        if self.unlimited:
            return 0.0
        missing = min(cost, float(self.limit)) - self.level
        return max(0.0, missing / self.rate)

    def until_full(self) -> float:
        return 0.0 if self.unlimited else (self.limit - self.level) / self.rate

    def take(self, cost: float) -> None:
        if not self.unlimited:
            self.level -= cost


@dataclass(frozen=True)
class Decision:
    """The outcome of one admission check, with everything the response headers need."""

    allowed: bool
    limited_by: str | None  # "requests" or "tokens" when refused
    retry_after_s: float
    headers: dict[str, str]
    too_large: bool = False  # the token cost exceeds the whole TPM limit: waiting will not help


class RateLimiter:
    """One RPM and one TPM bucket (the emulator keeps one limiter per model or deployment)."""

    def __init__(self, rpm: int, tpm: int, window_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.requests = TokenBucket(rpm, window_seconds, clock)
        self.tokens = TokenBucket(tpm, window_seconds, clock)

    def admit(self, token_cost: int) -> Decision:
        """Take one request and `token_cost` tokens if both fit; otherwise take nothing."""
        self.requests.refill()
        self.tokens.refill()
        wait_requests = self.requests.wait_for(1)
        wait_tokens = self.tokens.wait_for(token_cost)
        too_large = not self.tokens.unlimited and token_cost > self.tokens.limit
        if wait_requests > 0 or wait_tokens > 0 or too_large:
            limited_by = "requests" if wait_requests > 0 else "tokens"
            retry = max(wait_requests, wait_tokens)
            return Decision(False, limited_by, retry, self.headers(), too_large)
        self.requests.take(1)
        self.tokens.take(token_cost)
        return Decision(True, None, 0.0, self.headers())

    def snapshot(self) -> Decision:
        """Headers without taking anything (used for injected 429s and other early answers)."""
        self.requests.refill()
        self.tokens.refill()
        return Decision(True, None, 0.0, self.headers())

    def headers(self) -> dict[str, str]:
        """`x-ratelimit-*` headers for every limited dimension; an unlimited one sends none."""
        out: dict[str, str] = {}
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket.unlimited:
                continue
            out[f"x-ratelimit-limit-{name}"] = str(bucket.limit)
            out[f"x-ratelimit-remaining-{name}"] = str(max(0, math.floor(bucket.level)))
            out[f"x-ratelimit-reset-{name}"] = format_duration(bucket.until_full())
        return out


def retry_after_headers(seconds: float) -> dict[str, str]:
    """`retry-after-ms` (exact) and `retry-after` (whole seconds, rounded up) for a 429."""
    return {"retry-after-ms": str(max(1, math.ceil(seconds * 1000))), "retry-after": str(max(1, math.ceil(seconds)))}


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: `120ms`, `1s`, `1.5s`, `6m0s`, `1h2m3s`."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
