"""The emulator as a local model server: answers take time in proportion to their length
(`--tokens-per-second`, or a throughput shared by everything generating), and `--max-num-seqs`
queues what cannot run yet instead of answering 429, with no rate headers. Over HTTP, with the
real client (and the openai SDK where headers are read)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import openai
from openai.types.chat import ChatCompletion

from rollkit.emulator.testing import get_stats, run_emulator
from rollkit.net.client import ChatClient
from rollkit.net.endpoints import Endpoint, EndpointPool


def body(index: int, n: int = 1) -> dict:
    return {"model": "m", "max_tokens": 400, "n": n, "messages": [{"role": "user", "content": f"Solve {index}."}]}


async def timed(url: str, bodies: list[dict], concurrency: int = 8, **client_args) -> tuple[list, list[float]]:
    pool = EndpointPool([Endpoint("e", "local", f"{url}/v1", "m")])
    async with ChatClient(pool, None, concurrency=concurrency, **client_args) as client:
        async def one(b: dict):
            start = time.monotonic()
            result = await client.complete(b, per_choice=True)
            return result, time.monotonic() - start
        done = await asyncio.gather(*(one(b) for b in bodies))
    return [r for r, _ in done], [t for _, t in done]


def test_an_answer_takes_its_length_over_the_speed():
    with run_emulator("--tokens-per-second", "150") as url:
        results, seconds = asyncio.run(timed(url, [body(i) for i in range(3)]))
    for result, elapsed in zip(results, seconds, strict=True):
        assert result.ok
        expected = result.usage["completion_tokens"] / 150
        # never faster than the speed allows; slower only by the machine's own overhead
        assert expected > 0.5 and expected - 0.05 <= elapsed <= expected + 0.6


def test_the_choices_of_one_request_are_generated_side_by_side():
    # n=3 at 150 tokens/s per sequence: the request takes its longest choice's time, not the sum.
    with run_emulator("--tokens-per-second", "150") as url:
        results, seconds = asyncio.run(timed(url, [body(1, n=3)]))
        generation = get_stats(url)["generation"]
    assert generation["sequences"] == 3 and generation["tokens"] == results[0].usage["completion_tokens"]
    assert seconds[0] < 0.75 * results[0].usage["completion_tokens"] / 150


def test_a_shared_throughput_is_divided_between_the_sequences_generating():
    with run_emulator("--server-tokens-per-second", "400") as url:
        results, seconds = asyncio.run(timed(url, [body(i) for i in range(4)]))
        generation = get_stats(url)["generation"]
    assert all(r.ok for r in results) and generation["peak_generating"] == 4
    # Four at once share 400 tokens/s: the whole takes the server's time for all the tokens.
    assert generation["tokens"] / 400 - 0.05 <= max(seconds) <= generation["tokens"] / 400 + 0.6


def test_max_num_seqs_queues_instead_of_refusing_and_sends_no_rate_headers():
    with run_emulator("--max-num-seqs", "2", "--tokens-per-second", "300") as url:
        results, seconds = asyncio.run(timed(url, [body(i) for i in range(6)]))
        sdk = openai.OpenAI(base_url=f"{url}/v1", api_key="k", max_retries=0)
        raw = sdk.chat.completions.with_raw_response.create(**body(9))
        stats = get_stats(url, with_keys=False)
    assert all(r.ok for r in results)
    assert stats["by_status"] == {"200": 7} and stats["generation"]["peak_generating"] == 2
    assert stats["generation"]["waiting"] == 0 and stats["generation"]["generating"] == 0
    assert not [name for name in raw.headers if name.lower().startswith("x-ratelimit")]
    assert isinstance(raw.parse(), ChatCompletion)
    # Three waves of two: the last ones waited for seats, so they took longer than the first.
    assert max(seconds) > 2 * min(seconds)


def test_a_request_whose_client_hung_up_frees_its_seat():
    with run_emulator("--max-num-seqs", "1", "--tokens-per-second", "20") as url:
        results, _ = asyncio.run(timed(url, [body(1)], timeout=0.3, cut_off_resends=0))
        time.sleep(0.2)
        stats = get_stats(url, with_keys=False)
    assert results[0].reason == "cut_off"
    assert stats["by_status"] == {"client_closed": 1}
    assert stats["generation"]["generating"] == 0 and stats["generation"]["sequences"] == 0


def test_max_num_seqs_with_a_rate_limit_is_bad_usage():
    done = subprocess.run([sys.executable, "-m", "rollkit.emulator", "--max-num-seqs", "4", "--rpm", "60"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--max-num-seqs" in done.stderr
