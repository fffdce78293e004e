"""Every gate a request passes before it leaves, named in one place, in the order it meets them.

1. The stage's pending limit (`stages.runner.StageRunner`): at most `--concurrency` records are
   being worked on at once. It bounds records, not requests (a record may send several), so it
   lives in the stage loop; it is listed here because it is the first thing a request waits for.
2. The slots (`Admission.slots`): at most `--concurrency` requests in flight for the whole stage,
   whatever its roles (the policy and the judge share them), so a kill costs at most that many.
   A request resent after a 429 keeps its slot.
3. The priority turn (`endpoints.PriorityGate`): one request at a time picks an endpoint; a request
   sent back after a 429 or a failure picks before requests that never left.
4. The endpoint's own wait (`endpoint_state.EndpointState.wait_time`), for the endpoint that can take
   the request soonest (`endpoints.EndpointPool`). It is, in one answer:
   - the ramp (`ramp`): at most 8 in flight until the endpoint's first answer (none while a refusal
     is judged); for a metered kind, one alone until the first reply, then doubling until the
     server shows a meter or a 429;
   - the pacer (`pacing`): the pause a 429 or an outage asked for, the in-flight window (halved on a
     429 when the server shows no meter), and the requests and tokens meters. The tokens counted
     are what is sent: the prompt's estimate and the completion budget as that endpoint is sent
     it, a reasoning model's thinking allowance included (`kinds.base.Kind.completion_budget`).
5. The connection pool (aiohttp's connector): `--concurrency` + 4 connections, so it never binds
   before the slots do; it is there so a bug above cannot open unbounded connections.

Before, a per-client "first wave" stood between 1 and 2 and the pacer had a ramp of its own; both
are the endpoint's one ramp now (gate 4).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from rollkit.net.endpoint_state import EndpointState
from rollkit.net.endpoints import EndpointPool

CONNECTOR_SPARE = 4  # connections beyond the slots: probes, and a connection closing while another opens

# Sends one request to the endpoint chosen with the tokens reserved there and the marks; None: a 429.
Post = Callable[[EndpointState, float, tuple], Awaitable["dict | None"]]


class Admission:
    """Gates 2 to 5 for the requests of one client (gate 1 is the stage's)."""

    def __init__(self, pool: EndpointPool, concurrency: int, slots: asyncio.Semaphore | None = None) -> None:
        self.pool = pool
        self.concurrency = concurrency
        self.slots = slots or asyncio.Semaphore(concurrency)
        pool.limit_in_flight(concurrency)

    def connector(self) -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(limit=self.concurrency + CONNECTOR_SPARE, ttl_dns_cache=300)

    async def send(self, prompt_tokens: float, body: dict, resent: bool, post: Post) -> dict:
        """`post` the request once it is through every gate; after a 429 the endpoint's pause is
        waited out and it goes again, keeping its slot and ahead of requests that never left."""
        async with self.slots:
            priority = 0 if resent else 1
            while True:
                state, marks, cost = await self.pool.acquire(prompt_tokens, body, priority)
                try:
                    data = await post(state, cost, marks)
                finally:
                    self.pool.release(state)
                if data is not None:
                    return data
                priority = 0
