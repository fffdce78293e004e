"""Throughput of the client against emulator endpoints with tight limits, and its CPU overhead.

    python bench/bench_throughput.py            # about two minutes
    python bench/bench_throughput.py --quick    # about a minute, fewer windows

Prints, for one endpoint: requests/min and tokens/min achieved as a share of the limits, and the
share of requests answered 429, for rollkit's budgeted client and for a baseline that fires fixed
waves each window the way the seed did (500 requests a minute); then eight endpoints against one;
then client CPU milliseconds per request against a zero-latency emulator. The rate-limit window is
shrunk (`--window-seconds`) so a "minute" passes in seconds; shares are unaffected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import _path  # noqa: F401
import aiohttp

from rollkit.emulator.testing import get_stats, reset_stats, run_emulators
from rollkit.net.client import ChatClient
from rollkit.net.endpoints import Endpoint, EndpointPool
from rollkit.store.journal import RequestJournal

WINDOW = 2.0  # seconds per emulated minute
RPM = 120  # requests per window
# A request bills ~63 tokens (prompt + max_tokens): at 6000 tokens a window the token limit binds
# first, at 12000 the request limit does. Both cases are measured.
TPM, TPM_LOOSE = 6000, 12000
MAX_TOKENS = 48


def body(index: int) -> dict:
    return {"model": "bench", "max_tokens": MAX_TOKENS, "temperature": 0,
            "messages": [{"role": "user", "content": f"Question {index}: how many apples are in basket {index}?"}]}


def endpoint(url: str, name: str, rpm: float = RPM, tpm: float = TPM) -> Endpoint:
    return Endpoint(name, "local", f"{url}/v1", "bench", rpm=rpm, tpm=tpm, window_seconds=WINDOW, api_key="bench")


async def run_client(urls: list[str], windows: float, tpm: float = TPM, concurrency: int = 64) -> dict:
    """Keep the pool busy for `windows` windows; count what completed and what got a 429."""
    pool = EndpointPool([endpoint(url, f"e{i}", tpm=tpm) for i, url in enumerate(urls)])
    deadline = time.monotonic() + windows * WINDOW
    counter = iter(range(10**9))
    async with ChatClient(pool, None, concurrency=concurrency, timeout=30) as client:
        async def worker() -> None:
            while time.monotonic() < deadline:
                await client.complete(body(next(counter)))
        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - start
    return {"elapsed": elapsed, "sent": client.stats.sent, "rate_limited": client.stats.rate_limited}


async def run_waves(url: str, windows: int, wave: int) -> dict:
    """The seed's way: every window, fire a fixed wave at once; refused requests join the next wave."""
    headers = {"Authorization": "Bearer bench"}
    sent = limited = 0
    backlog = 0
    start = time.monotonic()
    async with aiohttp.ClientSession() as session:
        async def one(index: int) -> bool:
            async with session.post(f"{url}/v1/chat/completions", data=json.dumps(body(index)),
                                    headers=headers) as response:
                await response.read()
                return response.status == 429
        for window in range(windows):
            size = wave + backlog
            results = await asyncio.gather(*(one(window * 10**6 + i) for i in range(size)))
            sent += size
            backlog = sum(results)
            limited += backlog
            await asyncio.sleep(max(0.0, start + (window + 1) * WINDOW - time.monotonic()))
    return {"elapsed": time.monotonic() - start, "sent": sent, "rate_limited": limited}


def shares(url_list: list[str], result: dict, tpm: float = TPM) -> dict:
    """Completed work per window against the summed limits, from the emulators' own counters."""
    stats = [get_stats(url, with_keys=False) for url in url_list]
    completed = sum(s["completed"] for s in stats)
    tokens = sum(s.get("tokens_billed", 0) for s in stats)
    windows = result["elapsed"] / WINDOW
    # The buckets start full, so the first window's burst is not counted as sustained throughput.
    capacity_requests = RPM * len(url_list) * (windows + 1)
    capacity_tokens = tpm * len(url_list) * (windows + 1)
    return {"completed": completed, "requests_share": completed / capacity_requests,
            "tokens_share": tokens / capacity_tokens if tokens else None,
            "share_429": result["rate_limited"] / max(1, result["sent"]),
            "per_window": completed / windows}


def show(label: str, figures: dict) -> None:
    tokens = "n/a" if figures["tokens_share"] is None else f"{figures['tokens_share']:.1%}"
    print(f"{label:<38} completed {figures['completed']:>6}  requests/limit {figures['requests_share']:6.1%}  "
          f"tokens/limit {tokens:>6}  429 share {figures['share_429']:6.2%}", flush=True)


async def cpu_per_request(url: str, count: int, journal: RequestJournal | None) -> float:
    pool = EndpointPool([endpoint(url, "fast", rpm=0, tpm=0)])
    offset = 10**6 if journal else 0  # new bodies, so the journal run pays rather than replays
    async with ChatClient(pool, journal, concurrency=32, timeout=30) as client:
        await asyncio.gather(*(client.complete(body(offset + i)) for i in range(200)))  # warm-up
        before = time.process_time()
        await asyncio.gather(*(client.complete(body(offset + 1000 + i)) for i in range(count)))
        return (time.process_time() - before) * 1000 / count


def single_endpoint(url: str, windows: int, tpm: float, label: str) -> dict:
    """rollkit's client, then the seed's fixed waves, on the same endpoint; prints both and the ratio."""
    budgeted = shares([url], asyncio.run(run_client([url], windows, tpm)), tpm)
    show(f"rollkit, 1 endpoint ({label})", budgeted)
    reset_stats(url)
    waves = shares([url], asyncio.run(run_waves(url, windows, wave=RPM)), tpm)
    show(f"seed's fixed waves ({label})", waves)
    print(f"completed ratio rollkit / fixed waves ({label}): {budgeted['completed'] / max(1, waves['completed']):.2f}")
    return budgeted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    windows = 6 if args.quick else 12
    print(f"limits per endpoint: {RPM} requests and {TPM} (or {TPM_LOOSE}) tokens per {WINDOW:g} s window; "
          f"{windows} windows")
    limits = ["--rpm", str(RPM), "--tpm", str(TPM), "--window-seconds", str(WINDOW)]
    loose = ["--rpm", str(RPM), "--tpm", str(TPM_LOOSE), "--window-seconds", str(WINDOW)]
    with run_emulators(*[limits] * 8, loose, ["--seed", "1"]) as urls:
        eight, fast = urls[:8], urls[9]
        one = single_endpoint(urls[0], windows, TPM, "tokens bind")
        single_endpoint(urls[8], windows, TPM_LOOSE, "requests bind")
        for url in eight:
            reset_stats(url)
        many = shares(eight, asyncio.run(run_client(eight, windows, concurrency=256)))
        show("rollkit, 8 endpoints (tokens bind)", many)
        print(f"throughput ratio 8 endpoints / 1 endpoint: {many['per_window'] / one['per_window']:.2f} (goal >= 7.5)")
        count = 3000 if args.quick else 6000
        cpu = asyncio.run(cpu_per_request(fast, count, None))
        print(f"client CPU per request (zero latency, no journal):   {cpu:.3f} ms (goal <= 0.5)")
        with tempfile.TemporaryDirectory() as folder, RequestJournal(Path(folder) / "j.jsonl") as journal:
            logged = asyncio.run(cpu_per_request(fast, count, journal))
        print(f"client CPU per request (zero latency, with journal): {logged:.3f} ms")


if __name__ == "__main__":
    main()
