"""Whether the probe's refusal is the first one's: judged by what the refusal is, not by the letter of
a message that carries the request's own numbers (real servers' wordings, real_servers.md)."""

from __future__ import annotations

import asyncio
import json

from rollkit.net.refusals import RefusalWatch, signature


def openai_error(message: str, type_: str | None, param: str | None, code: str | int | None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": param, "code": code}}).encode()


def openai_context(context: int, prompt: int, budget: int):
    return signature(400, openai_error(
        f"This model's maximum context length is {context} tokens. However, you requested {prompt + budget} "
        f"tokens ({prompt} in the messages, {budget} in the completion). Please reduce the length of the "
        "messages or completion.", "invalid_request_error", "messages", "context_length_exceeded"))


def vllm_budget(context: int, prompt: int, budget: int):
    return signature(400, openai_error(
        f"'max_tokens' or 'max_completion_tokens' is too large: {budget}. This model's maximum context length "
        f"is {context} tokens and your request has {prompt} input tokens ({budget} > {context} - {prompt}).",
        "BadRequestError", None, 400))


def vllm_prompt(context: int):
    return signature(400, openai_error(
        f"This model's maximum context length is {context} tokens. However, your prompt contains at least "
        f"{context + 1} input tokens, which exceeds the limit. Please reduce the length of the input messages.",
        "BadRequestError", None, 400))


def unsupported_value(name: str, value: float):
    return signature(400, openai_error(
        f"Unsupported value: '{name}' does not support {value} with this model. Only the default (1) value is "
        "supported.", "invalid_request_error", name, "unsupported_value"))


def test_a_budget_over_the_context_is_the_same_refusal_whatever_the_requests_counts():
    first, probe = openai_context(3000, 612, 8000), openai_context(3000, 10, 8000)
    assert first.message != probe.message and first.same_as(probe)
    assert vllm_budget(3000, 1834, 8000).same_as(vllm_budget(3000, 9, 8000))
    assert vllm_budget(4096, 15, 8192).same_as(vllm_budget(4096, 2048, 8192))


def test_different_refusals_stay_different():
    # the same wording about the same context, but one is the prompt's and one the budget's
    assert not vllm_prompt(3000).same_as(vllm_budget(3000, 9, 8000))
    assert not openai_context(3000, 10, 8000).same_as(vllm_budget(3000, 10, 8000))  # code and type differ
    # the same code naming another parameter
    assert not unsupported_value("temperature", 0.7).same_as(unsupported_value("top_p", 0.9))
    assert unsupported_value("temperature", 0.7).same_as(unsupported_value("temperature", 0.2))
    model = "The model `gne` does not exist or you do not have access to it."
    not_found = signature(404, openai_error(model, "invalid_request_error", None, "model_not_found"))
    assert not not_found.same_as(signature(400, openai_error(model, "invalid_request_error", None,
                                                             "model_not_found")))
    assert not not_found.same_as(signature(404, openai_error("The model `gne` was retired.",
                                                             "invalid_request_error", None, "model_not_found")))


def test_a_body_that_is_not_json_is_its_text():
    refused = signature(400, b"Bad Request: 3 fields missing")
    assert refused[:3] == (400, None, "Bad Request: 3 fields missing")
    assert refused.same_as(signature(400, b"Bad Request: 2 fields missing"))
    assert not refused.same_as(signature(400, b"Bad Request: 2 fields malformed"))


def test_the_watch_calls_a_refusal_uniform_when_the_probe_gets_it_with_its_own_counts():
    async def judge(first, probe_gets):
        async def probe():
            return probe_gets
        return await RefusalWatch().is_uniform(first, probe)

    first = openai_context(3000, 612, 8000)
    assert asyncio.run(judge(first, openai_context(3000, 10, 8000)))
    assert not asyncio.run(judge(first, None))  # the probe was answered: the record's own refusal
    assert not asyncio.run(judge(vllm_prompt(3000), vllm_budget(3000, 10, 8000)))
