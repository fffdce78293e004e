"""What comes back: a chat reply as a result (texts, finish reasons, usage), and the fields of an
error body the client classifies by."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class ChatResult:
    ok: bool
    texts: list[str] = field(default_factory=list)
    finish_reasons: list[str | None] = field(default_factory=list)
    reason: str | None = None
    message: str | None = None
    model: str | None = None
    usage: dict | None = None
    replayed: bool = False
    # (reason, message) of the samples after `texts` that could not be had (asked alone, they failed)
    shortfall: tuple[str, str] | None = None
    # Log-probabilities as the server sent them, for callers that asked (stages/prm): each choice's
    # `logprobs`, and vLLM's `prompt_logprobs` (with `prompt_token_ids` when it sends them).
    choice_logprobs: list = field(default_factory=list, repr=False)
    prompt_logprobs: dict | None = field(default=None, repr=False)

    @property
    def text(self) -> str | None:
        return self.texts[0] if self.texts else None

    def split(self, expected: int) -> list[ChatResult]:
        """One result per choice of a reply asked for with `n`, each judged on its own; a failed
        reply fails them all, and samples that could not be had fail with the shortfall's reason."""
        if not self.ok:
            return [self] * expected
        parts = [result_from_response({"model": self.model, "choices": [
            {"index": 0, "message": {"content": text}, "finish_reason": reason}]}, self.replayed)
            for text, reason in zip(self.texts, self.finish_reasons, strict=True)]
        reason, message = self.shortfall or ("n_ignored", "the server sent fewer choices than n asked for")
        missing = ChatResult(False, reason=reason, model=self.model, message=message)
        return (parts + [missing] * expected)[:expected]


def result_from_response(data: dict, replayed: bool = False, per_choice: bool = False) -> ChatResult:
    """Turn a chat.completion body into a result; filtered and empty replies are failures.

    An answer cut off at the token budget (`finish_reason: "length"`) is still an answer: it is kept
    with its finish reason, and never takes its siblings down with it; the caller decides what a
    cut-off answer is worth (the judge scores it as it stands, Monte-Carlo finds no answer in it).
    With `per_choice`, the caller judges each choice by its finish reason, so the result fails only
    when every choice was filtered.
    """
    choices = sorted(data.get("choices") or [], key=lambda c: c.get("index", 0))
    texts = [((c.get("message") or {}).get("content") or "") for c in choices]
    reasons = [c.get("finish_reason") for c in choices]
    result = ChatResult(True, texts, reasons, model=data.get("model"), usage=data.get("usage"),
                        replayed=replayed, choice_logprobs=[c.get("logprobs") for c in choices])
    if data.get("prompt_logprobs") is not None:
        result.prompt_logprobs = {name: data.get(name) for name in ("prompt_logprobs", "prompt_token_ids")}
    if per_choice:
        if all(reason == "content_filter" for reason in reasons):
            result.ok, result.reason, result.message = False, "content_filter", "every choice was filtered"
    elif "content_filter" in reasons:
        result.ok, result.reason, result.message = False, "content_filter", "the reply was filtered"
    elif not any(text.strip() for text in texts) and "length" in reasons:
        # a reasoning model can spend the whole budget thinking and have nothing left to answer with
        result.ok, result.reason = False, "length"
        result.message = "the token budget ran out before any answer; raise --max-tokens"
    elif not any(text.strip() for text in texts):
        result.ok, result.reason, result.message = False, "empty", "the reply was empty"
    return result


def merge_samples(partial: ChatResult, results: list[ChatResult]) -> ChatResult:
    """`partial` plus one sample from each of `results` (asked alone, in order); the first that
    failed ends the list, so sample i stays at index i, and says why the rest are missing."""
    merged = ChatResult(True, list(partial.texts), list(partial.finish_reasons), model=partial.model,
                        usage=dict(partial.usage or {}), replayed=partial.replayed)
    for result in results:
        if not result.ok:
            merged.shortfall = (result.reason or "failed", f"asked alone: {result.message}")
            break
        merged.texts += result.texts[:1]
        merged.finish_reasons += result.finish_reasons[:1]
        merged.model = merged.model or result.model
        for name in ("prompt_tokens", "completion_tokens"):
            merged.usage[name] = int(merged.usage.get(name) or 0) + int((result.usage or {}).get(name) or 0)
    return merged if merged.texts else results[0]


def error_fields(raw: bytes) -> tuple[str | None, str]:
    """The error body's code and (the start of) its message; a body not in OpenAI's shape is its text."""
    try:
        error = json.loads(raw).get("error") or {}
        return error.get("code"), str(error.get("message") or "")[:300]
    except (ValueError, AttributeError):
        return None, raw[:200].decode("utf-8", "replace")


def limited_by(raw: bytes) -> str | None:
    """`requests` or `tokens` from the 429 body's error type (OpenAI's shape), else None."""
    try:
        kind = (json.loads(raw).get("error") or {}).get("type")
    except (ValueError, AttributeError):
        return None
    return kind if kind in ("requests", "tokens") else None
