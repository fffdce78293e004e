"""Everything live about one endpoint, owned by it: its pacing (`pacing.Pacer`), its ramp and
refusal verdict (`ramp.Ramp`), its health (failures in a row, down since, backing off), the proxy
its requests go through, and the probe that tells a slow server from a down one. The client and
the exchange tell it what happened; they never reach into its pacer or its ramp."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from rollkit.net.pacing import Pacer
from rollkit.net.ramp import Ramp
from rollkit.net.refusals import Signature
from rollkit.net.replies import limited_by

if TYPE_CHECKING:
    from rollkit.net.endpoints import Endpoint

BACKOFF_AFTER_FAILURES = 3  # failures in a row before the whole endpoint backs off
MAX_BACKOFF_SECONDS = 30.0
DOWN_AFTER_SECONDS = 2.0  # no answer for this long, while failing in a row: the endpoint is down
PROBE_FRESH_SECONDS = 5.0  # cut-offs this close together share one probe


class EndpointState:
    """The live pacing, ramp, verdict and health of one endpoint. `notify` wakes the requests
    waiting for an endpoint (the pool's)."""

    def __init__(self, endpoint: Endpoint, max_in_flight: int = 1 << 30,
                 notify: Callable[[], None] = lambda: None) -> None:
        self.endpoint = endpoint
        self.pacer = Pacer(endpoint.rpm, endpoint.tpm, endpoint.window_seconds, max_in_flight,
                           header_name=endpoint.adapter.ratelimit_header)
        self.ramp = Ramp(endpoint.adapter.may_meter, notify=notify)
        self.proxy: tuple = (None, None)  # (proxy URL, its credentials), set when a session opens
        self.failures_in_a_row = 0
        self.down_since: float | None = None  # first failure since the last answer
        self.sent = 0
        self.rate_limited = 0
        self.answers = 0  # replies that show the server is up
        self._probe: tuple[float, asyncio.Future] | None = None  # (started, probe) shared by cut-offs

    # Admission ------------------------------------------------------------------------------
    def wait_time(self, cost: float) -> float:
        """Seconds until a request of `cost` tokens may leave: the ramp, then the pacer (its pause,
        its in-flight window, its meters)."""
        return max(self.ramp.wait_time(self.pacer.in_flight), self.pacer.wait_time(cost))

    def headroom(self) -> float:
        return self.pacer.headroom()

    def reserve(self, cost: float) -> tuple[float, float, float]:
        """One request of `cost` tokens leaves now; the marks its reply's meter readings are aged by."""
        self.sent += 1
        self.ramp.sent()
        return self.pacer.reserve(cost)

    def release(self) -> None:
        self.pacer.release()

    def limit_in_flight(self, count: int) -> None:
        self.pacer.limit_in_flight(count)

    def pause(self, seconds: float) -> None:
        self.pacer.pause(seconds)

    # What came back -------------------------------------------------------------------------
    def replied(self, headers: Mapping[str, str], marks: tuple, cost: float) -> bool:
        """Any HTTP reply: read its meter headers; True when the server sent one."""
        seen = self.pacer.observe(headers, marks, cost)
        self.ramp.replied(seen)
        return seen

    def refused_for_rate(self, headers: Mapping[str, str], marks: tuple, raw: bytes) -> None:
        """A 429: pause for what it asks, empty the meter it names."""
        self.rate_limited += 1
        self.pacer.on_429(marks[0], self.pacer.asked_pause(headers), limited_by(raw))
        self.ramp.rate_limited()

    def answered(self, prompt_estimate: float, prompt_counted: int, had_meter: bool) -> None:
        """A usable answer: the server is up, its refusals are the records' own, and (with no meter
        of its own) the prompt estimate is corrected by the server's count."""
        self.record_success()
        self.pacer.on_success()
        if prompt_counted:
            self.pacer.on_usage(prompt_estimate, prompt_counted, had_meter)
        self.ramp.answered()

    async def is_uniform(self, refusal: Signature, probe: Callable[[], Awaitable[Signature | None]]) -> bool:
        """The refusal verdict (see `ramp.Ramp.is_uniform`)."""
        return await self.ramp.is_uniform(refusal, probe)

    @property
    def verdict_settled(self) -> bool:
        return self.ramp.verdict.settled

    async def alive(self, ask: Callable[[], Awaitable[bool]]) -> bool:
        """Whether the server answers a cheap request at all (`ask`); cut-offs close together share
        one probe."""
        now = asyncio.get_running_loop().time()
        started, probe = self._probe or (-1e18, None)
        if probe is None or (probe.done() and now - started > PROBE_FRESH_SECONDS):
            probe = asyncio.ensure_future(ask())
            self._probe = (now, probe)
        return await asyncio.shield(probe)

    # Health ---------------------------------------------------------------------------------
    def record_success(self) -> None:
        self.answers += 1
        self.failures_in_a_row = 0
        self.down_since = None

    def record_malformed(self) -> int:
        """A reply that could not be used: the server is up, but this is no answer."""
        self.answers += 1
        return self.answers

    def record_alive(self) -> None:
        """The server answered a probe: whatever failed, it is up (slow is not down)."""
        self.failures_in_a_row = 0
        self.down_since = None

    def record_failure(self) -> None:
        """A failing endpoint backs off on its own (capped, jittered), so the others carry the load
        and a server that is down is not hammered by every waiting request."""
        self.failures_in_a_row += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
        now = time.monotonic()
        if self.in_outage() and self.pacer.paused_until <= now:
            # Scattered failures between answers are the requests' business (each retries on its
            # own); only an endpoint that stopped answering is paused as a whole, and it is tried
            # again after a share of how long it has been down (a short outage ends in about a
            # second, a long one is asked every 30 s), with jitter so many clients do not align.
            delay = min(MAX_BACKOFF_SECONDS, max(1.0, 0.5 * self.down_for(now)))
            self.pause(delay * random.uniform(0.5, 1.0))

    def in_outage(self) -> bool:
        """Failing in a row, with no answer for a while."""
        return self.failures_in_a_row >= BACKOFF_AFTER_FAILURES and self.down_for(time.monotonic()) >= DOWN_AFTER_SECONDS

    def down_for(self, now: float) -> float:
        return 0.0 if self.down_since is None else now - self.down_since

    def where(self) -> str:
        return self.endpoint.where()

    def describe(self) -> dict:
        share = self.rate_limited / self.sent if self.sent else 0.0
        return {"sent": self.sent, "rate_limited": self.rate_limited, "share_429": round(share, 4),
                "paced_at": self.pacer.describe()}
