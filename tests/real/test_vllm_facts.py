"""What the real vLLM does that rollkit relies on (shared/design/real_servers.md), checked over HTTP:
the headers it sends, its errors, prompt token details, its seed rule in float32, and that the local
kind's continuation really continues the assistant's prefix."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest

from rollkit.net.client import ChatClient
from rollkit.net.endpoints import Endpoint, EndpointPool, endpoint_from_flags
from tests.real.server import MAX_MODEL_LEN, SERVED_NAME

pytestmark = pytest.mark.timeout(240)


def post(url: str, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(f"{url}/v1/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, dict(reply.headers), json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def ask(text: str, **params) -> dict:
    return {"model": SERVED_NAME, "messages": [{"role": "user", "content": text}], **params}


def test_headers_carry_no_rate_meter_and_cached_tokens_are_reported(vllm):
    status, headers, data = post(vllm.url, ask("What is the capital of France?", max_tokens=16, temperature=0))
    assert status == 200
    assert not [h for h in headers if h.lower().startswith("x-ratelimit")]
    assert "Paris" in data["choices"][0]["message"]["content"]
    # --enable-prompt-tokens-details: a number, not null
    assert isinstance(data["usage"]["prompt_tokens_details"]["cached_tokens"], int)


def test_unknown_model_is_404_and_a_prompt_over_the_context_is_400(vllm):
    status, _, data = post(vllm.url, {**ask("hi", max_tokens=4), "model": "smollm2-typo"})
    assert status == 404 and "does not exist" in data["error"]["message"]
    status, _, data = post(vllm.url, ask("word " * (MAX_MODEL_LEN + 10), max_tokens=4))
    assert status == 400 and "maximum context length" in data["error"]["message"]


def test_seed_rule_holds_in_float32(vllm):
    """Child i of an n=4 request with seed s is the single request with seed s + i, byte for byte:
    what adaptive Monte-Carlo's "same samples as exhaustive" rests on."""
    prompt = "Write one sentence about the sea."
    _, _, together = post(vllm.url, ask(prompt, n=4, seed=7, temperature=1.0, max_tokens=24))
    alone = [post(vllm.url, ask(prompt, seed=7 + i, temperature=1.0, max_tokens=24))[2] for i in range(4)]
    texts = [c["message"]["content"] for c in sorted(together["choices"], key=lambda c: c["index"])]
    assert texts == [a["choices"][0]["message"]["content"] for a in alone]
    assert len(set(texts)) > 1  # sampled, not greedy


async def complete_through(endpoint: Endpoint, body: dict) -> str:
    async with ChatClient(EndpointPool([endpoint]), None, concurrency=1, max_attempts=1) as client:
        result = await client.complete(body)
    assert result.texts, result.message  # a reply cut at max_tokens is still the text asked about
    return result.texts[0]


def test_local_kind_continues_the_assistant_prefix(vllm):
    body = {"model": SERVED_NAME, "temperature": 0, "max_tokens": 24,
            "messages": [{"role": "user", "content": "Count from 1 to 10, separated by commas."},
                         {"role": "assistant", "content": "1, 2, 3, 4,"}]}
    local = endpoint_from_flags(base_url=None, port=vllm.port, azure_endpoint=None, model=SERVED_NAME)
    continued = asyncio.run(complete_through(local, body))
    assert continued.lstrip().startswith("5, 6")
    # the same body sent as a generic OpenAI-compatible server would be: vLLM closes the prefix and
    # opens a new assistant turn
    generic = endpoint_from_flags(base_url=vllm.base_url, port=None, azure_endpoint=None, model=SERVED_NAME)
    assert asyncio.run(complete_through(generic, body)) != continued
    # what the local kind sends is what vLLM documents for a continuation
    _, _, raw = post(vllm.url, {**body, "continue_final_message": True, "add_generation_prompt": False})
    assert raw["choices"][0]["message"]["content"] == continued
