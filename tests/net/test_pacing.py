"""Pacing from what the server says: each meter unit by unit on a clock the test moves, then over real
HTTP against emulators that meter like the real services: short bursts, rejected requests counted,
each header shape (or none), and a reasoning model's whole budget."""

from __future__ import annotations

import asyncio
import time

import pytest

from rollkit.emulator.testing import get_stats, run_emulator
from rollkit.net.client import ChatClient
from rollkit.net.endpoints import Endpoint, EndpointPool
from rollkit.net.pacing import SAFETY, Meter, Pacer, header_number, parse_reset

# Meters, unit by unit, on a clock the test moves ---------------------------------------------

def test_meter_paces_at_the_rate_it_was_told_and_waits_exactly():
    now = [0.0]
    meter = Meter("requests", 60, window=60, clock=lambda: now[0])  # a ceiling of 1 a second
    meter.take(meter.level())
    assert meter.wait_time(1) == pytest.approx(1.0)
    now[0] = 0.5
    assert meter.wait_time(1) == pytest.approx(0.5)


def test_meter_learns_limit_and_burst_from_openai_headers_and_the_server_wins():
    now = [0.0]
    meter = Meter("requests", 1200, window=60, clock=lambda: now[0])  # configured 2x too high
    mark = meter.take(1)
    meter.observe_limit(600)
    meter.observe_remaining(99, sent_at=0.0, mark=mark, cost=1)
    assert meter.per_minute() == pytest.approx(600 * SAFETY) and meter.source() == "headers"
    assert meter.capacity() == 100 and meter.level() == pytest.approx(99)


def test_meter_learns_the_refill_rate_from_remaining_readings_alone():
    now = [0.0]
    meter = Meter("requests", 0, window=60, clock=lambda: now[0])
    mark = meter.take(1)
    meter.observe_remaining(99, 0.0, mark, 1)  # at idle: the burst is 100
    for _ in range(95):
        mark = meter.take(1)
    meter.observe_remaining(4, 0.0, mark, 1)
    now[0] = 2.0  # 2 s later, 10 a second refilled 20, and we sent 5 more
    for _ in range(5):
        mark = meter.take(1)
    meter.observe_remaining(19, 2.0, mark, 1)
    assert meter.per_minute() == pytest.approx(600 * SAFETY, rel=0.01)
    assert meter.source() == "learned from remaining"


def test_unknown_header_values_are_never_limits():
    assert header_number({"x": "-1"}, "x") is None and header_number({"x": "0"}, "x") is None
    assert header_number({}, "x") is None and header_number({"x": "12"}, "x") == 12


def test_without_headers_the_rate_comes_from_429s():
    now = [0.0]
    meter = Meter("requests", 0, window=60, adaptive=True, clock=lambda: now[0])
    for _ in range(20):  # 10 answers a second for 2 s, unpaced: no 429 yet
        now[0] += 0.1
        meter.observe_success()
    assert meter.per_minute() is None
    delivered = 20 / 1.9 * 60  # per minute, from the first answer to the last
    meter.observe_429(sent_at=now[0], pause=1.0)
    assert meter.per_minute() == pytest.approx(delivered / 2) and meter.source() == "learned from 429s"
    meter.observe_429(sent_at=now[0] - 1.0, pause=1.0)  # sent before the decrease: no news
    assert meter.per_minute() == pytest.approx(delivered / 2)


def test_reset_header_formats():
    assert parse_reset("6m0s") == 360
    assert parse_reset("120ms") == pytest.approx(0.12)
    assert parse_reset("1.5s") == 1.5
    assert parse_reset(None) is None


def test_a_burst_of_one_never_waits_for_more_than_it_holds():
    now = [0.0]
    meter = Meter("requests", 0, window=60, adaptive=True, clock=lambda: now[0])
    meter.observe_429(sent_at=0.0, pause=0.0)  # rate 0.5/s: a burst of one request
    now[0] = 10.0
    assert meter.capacity() == 1 and meter.wait_time(1) == 0



# Over HTTP, against emulators that meter -------------------------------------------------------

# Seconds per emulated minute: long enough that a client stalled for a moment by a busy machine
# (tens of ms) stays a small error in the rates learned from readings spread over the window.
WINDOW = 6.0
RPM = 300  # so 50 requests a second, with a burst of 10 emulated seconds = 50
REQUESTS = 150


def body(index: int) -> dict:
    return {"model": "m", "max_tokens": 400, "messages": [{"role": "user", "content": f"Say {index}."}]}


def meter_server(*extra: str):
    return run_emulator("--rpm", str(RPM), "--window-seconds", str(WINDOW), "--burst-seconds", "10",
                        "--count-rejected", "--latency-ms", "20", *extra)


async def send_all(url: str, rpm: float = 0, requests: int = REQUESTS) -> tuple[dict, float]:
    pool = EndpointPool([Endpoint("e", "openai", f"{url}/v1", "m", api_key="k", rpm=rpm, window_seconds=WINDOW)])
    start = time.monotonic()
    async with ChatClient(pool, None, concurrency=32) as client:
        results = await asyncio.gather(*(client.complete(body(i)) for i in range(requests)))
    assert all(r.ok for r in results)
    return pool.describe()["e"], time.monotonic() - start


@pytest.mark.parametrize("shape, source, most_429s", [
    ("openai", "headers", 0.05), ("azure", "learned from remaining", 0.05), ("none", "learned from 429s", 0.15)])
def test_limits_are_learned_in_each_header_shape(shape, source, most_429s):
    with meter_server("--headers", shape) as url:
        endpoint, elapsed = asyncio.run(send_all(url))
        served = get_stats(url, with_keys=False)
    assert endpoint["paced_at"]["requests"]["source"] == source
    assert served["by_status"].get("429", 0) <= most_429s * REQUESTS
    ideal = (REQUESTS - 50) / (RPM / WINDOW)
    assert elapsed >= ideal * 0.9  # it did not get through by luck of a server that forgets
    if shape != "none":
        assert endpoint["paced_at"]["requests"]["per_minute"] == pytest.approx(RPM, rel=0.1)
        assert endpoint["paced_at"]["requests"]["burst"] == pytest.approx(50, abs=2)


def test_a_ceiling_below_the_servers_limit_is_kept():
    with meter_server() as url:
        endpoint, elapsed = asyncio.run(send_all(url, rpm=RPM / 2, requests=80))
    assert endpoint["paced_at"]["requests"]["source"] == "flag"
    assert endpoint["rate_limited"] == 0
    assert elapsed >= (80 - 50) / (RPM / 2 / WINDOW) * 0.9


@pytest.mark.parametrize("shape, burst", [("openai", "10"), ("azure", "10"), ("openai", "1"), ("azure", "1")])
def test_a_limit_set_too_high_gives_way_to_the_server(shape, burst):
    with meter_server("--headers", shape, "--burst-seconds", burst) as url:
        endpoint, _ = asyncio.run(send_all(url, rpm=RPM * 2))
        served = get_stats(url, with_keys=False)
    assert endpoint["paced_at"]["requests"]["source"] != "flag"
    assert served["by_status"].get("429", 0) <= 0.05 * REQUESTS and served["most_attempts"] <= 3


def test_after_a_pause_waiting_requests_leave_at_the_refill_pace():
    # A burst of 1 s (5 requests) and injected 429s: were the requests waiting out each pause
    # released together, the tiny bucket would refuse most of them, and each refusal costs budget.
    with run_emulator("--rpm", str(RPM), "--window-seconds", str(WINDOW), "--burst-seconds", "1",
                      "--count-rejected", "--fault-429", "0.05", "--latency-ms", "20", "--seed", "3") as url:
        asyncio.run(send_all(url, requests=120))
        served = get_stats(url, with_keys=False)
    injected = served["faults"].get("rate_limit", 0)
    assert injected > 0
    assert served["by_status"].get("429", 0) - injected <= 3


def test_the_endpoint_kind_names_the_meter_headers():
    # A kind whose servers name their meters otherwise: the pacer reads those names, and only those.
    def other_names(what: str, unit: str) -> str:
        return f"ratelimit-{unit}-{what}"
    pacer = Pacer(0, 0, header_name=other_names)
    marks = pacer.reserve(10)
    assert pacer.observe({"x-ratelimit-limit-requests": "60"}, marks, 10) is False
    marks = pacer.reserve(10)
    assert pacer.observe({"ratelimit-requests-limit": "120", "ratelimit-tokens-limit": "6000"}, marks, 10)
    assert pacer.describe()["requests"]["per_minute"] == pytest.approx(120 * SAFETY, abs=0.1)
    assert pacer.describe()["tokens"]["source"] == "headers"


async def seconds_to_full(url: str, kind: str, concurrency: int,
                          requests: int) -> tuple[float | None, int | None, list]:
    """Send `requests` through the real client; sample the server's own count of sequences
    generating (as one reads vLLM's metrics) until `concurrency` of them run at once. Returns when
    that was, how many answers the server had sent by then, and the results."""
    pool = EndpointPool([Endpoint("e", kind, f"{url}/v1", "m", api_key="k")])
    start, full_at, answered = time.monotonic(), None, None
    async with ChatClient(pool, None, concurrency=concurrency) as client:
        sending = asyncio.gather(*(client.complete(body(i)) for i in range(requests)))
        while full_at is None and not sending.done():
            stats = await asyncio.to_thread(get_stats, url, False)
            if stats["generation"]["generating"] >= concurrency:
                full_at, answered = time.monotonic() - start, sum(stats["by_status"].values())
            await asyncio.sleep(0.05)
        results = await sending
    return full_at, answered, results


@pytest.mark.parametrize("kind", ["local", "openai"])
def test_a_server_that_queues_gets_the_whole_concurrency_within_seconds(kind):
    # A local endpoint is judged by order, which no load on this machine changes: every slot was
    # generating before the server had sent a single answer (an idle machine shows it within 0.3 s).
    # vLLM's shape: no rate headers, never a 429, at most --max-num-seqs generating and the rest
    # queued. Answers take 2-4 s; the client used to ramp from 1 request by slow start. A local
    # endpoint meters nothing, so all go at once; any other kind sends one first, to read what its
    # server meters, for at most 2 s, then doubles the requests in flight every 0.25 s.
    with run_emulator("--max-num-seqs", "64", "--tokens-per-second", "80") as url:
        full_at, answered, results = asyncio.run(seconds_to_full(url, kind, concurrency=32, requests=64))
        served = get_stats(url, with_keys=False)
    assert all(r.ok for r in results)
    assert full_at is not None
    if kind == "local":
        assert answered == 0
    else:
        assert full_at <= 5.0  # 2 s at most for the first reply, then 1.25 s of doubling to 32
    assert served["by_status"] == {"200": 64} and served["generation"]["peak_generating"] == 32


def o4_mini_body(index: int) -> dict:
    return {"model": "o4-mini", "max_tokens": 16, "messages": [{"role": "user", "content": f"Is {index} even?"}]}


def test_the_tokens_reserved_are_the_budget_as_sent_thinking_allowance_included():
    async def reserved(kind: str, **extra) -> float:
        pool = EndpointPool([Endpoint("e", kind, "http://127.0.0.1:9/v1", "o4-mini", **extra)])
        return (await pool.acquire(30, {**o4_mini_body(0), "n": 2}))[2]
    assert asyncio.run(reserved("openai")) == 30 + 2 * (16 + 8192)  # medium effort: 8,192 tokens to think
    assert asyncio.run(reserved("openai", reasoning=False)) == 30 + 2 * 16
    assert asyncio.run(reserved("local")) == 30 + 2 * 16  # a local model's name says nothing of OpenAI's rules


def test_a_reasoning_model_is_paced_by_the_budget_the_server_meters():
    # OpenAI meters a request's whole completion budget against the tokens limit, the thinking
    # allowance included (the emulator does the same). Counted without it, the client sent eight
    # 429s for every answer here; counted, none or nearly none.
    with run_emulator("--reasoning-rules", "--tpm", "1500000", "--window-seconds", str(WINDOW), "--burst-seconds",
                      "10", "--count-rejected", "--latency-ms", "200", "--judge-garbage", "0") as url:
        async def go() -> list:
            pool = EndpointPool([Endpoint("e", "openai", f"{url}/v1", "o4-mini", api_key="k", window_seconds=WINDOW)])
            async with ChatClient(pool, None, concurrency=32) as client:
                return await asyncio.gather(*(client.complete(o4_mini_body(i)) for i in range(150)))
        results = asyncio.run(go())
        served = get_stats(url, with_keys=False)
    assert all(r.ok for r in results)
    assert served["by_status"].get("429", 0) <= 0.02 * 150
