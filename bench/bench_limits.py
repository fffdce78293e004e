"""Pacing with limits unknown, learned or wrong: 400 one-answer requests against an emulator that
allows 600 requests a minute and counts rejected requests against that (as OpenAI does).

    python bench/bench_limits.py            # about eight minutes
    python bench/bench_limits.py --quick    # one burst size, no seed waves

For every header shape the server sends (openai: all six; azure: remaining-* only; none), bursts of
1 s and 10 s, and rollkit told nothing versus told a limit 2x too high, it prints time / ideal, 429s
as a share of answers, and the most times one request was sent. Ideal = (requests - burst) / rate:
the burst goes at once, the rest at the refill rate. A run still going at 10 x ideal is stopped and
reported with how many it had answered. Two baselines run in the same process:
- "minute bucket": paces from a minute-sized bucket set once from the first answer's headers (200
  a minute when there are none), and after a 429 every request waits a 10-second cool-down, the
  way curator does;
- "seed waves": fires a wave of 500 every minute, refused requests join the next wave.
The emulator's minute is shrunk to --window seconds, so a run takes seconds; ratios are unaffected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import _path  # noqa: F401
import aiohttp

from rollkit.emulator.testing import get_stats, run_emulator
from rollkit.net.client import ChatClient
from rollkit.net.endpoints import Endpoint, EndpointPool
from rollkit.net.pacing import parse_reset

REQUESTS = 400
RPM = 600
LATENCY_MS = 40


def body(index: int) -> dict:
    return {"model": "bench", "max_tokens": 400, "messages": [{"role": "user", "content": f"Say {index}."}]}


def ideal_seconds(window: float, burst: float) -> float:
    rate = RPM / window
    return (REQUESTS - min(REQUESTS, RPM * burst / 60)) / rate


async def rollkit_run(url: str, window: float, ceiling: float) -> float:
    pool = EndpointPool([Endpoint("bench", "openai", f"{url}/v1", "bench", api_key="bench", rpm=ceiling,
                                  window_seconds=window)])
    start = time.monotonic()
    async with ChatClient(pool, None, concurrency=64, timeout=30) as client:
        results = await asyncio.gather(*(client.complete(body(i)) for i in range(REQUESTS)))
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok][:3]
    return time.monotonic() - start


async def minute_bucket_run(url: str, window: float) -> float:
    """A bucket holding a whole minute, sized once from the first answer (200/min without headers)."""
    headers = {"Authorization": "Bearer bench"}
    start = time.monotonic()
    async with aiohttp.ClientSession() as session:
        async def post(index: int) -> tuple[int, dict]:
            async with session.post(f"{url}/v1/chat/completions", data=json.dumps(body(index)),
                                    headers=headers) as response:
                await response.read()
                return response.status, dict(response.headers)
        status, first = await post(0)
        limit = float(first.get("x-ratelimit-limit-requests") or 200)
        level, stamp, rate = limit, time.monotonic(), limit / window
        pending = list(range(1 if status == 200 else 0, REQUESTS))

        cooldown_until = [0.0]

        async def one(index: int) -> None:
            while True:
                await asyncio.sleep(max(0.0, cooldown_until[0] - time.monotonic()))
                status, answer = await post(index)
                if status != 429:
                    return
                # every request waits out one cool-down after a 429 (10 of the server's seconds)
                pause = max(parse_reset(answer.get("retry-after")) or 0.0, window / 6)
                cooldown_until[0] = max(cooldown_until[0], time.monotonic() + pause)
        tasks = []
        for index in pending:
            while True:
                now = time.monotonic()
                level, stamp = min(limit, level + (now - stamp) * rate), now
                if level >= 1:
                    level -= 1
                    break
                await asyncio.sleep((1 - level) / rate)
            tasks.append(asyncio.create_task(one(index)))
        await asyncio.gather(*tasks)
    return time.monotonic() - start


async def waves_run(url: str, window: float, wave: int = 500) -> float:
    headers = {"Authorization": "Bearer bench"}
    todo = list(range(REQUESTS))
    start = time.monotonic()
    async with aiohttp.ClientSession() as session:
        async def one(index: int) -> int | None:
            async with session.post(f"{url}/v1/chat/completions", data=json.dumps(body(index)),
                                    headers=headers) as response:
                await response.read()
                return index if response.status == 429 else None
        minute = 0
        while todo:
            refused = await asyncio.gather(*(one(i) for i in todo[:wave]))
            todo = [i for i in refused if i is not None] + todo[wave:]
            minute += 1
            if todo:
                await asyncio.sleep(max(0.0, start + minute * window - time.monotonic()))
    return time.monotonic() - start


GIVE_UP_RATIO = 10.0  # a run still going at 10 x ideal is stopped and reported as such


async def bounded(run, url: str, limit: float) -> float | None:
    """Seconds the run took, or None when it was still going after `limit` seconds."""
    start = time.monotonic()
    try:
        await asyncio.wait_for(run(url), timeout=limit)
    except TimeoutError:
        return None
    return time.monotonic() - start


def measure(label: str, window: float, burst: float, server: list[str], run) -> dict:
    ideal = ideal_seconds(window, burst)
    with run_emulator("--rpm", str(RPM), "--window-seconds", str(window), "--burst-seconds", str(burst),
                      "--count-rejected", "--latency-ms", str(LATENCY_MS), *server) as url:
        elapsed = asyncio.run(bounded(run, url, GIVE_UP_RATIO * ideal))
        stats = get_stats(url, with_keys=False)
    limited, answered = stats["by_status"].get("429", 0), stats["by_status"].get("200", 0)
    row = {"label": label, "time_ratio": None if elapsed is None else elapsed / ideal,
           "share_429": limited / max(1, answered), "most_sends": stats["most_attempts"], "answered": answered}
    took = f"{row['time_ratio']:5.2f}" if elapsed is not None else f">{GIVE_UP_RATIO:.0f} (stopped, {answered} answered)"
    print(f"  {label:<44} time/ideal {took}   429s/answers {row['share_429']:7.1%}   "
          f"most sends {row['most_sends']}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=12.0, help="seconds per emulated minute (default 12)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    window = args.window
    for burst in ((10.0,) if args.quick else (1.0, 10.0)):
        print(f"burst {burst:g} s ({RPM * burst / 60:.0f} requests), ideal {ideal_seconds(window, burst):.1f} s:")
        for shape in ("openai", "azure", "none"):
            server = ["--headers", shape]
            for ceiling, told in ((0, "told nothing"), (2 * RPM, "told 2x too high")):
                measure(f"rollkit, {shape} headers, {told}", window, burst, server,
                        lambda url, c=ceiling: rollkit_run(url, window, c))
            measure(f"minute bucket, {shape} headers", window, burst, server,
                    lambda url: minute_bucket_run(url, window))
        if not args.quick:
            measure("seed waves of 500 a minute", window, burst, [], lambda url: waves_run(url, window))


if __name__ == "__main__":
    main()
