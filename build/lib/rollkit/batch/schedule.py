"""Where the next file goes: the endpoint with the fewest live batches that has room for it in its
enqueued-token quota and is not resting after a refusal.

Quota use is estimated from our own live batches (validating, in progress, finalizing, or not yet
created), since no API reports what is left. An endpoint with no configured quota takes files
until it refuses; a `token_limit_exceeded` (on create, or as a failure in validation) rests it for
one check interval, doubling on each refusal in a row up to MAX_REST_SECONDS.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from rollkit.batch.service import BatchService
from rollkit.store.batch_ledger import TERMINAL, Attempt

MAX_REST_SECONDS = 1800.0


@dataclass
class Slot:
    service: BatchService
    quota: int | None
    rest_base: float
    resting_until: float = 0.0
    refusals_in_a_row: int = 0

    @property
    def name(self) -> str:
        return self.service.name

    def refused(self) -> float:
        """Rest after a quota refusal; returns the seconds of rest."""
        self.refusals_in_a_row += 1
        rest = min(MAX_REST_SECONDS, self.rest_base * 2 ** (self.refusals_in_a_row - 1))
        self.resting_until = time.monotonic() + rest
        return rest

    def accepted(self) -> None:
        self.refusals_in_a_row = 0


class TooLarge(Exception):
    """The file is over every endpoint's quota: it can never run as packed."""


def holds_quota(attempt: Attempt) -> bool:
    return attempt.live and attempt.status not in TERMINAL


class Scheduler:
    def __init__(self, slots: list[Slot]):
        self.slots = slots
        self.by_name = {slot.name: slot for slot in slots}

    def usage(self, live: Iterable[Attempt]) -> dict[str, tuple[int, int]]:
        """endpoint -> (live batches, estimated enqueued tokens)."""
        out = {slot.name: (0, 0) for slot in self.slots}
        for attempt in live:
            if holds_quota(attempt) and attempt.endpoint in out:
                count, tokens = out[attempt.endpoint]
                out[attempt.endpoint] = (count + 1, tokens + attempt.tokens)
        return out

    def choose(self, tokens: int, live: Iterable[Attempt]) -> Slot | None:
        """The slot to use now, None to wait; TooLarge when no endpoint could ever take it."""
        if all(s.quota is not None and tokens > s.quota for s in self.slots):
            raise TooLarge(f"{tokens} estimated tokens is over every endpoint's enqueued_tokens quota; "
                           "pack again with a lower --max-tokens-per-file")
        usage, now = self.usage(live), time.monotonic()
        fits = [s for s in self.slots if s.resting_until <= now
                and (s.quota is None or usage[s.name][1] + tokens <= s.quota)]
        if not fits:
            return None
        return min(fits, key=lambda s: (usage[s.name][0], usage[s.name][1] / (s.quota or 1e18), s.name))
