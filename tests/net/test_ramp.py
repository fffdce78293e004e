"""The ramp of one endpoint and its refusal verdict, on a clock the test moves: how many requests
may be in flight before the endpoint has answered, for each kind, and what a refusal does to it."""

from __future__ import annotations

import asyncio
import math

import pytest

from rollkit.net.endpoints import Endpoint, EndpointPool
from rollkit.net.ramp import FIRST_WAVE, Ramp
from rollkit.net.refusals import Signature

REFUSED = Signature(404, "model_not_found", "The model `gne` does not exist", "invalid_request_error")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fill(ramp: Ramp, in_flight: int = 0, most: int = 10_000) -> int:
    """Send while the ramp lets one more go now; returns how many are in flight then."""
    while in_flight < most and ramp.wait_time(in_flight) <= 0:
        ramp.sent()
        in_flight += 1
    return in_flight


def test_a_local_endpoint_sends_eight_until_its_first_answer_then_every_slot():
    clock = Clock()
    ramp = Ramp(may_meter=False, clock=clock)
    assert fill(ramp) == FIRST_WAVE
    assert ramp.wait_time(FIRST_WAVE) == pytest.approx(1.0)  # or until a second passes with no refusal
    clock.now = 0.2
    ramp.replied(meter_seen=False)  # a 400: a reply, not an answer
    assert fill(ramp, FIRST_WAVE) == FIRST_WAVE
    ramp.answered()
    assert fill(ramp, FIRST_WAVE) == 10_000  # a local server meters nothing: every slot at once


def test_a_server_slow_to_answer_is_not_held_to_the_first_wave():
    clock = Clock()
    ramp = Ramp(may_meter=False, clock=clock)
    assert fill(ramp) == FIRST_WAVE
    clock.now = 1.0
    assert fill(ramp, FIRST_WAVE) == 10_000 and ramp.opened


def test_a_metered_kind_sends_one_until_the_first_reply_then_doubles_until_a_meter_or_a_429():
    clock = Clock()
    ramp = Ramp(may_meter=True, clock=clock)
    assert fill(ramp) == 1
    assert ramp.wait_time(1) == pytest.approx(2.0)  # alone until the first reply, at most 2 s
    clock.now = 0.5
    ramp.replied(meter_seen=False)  # it came, with no meter
    ramp.answered()
    assert fill(ramp, 0) == 1
    clock.now = 0.5 + 4 * 0.25
    assert fill(ramp, 1) == 16
    clock.now = 0.5 + 6 * 0.25
    assert fill(ramp, 16) == 64
    ramp.rate_limited()  # from the first 429 on, the pacer paces
    assert fill(ramp, 64) == 10_000


def test_a_meter_ends_the_doubling_but_not_the_first_wave():
    clock = Clock()
    ramp = Ramp(may_meter=True, clock=clock)
    fill(ramp)
    clock.now = 0.1
    ramp.replied(meter_seen=True)  # a 400 carrying the server's meters: no answer yet
    assert fill(ramp, 1) == FIRST_WAVE
    ramp.answered()
    assert fill(ramp, FIRST_WAVE) == 10_000


def test_while_a_refusal_is_judged_nothing_more_leaves_and_the_verdict_decides():
    async def judge(probe_gets: Signature | None) -> tuple[Ramp, bool, float, list]:
        clock, woken = Clock(), []
        ramp = Ramp(may_meter=False, clock=clock, notify=lambda: woken.append(clock.now))
        fill(ramp)
        seen_while_judging = []

        async def probe() -> Signature | None:
            clock.now = 5.0  # long past the quiet second: still shut while the verdict is out
            seen_while_judging.append(ramp.wait_time(FIRST_WAVE))
            return probe_gets
        uniform = await ramp.is_uniform(REFUSED, probe)
        return ramp, uniform, seen_while_judging[0], woken

    ramp, uniform, waited, woken = asyncio.run(judge(REFUSED._replace(message="The model `gne` does not exist")))
    assert uniform and waited == math.inf
    assert ramp.wait_time(FIRST_WAVE) == math.inf and woken == []  # refused: shut while the run stops
    ramp, uniform, waited, woken = asyncio.run(judge(None))  # the probe was answered: the record's own
    assert not uniform and waited == math.inf
    assert ramp.wait_time(FIRST_WAVE) == 0 and woken == [5.0] and ramp.verdict.settled


def test_an_endpoint_that_answered_has_its_refusals_judged_the_records_without_a_probe():
    async def go() -> bool:
        ramp = Ramp(may_meter=True)
        ramp.answered()

        async def probe() -> Signature | None:
            raise AssertionError("an endpoint that answers is not probed")
        return await ramp.is_uniform(REFUSED, probe)
    assert asyncio.run(go()) is False


def test_each_endpoint_has_its_own_ramp_and_verdict():
    # An answer from one endpoint opens nothing for another (the old first wave was the client's).
    async def go() -> tuple[list[str], list[str]]:
        pool = EndpointPool([Endpoint(name, "local", f"http://127.0.0.1:9/{name}", "m") for name in ("a", "b")])
        first = [(await pool.acquire(10, {"max_tokens": 4}))[0].endpoint.name for _ in range(2 * FIRST_WAVE)]
        pool.states[0].answered(10, 10, had_meter=False)
        later = [(await pool.acquire(10, {"max_tokens": 4}))[0].endpoint.name for _ in range(20)]
        return first, later
    first, later = asyncio.run(go())
    assert sorted(first) == ["a"] * FIRST_WAVE + ["b"] * FIRST_WAVE
    assert later == ["a"] * 20  # b has not answered and is still held to its first wave
