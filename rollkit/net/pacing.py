"""Pacing one endpoint from what its server says: the one place that owns rate limits.

Real servers meter requests and tokens with short buckets: a per-minute rate that refills
continuously, of which only a burst of 1 to 10 seconds' worth is usable at once
(../shared/design/rate_limits.md). Each `Meter` models one such bucket as the client believes the
server holds it, and learns it from what comes back:

- `x-ratelimit-limit-*` gives the rate (OpenAI);
- `x-ratelimit-remaining-*` gives the level; the largest reading is a lower bound on the burst, and
  with no limit header (Azure) the refill rate follows from two readings and what we sent between;
- with no header at all (vLLM, proxies) nothing is paced until a 429 comes: a server that queues
  (vLLM never answers 429) gets the allowed concurrency at once, and queueing is its job. From the
  first 429 on, the requests meter paces from 429s alone: it starts from the rate the server
  delivered, decreases multiplicatively on a 429 and increases additively while answers flow (`Aimd`).

A configured rpm/tpm (flag or endpoints file) is a ceiling: the server's lower figure wins.
`-1`, `0` and missing header values mean "unknown", never a limit. Until the burst is known, one
second's worth is assumed. After a 429 the level is emptied so that waiting requests leave at the
refill pace once the pause ends, not all together.

Rates are in units per wall-clock second; `window` is the length of the servers' "minute" (60 for real
services; tests shrink it, and every time constant here shrinks with it). How many requests go before
a server has shown its meters is the endpoint's ramp's business (`ramp`).
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DEFAULT_BURST_SECONDS = 1.0  # the burst assumed until the server shows a larger one
MIN_SPAN_SECONDS = 2.0  # readings closer than this say too little about the refill rate (they are whole numbers)
SPAN_SECONDS = 10.0  # how far back the refill rate is measured
PROBE_SECONDS = 1.0  # with the refill rate unknown and the bucket read as empty, one request this often
# Pace a little under the rate: each request then leaves the server's bucket a little fuller than we
# found it, which absorbs the jitter of arrival times once the burst is spent.
SAFETY = 0.97


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


def header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A positive header value, or None: missing, unparsable, `-1` and `0` all mean unknown."""
    try:
        value = float(headers[name])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


@dataclass
class Reading:
    """One `remaining` value, stamped with the send time and our running total at that send."""

    sent_at: float
    remaining: float
    mark: float


class Aimd:
    """A request rate found from 429s alone. Nothing is paced before the first 429 (the endpoint's
    ramp of requests in flight finds the server's pace); the first halves the rate the server
    delivered over the last few seconds, and from then on additive increase and multiplicative
    decrease, the decrease bounded by the delivered rate too (a burst inflates the rate the sender
    saw)."""

    DELIVERED_SECONDS = 5.0

    def __init__(self, start: float, second: float, clock: Callable[[], float]) -> None:
        self.second = second  # one of the server's seconds, in wall-clock seconds
        self.rate = start
        self.first_429 = True
        self.decreased_at = -1e18
        self.refused_at_rate: float | None = None  # the rate the last 429 came at
        self._clock = clock
        self._successes: deque[float] = deque()

    def on_success(self, grow: bool = True) -> None:
        """An answer: counted toward the delivered rate; with `grow`, the rate grows too."""
        now = self._clock()
        self._successes.append(now)
        while now - self._successes[0] > self.DELIVERED_SECONDS * self.second:
            self._successes.popleft()
        if not grow:
            return
        per_second = max(1.0, self.rate * self.second)  # successes in one server second at this rate
        # Back quickly toward the rate the last 429 came at, then probe past it slowly (as TCP
        # CUBIC does): 429s come once per probe, so a slow probe is fewer 429s at the same pace.
        near = self.refused_at_rate is not None and self.rate >= 0.9 * self.refused_at_rate
        growth = 0.01 if near else 0.05
        self.rate += max(0.1 / self.second, growth * self.rate) / per_second

    def delivered(self) -> float | None:
        if len(self._successes) < 2:
            return None
        span = max(self._clock() - self._successes[0], self.second)
        return len(self._successes) / span

    def on_429(self, sent_at: float) -> None:
        """Decrease once per episode: 429s of requests sent before the last decrease carry no news."""
        if sent_at < self.decreased_at:
            return
        delivered = self.delivered()
        if self.first_429 and delivered is not None:
            # Nothing was paced: the sender went as fast as the server answered, so the 429 came
            # at the rate delivered (or at a configured ceiling, when that is higher).
            self.rate = max(self.rate, delivered)
        self.refused_at_rate = self.rate
        target = self.rate * (0.5 if self.first_429 else 0.75)
        # Only a sender that kept up with its own pace measured the server; one that sent less
        # (few requests, long pauses) would talk itself down to nothing. At the first 429 the
        # sender outpaced the server while its burst lasted: what it delivered is the better bound.
        if delivered is not None and (self.first_429 or delivered >= 0.5 * self.rate):
            target = min(target, 0.95 * delivered)
        self.rate = max(1.0 / self.second, target)
        self.first_429 = False
        self.decreased_at = self._clock()


class Meter:
    """One metered dimension (`requests` or `tokens`) of one endpoint."""

    def __init__(self, unit: str, ceiling: float = 0, window: float = 60.0, *, adaptive: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.unit = unit
        self.window = window
        self.second = window / 60.0
        self._clock = clock
        self.ceiling = ceiling / window if ceiling and ceiling > 0 else None  # per second
        self.header_rate: float | None = None
        self.learned_rate: float | None = None
        self.burst_seen = 0.0  # largest remaining + cost read: the server's bucket is at least this
        self.aimd = Aimd(self.ceiling or 1.0 / self.second, self.second, clock) if adaptive else None
        self.aimd_active = False  # only once a 429 came with no meter of the server's own
        self._level = 0.0
        self._stamp = clock()
        self._known_level = False
        self.reserved_total = 0.0
        self._readings: deque[Reading] = deque()
        self._last_probe = -1e18
        self._newest_reading = -1e18

    # What is in force -----------------------------------------------------------------------
    def rate(self) -> float | None:
        """Units per second we pace at, or None when this dimension is not metered at all."""
        candidates = [r * SAFETY for r in (self.header_rate, self.learned_rate) if r]
        if self.ceiling:
            candidates.append(self.ceiling)
        if self.aimd_active and self.header_rate is None and self.learned_rate is None:
            candidates.append(self.aimd.rate)
        return min(candidates) if candidates else None

    def source(self) -> str | None:
        rate = self.rate()
        for name, value in (("headers", self.header_rate and self.header_rate * SAFETY),
                            ("learned from remaining", self.learned_rate and self.learned_rate * SAFETY),
                            ("flag", self.ceiling)):
            if value and value == rate:
                return name
        return "learned from 429s" if rate is not None else None

    def per_minute(self) -> float | None:
        rate = self.rate()
        return None if rate is None else rate * self.window

    def capacity(self) -> float:
        """The burst: what the server has shown it holds (a lower bound), else one second's worth."""
        if self.burst_seen:
            return max(self.burst_seen, 1.0)
        rate = self.rate() or 0.0
        return max(rate * DEFAULT_BURST_SECONDS * self.second, 1.0)

    def reserve(self) -> float:
        """Left in the server's bucket on purpose: a request that arrives a little early (network
        and scheduling jitter) still finds room. Our own ceiling needs none."""
        if not self.metered() or self.source() == "flag":
            return 0.0
        capacity = self.capacity()
        return min(0.25 * capacity, max(1.0 if self.unit == "requests" else 0.0, 0.02 * capacity))

    def metered(self) -> bool:
        return self.rate() is not None or self.burst_seen > 0

    # The bucket -----------------------------------------------------------------------------
    def level(self) -> float:
        now = self._clock()
        rate = self.rate()
        if not self._known_level:
            self._level, self._known_level = self.capacity(), self.metered()
        elif rate:
            self._level = min(self.capacity(), self._level + (now - self._stamp) * rate)
        self._stamp = now
        return self._level

    def wait_time(self, amount: float) -> float:
        """Seconds until `amount` fits; a request larger than the whole burst waits for a full one."""
        if not self.metered():
            return 0.0
        capacity = self.capacity()
        needed = min(min(amount, capacity) + self.reserve(), capacity) - self.level()
        if needed <= 0:
            return 0.0
        rate = self.rate()
        if rate:
            return needed / rate
        # Remaining readings but no rate yet: probe now and then, so a reading shows the refill.
        return max(0.0, self._last_probe + PROBE_SECONDS * self.second - self._clock())

    def take(self, amount: float) -> float:
        """Reserve `amount`; returns the running total after it (the mark a reading is aged by)."""
        self.level()
        self._level -= amount
        self.reserved_total += amount
        if not self.rate():
            self._last_probe = self._clock()
        return self.reserved_total

    def give_back(self, amount: float) -> None:
        if self.metered():
            self.level()
            self._level = min(self.capacity(), self._level + amount)

    def headroom(self) -> float:
        """Share of the burst that is free now, 0..1 (1 when not metered)."""
        return 1.0 if not self.metered() else max(0.0, self.level()) / self.capacity()

    # What the server said -------------------------------------------------------------------
    def observe_limit(self, per_minute: float | None) -> None:
        if per_minute:
            self.header_rate = per_minute / self.window

    def observe_remaining(self, remaining: float | None, sent_at: float, mark: float, cost: float) -> None:
        """A reading taken when the request sent at `sent_at` (our total then: `mark`) was admitted."""
        if remaining is None:
            return
        self.burst_seen = max(self.burst_seen, remaining + cost)
        if self.header_rate is None:
            self._learn_rate(Reading(sent_at, remaining, mark))
        if sent_at < self._newest_reading:
            return  # an older reading than one already adopted
        self._newest_reading = sent_at
        # The server took its reading somewhere between our send and its answer. Crediting no
        # refill since, while counting everything we sent after this request, errs low on both
        # counts: the next reading corrects it, and a 429 would cost more than the slack.
        present = remaining - (self.reserved_total - mark)
        if self.ceiling and self.rate() == self.ceiling:
            present = min(present, self.level())  # our own ceiling binds: never above our own bucket
        self.level()
        self._level, self._known_level = present, True

    def _learn_rate(self, reading: Reading) -> None:
        """Refill rate = (level change + what we took between) / time between, from readings below
        the top of the bucket (a full bucket stops refilling, so it would hide the rate)."""
        low = 0.8 * self.burst_seen
        if reading.remaining >= low:
            return
        readings = self._readings
        readings.append(reading)
        while readings and reading.sent_at - readings[0].sent_at > SPAN_SECONDS * self.second:
            readings.popleft()
        first = readings[0]
        span = reading.sent_at - first.sent_at
        if span < MIN_SPAN_SECONDS * self.second or first.remaining >= low:
            return
        estimate = (reading.remaining - first.remaining + reading.mark - first.mark) / span
        if estimate > 0:
            self.learned_rate = estimate if self.learned_rate is None else 0.7 * self.learned_rate + 0.3 * estimate

    def observe_429(self, sent_at: float, pause: float) -> None:
        """The server's bucket is empty: restart it so that, once the pause is over, waiting
        requests leave at the refill pace."""
        self.level()
        rate = self.rate() or 0.0
        self._level = min(self._level, -rate * pause)
        self._known_level = True
        if self.header_rate is None and self.learned_rate is None and self.aimd is not None:
            # Nothing the server said gives the rate (no meter, or a meter that reads empty, as it
            # does while a configured ceiling is too high): find it from the 429s themselves.
            self.aimd_active = True
            self.aimd.on_429(sent_at)
        elif self.learned_rate is not None and self.header_rate is None:
            self.learned_rate *= 0.95  # a refusal says the estimate ran high

    def observe_success(self) -> None:
        if self.aimd is not None:
            self.aimd.on_success(grow=self.aimd_active and self.header_rate is None and self.learned_rate is None)

    def describe(self) -> dict:
        per_minute = self.per_minute()
        return {"per_minute": None if per_minute is None else round(per_minute, 1), "source": self.source(),
                "burst": round(self.capacity(), 1) if per_minute is not None or self.burst_seen else None}


def openai_header_name(what: str, unit: str) -> str:
    """OpenAI's meter header for `what` (limit, remaining, reset) of `unit` (requests, tokens);
    Azure and the proxies in front of local servers use the same names."""
    return f"x-ratelimit-{what}-{unit}"


class Pacer:
    """The pacing of one endpoint: its two meters, the pause a 429 asks for, and how many requests
    it may have in flight (halved on a 429 when the server shows no meter, grown as answers flow).
    `header_name(what, unit)` names the meter headers (the endpoint kind's)."""

    def __init__(self, rpm: float, tpm: float, window: float = 60.0, max_in_flight: int = 1 << 30,
                 clock: Callable[[], float] = time.monotonic,
                 header_name: Callable[[str, str], str] = openai_header_name) -> None:
        self.requests = Meter("requests", rpm, window, adaptive=True, clock=clock)
        self.tokens = Meter("tokens", tpm, window, clock=clock)
        self._names = {unit: (header_name("limit", unit), header_name("remaining", unit))
                       for unit in ("requests", "tokens")}
        self._reset_names = (header_name("reset", "requests"), header_name("reset", "tokens"))
        self._clock = clock
        self.paused_until = 0.0
        self.max_in_flight, self.window_in_flight = max_in_flight, float(max_in_flight)
        self.in_flight = 0

    def wait_time(self, cost: float) -> float:
        now = self._clock()
        if self.in_flight >= max(1, int(self.window_in_flight)):
            return float("inf")
        return max(self.paused_until - now, self.requests.wait_time(1), self.tokens.wait_time(cost))

    def headroom(self) -> float:
        return min(self.requests.headroom(), self.tokens.headroom())

    def limit_in_flight(self, count: int) -> None:
        """At most `count` in flight (the stage's concurrency), fewer while 429s come with no meter."""
        self.max_in_flight, self.window_in_flight = count, float(count)

    def reserve(self, cost: float) -> tuple[float, float, float]:
        """Take one request and `cost` tokens; the marks let a reading be aged to the present."""
        self.in_flight += 1
        return self._clock(), self.requests.take(1), self.tokens.take(cost)

    def release(self) -> None:
        self.in_flight -= 1

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self._clock() + seconds)

    def observe(self, headers: Mapping[str, str], marks: tuple[float, float, float], cost: float) -> bool:
        """Read the meter headers of any answer (429s included); True when the server sent one."""
        sent_at, request_mark, token_mark = marks
        seen = False
        for meter, mark, amount in ((self.requests, request_mark, 1.0), (self.tokens, token_mark, cost)):
            limit_name, remaining_name = self._names[meter.unit]
            meter.observe_limit(header_number(headers, limit_name))
            meter.observe_remaining(header_number(headers, remaining_name), sent_at, mark, amount)
            # A header sent as -1 or 0 is no reading, but it shows the server meters this.
            seen = seen or limit_name in headers or remaining_name in headers
        return seen

    def asked_pause(self, headers: Mapping[str, str]) -> float:
        """The pause a 429 asks for (retry-after, else the meter's reset); with no hint, one
        second of the server's minute."""
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = header_number(headers, name)
            if value is not None:
                return value * scale
        requests, tokens = self._reset_names
        return parse_reset(headers.get(requests)) or parse_reset(headers.get(tokens)) or self.requests.second

    def on_429(self, sent_at: float, pause: float, dimension: str | None) -> None:
        self.pause(pause)
        meters = [m for m in (self.requests, self.tokens) if dimension in (None, m.unit)]
        for meter in meters or [self.requests]:
            meter.observe_429(sent_at, pause)
        if self.requests.aimd_active:
            self.window_in_flight = max(1.0, self.window_in_flight / 2)

    def on_success(self) -> None:
        self.requests.observe_success()
        if self.window_in_flight < self.max_in_flight:
            self.window_in_flight = min(float(self.max_in_flight), self.window_in_flight + 1.0)

    def on_usage(self, estimated_prompt: float, counted_prompt: int, had_meter: bool) -> None:
        """Without the server's meter, correct our prompt estimate from what the server counted."""
        if not had_meter:
            self.tokens.give_back(estimated_prompt - counted_prompt)

    def describe(self) -> dict:
        return {"requests": self.requests.describe(), "tokens": self.tokens.describe()}
