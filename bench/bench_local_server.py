"""The client against a local model server: long generations, and how fast it fills the server.

    python bench/bench_local_server.py            # about three minutes
    python bench/bench_local_server.py --quick    # about a minute

1. Long generations: the emulator generates 30 tokens a second per sequence; 16 requests of n=4
   (answers of 150-250 tokens, so 5-8 s each) all go at once. Prints rollkit's wall time divided by
   the server's own time for the same work (the longest sequence's tokens / 30; goal <= 1.1), and
   how many times each request was sent (goal: once). The same with --request-timeout shorter than
   the answers shows what a cut-off costs: each is resent with the timeout doubled.
2. Ramp-up: an emulator that queues like vLLM (`--max-num-seqs 64`, no rate headers, no 429s) at
   30 tokens/s; 128 requests at 64 in flight. Prints the seconds until the server had 64 sequences
   generating (sampled from its own counters every 50 ms) and the run's time divided by a plain
   asyncio + aiohttp client's at the same concurrency (goal <= 1.03), for a `local` endpoint and
   for an `openai`-kind one (`--base-url`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import _path  # noqa: F401
import aiohttp

from rollkit.emulator.testing import get_stats, reset_stats, run_emulator
from rollkit.net.client import ChatClient
from rollkit.net.endpoints import Endpoint, EndpointPool

SPEED = 30  # tokens per second per sequence


def body(index: int, n: int = 1) -> dict:
    return {"model": "bench", "max_tokens": 1000, "n": n, "seed": index,
            "messages": [{"role": "user", "content": f"Question {index}: how many apples are in basket {index}?"}]}


async def rollkit_run(url: str, bodies: list[dict], concurrency: int, kind: str = "local",
                      timeout: float | None = None) -> tuple[float, list, dict]:
    pool = EndpointPool([Endpoint("bench", kind, f"{url}/v1", "bench", api_key="bench")])
    extra = {} if timeout is None else {"timeout": timeout}
    async with ChatClient(pool, None, concurrency=concurrency, **extra) as client:
        start = time.monotonic()
        results = await asyncio.gather(*(client.complete(b, per_choice=True) for b in bodies))
        elapsed = time.monotonic() - start
    assert all(r.ok for r in results), [r.message for r in results if not r.ok][:3]
    return elapsed, results, {"cut_off": client.stats.cut_off, "resent": client.stats.resent_after_cut_off}


async def plain_run(url: str, bodies: list[dict], concurrency: int) -> float:
    """The baseline: asyncio + aiohttp, a semaphore of `concurrency`, nothing else."""
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:
        async def one(b: dict) -> None:
            async with slots, session.post(f"{url}/v1/chat/completions", data=json.dumps(b),
                                           headers={"Authorization": "Bearer bench"}) as response:
                assert response.status == 200, await response.text()
                await response.read()
        start = time.monotonic()
        await asyncio.gather(*(one(b) for b in bodies))
        return time.monotonic() - start


def longest_sequence_seconds(results: list) -> float:
    """The server's own time when every request starts at once: its longest sequence."""
    from rollkit.emulator.tokens import encode

    return max(len(encode(text)) for result in results for text in result.texts) / SPEED


def long_generations(requests: int) -> None:
    bodies = [body(i, n=4) for i in range(requests)]
    print(f"1. long generations: {requests} requests of n=4 at {SPEED} tokens/s per sequence, all at once")
    with run_emulator("--tokens-per-second", str(SPEED), "--no-auth") as url:
        for label, timeout in (("default timeout (600 s)", None), ("timeout 3 s, shorter than the answers", 3.0)):
            reset_stats(url)
            elapsed, results, cuts = asyncio.run(rollkit_run(url, bodies, requests, timeout=timeout))
            stats = get_stats(url, with_keys=False)
            server = longest_sequence_seconds(results)
            print(f"   {label:<38} wall {elapsed:5.1f} s / server's own {server:4.1f} s = {elapsed / server:4.2f} "
                  f"(goal <= 1.1); sent {stats['requests']} for {requests} requests, most sends of one "
                  f"{stats['most_attempts']}; cut off {cuts['cut_off']}, resent {cuts['resent']}", flush=True)


async def ramp_run(url: str, run, concurrency: int) -> tuple[float, float | None]:
    """Run `run`, sampling the server's sequences generating until `concurrency` run at once."""
    task = asyncio.ensure_future(run)
    start, full_at = time.monotonic(), None
    while not task.done():
        if full_at is None:
            generating = (await asyncio.to_thread(get_stats, url, False))["generation"]["generating"]
            if generating >= concurrency:
                full_at = time.monotonic() - start
        await asyncio.sleep(0.05)
    result = task.result()
    return (result[0] if isinstance(result, tuple) else result), full_at


def ramp_up(requests: int, concurrency: int, rounds: int) -> None:
    bodies = [body(i) for i in range(requests)]
    print(f"2. ramp-up: {requests} requests at {concurrency} in flight against a queueing server "
          f"(--max-num-seqs {concurrency}, {SPEED} tokens/s, no rate headers)")
    runs = {"plain asyncio + aiohttp": lambda url: plain_run(url, bodies, concurrency),
            "rollkit, local endpoint": lambda url: rollkit_run(url, bodies, concurrency, "local"),
            "rollkit, openai-kind endpoint": lambda url: rollkit_run(url, bodies, concurrency, "openai")}
    times: dict[str, list[float]] = {label: [] for label in runs}
    with run_emulator("--max-num-seqs", str(concurrency), "--tokens-per-second", str(SPEED), "--no-auth") as url:
        for _ in range(rounds):  # alternated, so load from elsewhere falls on every client alike
            for label, make in runs.items():
                reset_stats(url)
                elapsed, full_at = asyncio.run(ramp_run(url, make(url), concurrency))
                times[label].append(elapsed)
                full = "never" if full_at is None else f"{full_at:4.2f} s"
                print(f"   {label:<30} {elapsed:5.1f} s, {concurrency} generating after {full}", flush=True)
    baseline = min(times["plain asyncio + aiohttp"])
    for label in list(runs)[1:]:
        print(f"   {label:<30} best time / plain client's best: {min(times[label]) / baseline:4.3f} (goal <= 1.03)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    long_generations(16)
    ramp_up(128, 64, rounds=1 if args.quick else 2)


if __name__ == "__main__":
    main()
