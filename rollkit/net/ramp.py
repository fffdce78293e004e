"""The ramp of one endpoint: how many requests may be in flight to it before it has shown what it is.

Two things are not known about a new endpoint, and one ramp, per endpoint, waits for both:

- whether it answers at all, or refuses the request itself (a mistyped model, a refused parameter):
  until its first answer (a reply with choices; a 400 or a 429 is no answer), at most `FIRST_WAVE`
  requests are in flight to it, so a run that will be refused stops within about ten requests
  whatever its concurrency. A refusal is judged by `refusals.RefusalWatch` (the endpoint's refusal
  verdict, owned here); while it is judged no more requests leave for that endpoint, and a verdict
  that the refusal is the record's own opens the ramp as an answer would. A server that takes
  minutes to answer must not be held to eight: `OPEN_AFTER_SECONDS` after the first request left
  with no refusal, the wave opens;
- what its server meters (metered kinds only: `openai`, `azure`): the first request goes alone
  until its reply shows the meters (any reply does: a 400 and a 429 carry the headers too), or for
  at most `FIRST_REPLY_WAIT_SECONDS` (a long first answer must not hold the rest back); then, until
  a meter header or a 429, the requests in flight double every `RAMP_DOUBLING_SECONDS`, so a server
  that queues is full within seconds while one with a short burst answers 429 before many are out.
  From the first meter or 429 on, the pacer paces (`pacing`).

A `local` endpoint meters nothing: once the wave opens, every slot goes at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

from rollkit.net.refusals import RefusalWatch, Signature

FIRST_WAVE = 8
OPEN_AFTER_SECONDS = 1.0
FIRST_REPLY_WAIT_SECONDS = 2.0
RAMP_DOUBLING_SECONDS = 0.25  # 64 in flight 1.5 s after the first reply


class Ramp:
    """One endpoint's ramp. `may_meter`: its kind may meter requests (see `kinds.base.Kind`);
    `notify` wakes the requests waiting for an endpoint when the ramp opens without a request
    coming back (a refusal judged the record's own)."""

    def __init__(self, may_meter: bool, *, clock: Callable[[], float] = time.monotonic,
                 notify: Callable[[], None] = lambda: None, first_wave: int = FIRST_WAVE,
                 open_after: float = OPEN_AFTER_SECONDS, first_reply_wait: float = FIRST_REPLY_WAIT_SECONDS) -> None:
        self.verdict = RefusalWatch()
        self.opened = False  # answered, quiet for `open_after`, or its refusals judged the records'
        self.judging = False  # a refusal is being judged: nothing more leaves until the verdict
        self.meters_known = not may_meter  # a meter header or a 429 came (or there is nothing to learn)
        self.first_wave, self.open_after, self.first_reply_wait = first_wave, open_after, first_reply_wait
        self._clock, self._notify = clock, notify
        self._first_sent_at: float | None = None
        self._first_reply_at: float | None = None

    def wait_time(self, in_flight: int) -> float:
        """Seconds until one more request may be in flight (0: now; inf: until something happens)."""
        if self.opened and self.meters_known:
            return 0.0  # the ramp is over (the common case, asked for every request)
        now = self._clock()
        return max(self._wave_wait(now, in_flight), self._meter_wait(now, in_flight))

    def _wave_wait(self, now: float, in_flight: int) -> float:
        if self.opened or in_flight < self.first_wave:
            return 0.0
        if self.judging or self._first_sent_at is None:
            return math.inf
        opens_at = self._first_sent_at + self.open_after
        if now < opens_at:
            return opens_at - now
        self.opened = True  # quiet for long enough: a server slow to answer, not one refusing
        return 0.0

    def _meter_wait(self, now: float, in_flight: int) -> float:
        if self.meters_known or self._first_sent_at is None:
            return 0.0
        start = self._first_sent_at + self.first_reply_wait
        if self._first_reply_at is not None:
            start = min(start, self._first_reply_at)
        if now < start:
            return start - now if in_flight else 0.0
        due = start + RAMP_DOUBLING_SECONDS * math.log2(in_flight + 1)  # 2 ** (seconds since start / doubling)
        return max(0.0, due - now)

    # What happened --------------------------------------------------------------------------
    def sent(self) -> None:
        if self._first_sent_at is None:
            self._first_sent_at = self._clock()

    def replied(self, meter_seen: bool) -> None:
        """Any HTTP reply (an answer, a refusal, a 429): it shows what the server meters."""
        if self._first_reply_at is None:
            self._first_reply_at = self._clock()
        self.meters_known = self.meters_known or meter_seen

    def rate_limited(self) -> None:
        """A 429: from now on the pacer paces this endpoint from its meters or its 429s."""
        self.meters_known = True

    def answered(self) -> None:
        """A real answer: the endpoint answers, so its refusals are the records' own."""
        self.verdict.answered()
        if not self.opened:
            self.opened = True
            self._notify()

    async def is_uniform(self, refusal: Signature, probe: Callable[[], Awaitable[Signature | None]]) -> bool:
        """Whether `refusal` is one the endpoint would give every request (see RefusalWatch);
        nothing more leaves for this endpoint until that is known."""
        if self.verdict.settled:
            return False
        self.judging = True
        try:
            uniform = await self.verdict.is_uniform(refusal, probe)
        except BaseException:
            self.judging = False
            raise
        self.judging = uniform  # refused: stays shut while the run stops
        if not uniform and not self.opened:
            self.opened = True
            self._notify()
        return uniform
