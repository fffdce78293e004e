"""Fault injection, decided per request attempt from a seeded RNG so runs are reproducible.

Each attempt of a request draws from ``Random(seed_from(request_key, seed, "fault", attempt))``,
where `attempt` counts how often the emulator has received that exact body. The same run with
the same `--seed` sees the same faults in the same places whatever the concurrency, and a retry of
a faulted request draws afresh (at rates below 1 it eventually succeeds).

Every kind is drawn independently with its own rate; when several hit, the first in `ORDER` wins:

* ``rate_limit``: 429 with the real headers, whatever the budget (takes no budget);
* ``reset``: the TCP connection is reset (SO_LINGER 0) without any response;
* ``server_error``: 500, 502 or 503 (one third each) with an OpenAI `server_error` body;
* ``timeout``: the answer is held for `--timeout-sleep` seconds, then sent normally;
* ``malformed``: 200 with a JSON body cut off part way;
* ``content_filter``: half the time (drawn per attempt) a 400 `content_filter` error about the
  prompt, as Azure sends; otherwise a 200 whose choices have `finish_reason: "content_filter"` and
  `content: null`, as when the completion itself is filtered;
* ``length``: 200 with `finish_reason: "length"` and the content cut to 30-70% of its tokens.
"""

from __future__ import annotations

import random
import socket
import struct
from dataclasses import dataclass

from aiohttp import web

from rollkit.emulator.config import FaultRates
from rollkit.emulator.shapes import error_response

ORDER = ("rate_limit", "reset", "server_error", "timeout", "malformed", "content_filter", "length")

_SERVER_ERRORS = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}


@dataclass(frozen=True)
class FaultPlan:
    """What happens to one attempt; all draws are made up front so they never shift each other."""

    kind: str | None
    server_status: int
    filter_as_error: bool
    cut_fraction: float  # share of content kept by a length or malformed fault
    latency_factor: float  # multiplies --latency-ms (mean 1.0)


def draw(rates: FaultRates, rng: random.Random) -> FaultPlan:
    hits = [name for name in ORDER if rng.random() < getattr(rates, name)]
    return FaultPlan(
        kind=hits[0] if hits else None,
        server_status=rng.choice(sorted(_SERVER_ERRORS)),
        filter_as_error=rng.random() < 0.5,
        cut_fraction=rng.uniform(0.3, 0.7),
        latency_factor=rng.uniform(0.5, 1.5),
    )


def server_error(status: int, headers: dict[str, str]) -> web.Response:
    return error_response(status, _SERVER_ERRORS[status], "server_error", headers=headers)


def content_filter_error(headers: dict[str, str]) -> web.Response:
    message = (
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
        "Please modify your prompt and retry."
    )
    inner = {"code": "ResponsibleAIPolicyViolation",
             "content_filter_result": {"violence": {"filtered": True, "severity": "medium"}}}
    return error_response(400, message, "invalid_request_error", "prompt", "content_filter", headers,
                          extra={"status": 400, "innererror": inner})


def malformed(body_text: str, fraction: float, headers: dict[str, str]) -> web.Response:
    cut = max(1, int(len(body_text) * fraction))
    return web.Response(status=200, text=body_text[:cut], content_type="application/json", headers=headers)


def reset_connection(request: web.Request) -> None:
    """Drop the connection with a TCP reset so the client sees ECONNRESET, not a clean close."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
