"""A local vLLM or SGLang server: no key unless started with one, and no Batch API (its files run
with `vllm run-batch` instead)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollkit.net.kinds.base import SDK_TIMEOUT_SECONDS, Kind

if TYPE_CHECKING:
    from rollkit.net.endpoints import Endpoint


class LocalKind(Kind):
    name = "local"
    default_key_env = None
    may_meter = False  # vLLM and SGLang queue what they cannot run yet; they send no rate headers
    # vLLM takes `max_completion_tokens` too (since 0.6), but llama.cpp's and Ollama's servers and
    # older vLLM/SGLang read `max_tokens` only: a local server keeps the name every one of them takes.
    budget_field = "max_tokens"

    def follows_reasoning_rules(self, endpoint: Endpoint, requested: str | None = None) -> bool:
        """Only when the endpoints file says `reasoning = true`: a local model's name says nothing
        about OpenAI's parameter rules."""
        return bool(endpoint.reasoning)

    def shape_body(self, endpoint: Endpoint, body: dict) -> dict:
        """A body ending with an assistant message asks for that message to be continued; vLLM and
        SGLang would open a new assistant turn after it unless told to continue it instead."""
        shaped = super().shape_body(endpoint, body)
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "assistant":
            shaped.update(continue_final_message=True, add_generation_prompt=False)
        return shaped

    def sdk_client(self, endpoint: Endpoint, max_retries: int, timeout: float = SDK_TIMEOUT_SECONDS) -> Any:
        return None
