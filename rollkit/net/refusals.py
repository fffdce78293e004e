"""Telling a refusal of the request itself from a refusal of one record's content.

An unknown model (404), a parameter the model refuses (400 `unsupported_parameter`,
`unsupported_value`) or a token budget over the model's context refuses every request of the run:
writing each record off as a permanent error would make the whole dataset look done. A prompt too
long for the context refuses one record: that one is a per-record error and the run goes on.

Until an endpoint has answered, its first refusal is checked by asking the same request with a
one-line prompt (no image, one choice): refused again the same way, the refusal is the request's,
and the run stops (exit 2) with the server's own message and nothing written off; answered, it was
the record's. "The same way" is what the refusal is: its status, error code and type, the parameter
it names, and its message with the numbers masked, for a message may carry the request's own counts
(OpenAI's "you requested 8010 tokens (10 in the messages, 8000 in the completion)"). Refusals cost
nothing, and every request refused meanwhile waits for that verdict, so none of them is written off
either. Each endpoint's verdict is owned by its ramp (`ramp`), which holds at most eight requests in
flight to the endpoint until its first answer, so a run that will be refused stops within about ten
requests whatever its concurrency.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import NamedTuple

PROBE_PROMPT = "Reply with the word OK."

MESSAGE_CHARS = 2000  # of the server's message kept; real ones are a sentence or three
# A word with a digit in it: a count, a value, an id. Masked, two refusals differing only there match.
_NUMBERED = re.compile(r"[\w.\-]*\d[\w.\-]*")


class Signature(NamedTuple):
    """What a refusal is: HTTP status, the error's code, the server's message, its type and the
    parameter it names (OpenAI's error body; vLLM sends the same shape with code 400)."""
    status: int
    code: str | int | None
    message: str
    kind: str | None = None
    param: str | None = None

    def same_as(self, other: Signature) -> bool:
        """Whether `other` is this refusal, whatever request-specific numbers its message carries."""
        return self._what() == other._what()

    def _what(self) -> tuple:
        return self.status, self.code, self.kind, self.param, _NUMBERED.sub("#", self.message)


def signature(status: int, raw: bytes) -> Signature:
    """The refusal an error reply `raw` with HTTP `status` is; a body that is not OpenAI's error
    shape is kept as its opening text."""
    try:
        error = json.loads(raw).get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return Signature(status, None, raw[:200].decode("utf-8", "replace"))
    return Signature(status, error.get("code"), str(error.get("message") or "")[:MESSAGE_CHARS],
                     error.get("type"), error.get("param"))


def probe_body(body: dict) -> dict:
    """The same request (model, budget, parameters) with a one-line prompt and one choice."""
    probe = {name: value for name, value in body.items() if name not in ("n", "messages")}
    probe["messages"] = [{"role": "user", "content": PROBE_PROMPT}]
    return probe


class RefusalWatch:
    """One endpoint's verdict: whether its refusals are the request's (stop the run) or the records'."""

    def __init__(self) -> None:
        self.settled = False  # it answered, or a probe showed its refusals are the records' own
        self._verdict: asyncio.Future | None = None

    def answered(self) -> None:
        self.settled = True

    async def is_uniform(self, refusal: Signature, probe: Callable[[], Awaitable[Signature | None]]) -> bool:
        """Whether `refusal` is one every request would get; the first refusal on an endpoint that
        has not answered asks `probe` (None: the probe was answered, or failed some other way)."""
        if self.settled:
            return False
        if self._verdict is None:
            self._verdict = asyncio.ensure_future(self._judge(refusal, probe))
        return await asyncio.shield(self._verdict)

    async def _judge(self, refusal: Signature, probe: Callable[[], Awaitable[Signature | None]]) -> bool:
        again = await probe()
        uniform = again is not None and again.same_as(refusal)
        self.settled = not uniform
        return uniform
