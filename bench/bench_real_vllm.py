"""rollkit's client against a real vLLM, as a ratio to a plain asyncio (aiohttp) client.

    python bench/bench_real_vllm.py                  # 128 requests x 64 tokens at 64 in flight, 2 rounds
    python bench/bench_real_vllm.py --quick          # 64 x 32, 1 round
    python bench/bench_real_vllm.py --url http://127.0.0.1:PORT   # a server already running

Needs the real-server env (python -m tests.real.build_env); starts `vllm serve` itself unless --url
is given, and stops it. Each request generates exactly --max-tokens tokens (vLLM's `ignore_eos`), so
both clients ask the server for the same work; runs alternate baseline, rollkit, baseline, ... and
the figures are medians. The server's own queue (/metrics: running + waiting) is sampled every
0.25 s, which shows how fast each client gets to full concurrency: vLLM sends no rate headers and
never answers 429, so nothing but the client's own pacing holds it back. Goal: ratio <= 1.03.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
import urllib.request

import _path  # noqa: F401
import aiohttp

from rollkit.net.client import ChatClient
from rollkit.net.endpoints import EndpointPool, endpoint_from_flags
from tests.real import env
from tests.real.server import SERVED_NAME, running_server, start_vllm

_QUEUE = re.compile(r"^vllm:num_requests_(running|waiting)\{[^}]*\} ([0-9.]+)$", re.MULTILINE)


def body(index: int, max_tokens: int) -> dict:
    return {"model": SERVED_NAME, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
            "messages": [{"role": "user", "content": f"Tell me fact number {index} about the sea."}]}


def server_queue(url: str) -> int:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        return int(sum(float(v) for _, v in _QUEUE.findall(reply.read().decode())))


async def watch_queue(url: str, samples: list[tuple[float, int]], start: float) -> None:
    while True:
        depth = await asyncio.to_thread(server_queue, url)
        samples.append((time.monotonic() - start, depth))
        await asyncio.sleep(0.25)


async def run_plain(url: str, requests: int, concurrency: int, max_tokens: int) -> int:
    slots = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency + 4)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=600)) as session:
        async def one(index: int) -> None:
            async with slots, session.post(f"{url}/v1/chat/completions", json=body(index, max_tokens)) as reply:
                reply.raise_for_status()
                await reply.json()
        await asyncio.gather(*(one(i) for i in range(requests)))
    return requests


async def run_rollkit(port: int, requests: int, concurrency: int, max_tokens: int) -> int:
    pool = EndpointPool([endpoint_from_flags(base_url=None, port=port, azure_endpoint=None, model=SERVED_NAME)])
    async with ChatClient(pool, None, concurrency=concurrency, timeout=600) as client:
        await asyncio.gather(*(client.complete(body(i, max_tokens)) for i in range(requests)))
    return client.stats.sent


async def timed(url: str, run, concurrency: int) -> dict:
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    watcher = asyncio.create_task(watch_queue(url, samples, start))
    sent = await run
    elapsed = time.monotonic() - start
    watcher.cancel()
    full = next((t for t, depth in samples if depth >= concurrency), None)
    return {"elapsed": elapsed, "sent": sent, "to_full": full, "peak": max((d for _, d in samples), default=0)}


def describe(name: str, result: dict, concurrency: int) -> str:
    full = f"{result['to_full']:.1f} s" if result["to_full"] is not None else f"never (peak {result['peak']})"
    return (f"  {name:8s} {result['elapsed']:6.1f} s, {result['sent']} sent, server queue reached "
            f"{concurrency} after {full}")


async def bench(url: str, port: int, args: argparse.Namespace) -> None:
    await run_plain(url, 8, 8, 8)  # warm-up: the first requests pay for lazy set-up in the engine
    plain, rollkit = [], []
    for round_no in range(args.rounds):
        print(f"round {round_no + 1}/{args.rounds}", flush=True)
        plain.append(await timed(url, run_plain(url, args.requests, args.concurrency, args.max_tokens),
                                 args.concurrency))
        print(describe("plain", plain[-1], args.concurrency), flush=True)
        rollkit.append(await timed(url, run_rollkit(port, args.requests, args.concurrency, args.max_tokens),
                                   args.concurrency))
        print(describe("rollkit", rollkit[-1], args.concurrency), flush=True)
    base = statistics.median(r["elapsed"] for r in plain)
    ours = statistics.median(r["elapsed"] for r in rollkit)
    tokens = args.requests * args.max_tokens
    print(f"\n{args.requests} requests x {args.max_tokens} tokens at {args.concurrency} in flight, "
          f"median of {args.rounds}:")
    print(f"  plain asyncio  {base:6.1f} s  ({tokens / base:5.0f} completion tokens/s)")
    print(f"  rollkit        {ours:6.1f} s  ({tokens / ours:5.0f} completion tokens/s)")
    print(f"  ratio rollkit / plain: {ours / base:.3f}  (goal <= 1.03)")
    sent = {r["sent"] for r in rollkit}
    if sent != {args.requests}:
        print(f"  note: rollkit sent {sorted(sent)} requests for {args.requests}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a vLLM already serving the model (default: start one)")
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="64 requests x 32 tokens, one round")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.max_tokens, args.rounds = 64, 32, 1
    if args.url:
        server = running_server(args.url, env.cache_root())
        if server is None:
            print(f"{args.url} does not serve the model", file=sys.stderr)
            return 1
    else:
        if not (env.venv_built() and env.model_built()):
            print("the real-server env is not built: python -m tests.real.build_env", file=sys.stderr)
            return 1
        started = time.monotonic()
        server = start_vllm()
        print(f"vllm serve ready in {time.monotonic() - started:.0f} s", flush=True)
    try:
        asyncio.run(bench(server.url, server.port, args))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
