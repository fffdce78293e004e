"""The JSON shapes the emulator sends: `chat.completion` objects and OpenAI error bodies."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Choice:
    content: str | None
    finish_reason: str = "stop"  # "stop", "length" or "content_filter"
    completion_tokens: int = 0


def error_body(message: str, type_: str | None, param: str | None = None, code: str | None = None,
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code", ...}}` as OpenAI (and Azure) send it."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code, **(extra or {})}}


def error_response(status: int, message: str, type_: str | None, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> web.Response:
    return json_response(status, error_body(message, type_, param, code, extra), headers)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(payload), content_type="application/json",
                        headers=headers)


def completion_object(completion_id: str, model: str, choices: list[Choice], prompt_tokens: int,
                      fingerprint: str, cached_tokens: int | None = None,
                      reasoning_tokens: int | None = None) -> dict[str, Any]:
    """A `chat.completion` that `openai.types.chat.ChatCompletion` validates; `cached_tokens`
    (when given) goes to `usage.prompt_tokens_details` as a caching server reports it, and
    `reasoning_tokens` (already in the choices' tokens) to `usage.completion_tokens_details`."""
    completion_tokens = sum(c.completion_tokens for c in choices)
    reply = {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [_choice(i, c) for i, c in enumerate(choices)],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": fingerprint,
    }
    if cached_tokens is not None:
        reply["usage"]["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    if reasoning_tokens is not None:
        reply["usage"]["completion_tokens_details"] = {"reasoning_tokens": reasoning_tokens}
    return reply


def _choice(index: int, choice: Choice) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": index,
        "message": {"role": "assistant", "content": choice.content, "refusal": None},
        "logprobs": None,
        "finish_reason": choice.finish_reason,
    }
    if choice.finish_reason == "content_filter":
        # Azure says which category tripped; clients may record it as the reason.
        out["content_filter_results"] = {"violence": {"filtered": True, "severity": "medium"}}
    return out


def models_list(model_ids: list[str]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "rollkit-emulator"} for m in model_ids],
    }
