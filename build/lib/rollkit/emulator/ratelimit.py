"""Server-side RPM/TPM enforcement the way the real services meter: short burst buckets, their
headers in each service's shape, and (optionally) rejected requests counted against the limit.

This is the emulator's limiter (the thing a client must respect), deliberately independent of the
client's own pacing in `rollkit.net.pacing`, so a bug in one cannot hide a bug in the other.

Each limit is a bucket refilling continuously at `limit / window` per second. It holds only
`burst_seconds` worth of that (Azure evaluates RPM over 1 or 10 s windows; OpenAI says short
bursts are refused even under the per-minute total), so a client cannot spend a minute's budget at
once. A request must fit in every limited bucket at once. With `count_rejected` a 429 still uses up
one request of the budget, as OpenAI documents ("unsuccessful requests contribute to your
per-minute limit"): a client that resends at once starves itself.

Header shapes (`--headers`): `openai` sends all six `x-ratelimit-*` headers; `azure` sends only
`x-ratelimit-remaining-*`; `none` sends no meter at all (vLLM, most proxies). `unknown_share` makes
some remaining values `-1`, as Azure has been seen to send. Durations are wall-clock seconds.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

HEADER_STYLES = ("openai", "azure", "none")


@dataclass
class TokenBucket:
    """A continuously refilling budget of `limit` per window, holding at most `capacity`.
    `limit == 0` means unlimited."""

    limit: int
    window_seconds: float
    burst_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    level: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.level = self.capacity
        self.updated = self.clock()

    @property
    def unlimited(self) -> bool:
        return self.limit <= 0

    @property
    def rate(self) -> float:
        return self.limit / self.window_seconds

    @property
    def capacity(self) -> float:
        """The burst: `burst_seconds` of a real minute's worth, never less than one unit."""
        return max(1.0, self.limit * min(1.0, self.burst_seconds / 60.0))

    def refill(self) -> None:
        now = self.clock()
        if not self.unlimited:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, cost: float) -> float:
        """Seconds until `cost` fits (0 if it fits now). A cost above the burst waits for a full bucket."""
        if self.unlimited:
            return 0.0
        missing = min(cost, self.capacity) - self.level
        return max(0.0, missing / self.rate)

    def until_full(self) -> float:
        return 0.0 if self.unlimited else max(0.0, self.capacity - self.level) / self.rate

    def take(self, cost: float) -> None:
        if not self.unlimited:
            self.level = max(-self.capacity, self.level - cost)


@dataclass(frozen=True)
class Decision:
    """The outcome of one admission check, with everything the response headers need."""

    allowed: bool
    limited_by: str | None  # "requests" or "tokens" when refused
    retry_after_s: float
    headers: dict[str, str]
    too_large: bool = False  # the token cost exceeds the whole TPM limit: waiting will not help


@dataclass(frozen=True)
class MeterSettings:
    """How one emulated deployment meters: limits, burst, what a 429 costs, what headers say."""

    rpm: int = 0
    tpm: int = 0
    window_seconds: float = 60.0
    burst_seconds: float = 60.0
    count_rejected: bool = False
    header_style: str = "openai"
    unknown_share: float = 0.0  # share of remaining-* values sent as -1


class RateLimiter:
    """One RPM and one TPM bucket (the emulator keeps one limiter per model or deployment)."""

    def __init__(self, settings: MeterSettings, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None):
        self.settings = settings
        s = settings
        self.requests = TokenBucket(s.rpm, s.window_seconds, s.burst_seconds, clock)
        self.tokens = TokenBucket(s.tpm, s.window_seconds, s.burst_seconds, clock)
        self._rng = rng or random.Random(0)

    def admit(self, token_cost: int) -> Decision:
        """Take one request and `token_cost` tokens if both fit; a refusal takes nothing, or one
        request with `count_rejected`."""
        self.requests.refill()
        self.tokens.refill()
        wait_requests = self.requests.wait_for(1)
        wait_tokens = self.tokens.wait_for(token_cost)
        too_large = not self.tokens.unlimited and token_cost > self.tokens.limit
        if wait_requests > 0 or wait_tokens > 0 or too_large:
            limited_by = "requests" if wait_requests > 0 else "tokens"
            retry = max(wait_requests, wait_tokens)
            if self.settings.count_rejected:
                self.requests.take(1)
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
        """`x-ratelimit-*` headers in the configured shape, for every limited dimension."""
        style = self.settings.header_style
        out: dict[str, str] = {}
        if style == "none":
            return out
        for name, bucket in (("requests", self.requests), ("tokens", self.tokens)):
            if bucket.unlimited:
                continue
            remaining = str(max(0, math.floor(bucket.level)))
            if self.settings.unknown_share and self._rng.random() < self.settings.unknown_share:
                remaining = "-1"
            out[f"x-ratelimit-remaining-{name}"] = remaining
            if style == "openai":
                out[f"x-ratelimit-limit-{name}"] = str(bucket.limit)
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
