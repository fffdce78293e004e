"""What OpenAI's reasoning models (o1, o3, o4-mini, gpt-5 and their dated names) take in a request.

They refuse `max_tokens` (400 `unsupported_parameter`: use `max_completion_tokens`) and any sampling
parameter but its default (400 `unsupported_value` for `temperature` 0, and the same for `top_p`,
penalties and logprobs). Their hidden reasoning comes out of `max_completion_tokens` too, so a
budget sized for the visible answer (16 tokens for a yes/no verdict) would leave nothing to answer
with: they get the answer's budget plus a thinking allowance for the reasoning effort asked.
An endpoint's `reasoning = true|false` overrides the name rule (an Azure deployment's name need not
say which model it serves).
"""

from __future__ import annotations

import re
from functools import lru_cache

# o1, o3-mini, o4-mini-2025-04-16, gpt-5, gpt-5-mini, gpt-5.1 ... ; not gpt-5-chat-latest (a chat model)
_FAMILY = re.compile(r"^(o[1-9][0-9]*|gpt-5(\.[0-9]+)?)(-|$)")
REFUSED_PARAMETERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "logprobs",
                      "top_logprobs", "logit_bias")
EFFORTS = ("low", "medium", "high")
# Tokens of hidden reasoning allowed on top of the answer's budget, by effort (OpenAI's default: medium).
THINKING_ALLOWANCE = {"low": 2048, "medium": 8192, "high": 32768}


@lru_cache(maxsize=256)  # asked for every request sent
def is_reasoning_model(name: str | None) -> bool:
    """Whether a model name (or a deployment named after its model) has the reasoning rules;
    a provider prefix (`openai/o4-mini`) is ignored."""
    if not name:
        return False
    base = name.rsplit("/", 1)[-1].lower()
    return bool(_FAMILY.match(base)) and "-chat" not in base


def fit_reasoning(body: dict, reasoning: bool, budget_field: str) -> dict:
    """`body` (already a copy) as a reasoning endpoint takes it, or without `reasoning_effort` for
    one that would refuse that field."""
    if not reasoning:
        body.pop("reasoning_effort", None)
        return body
    for name in REFUSED_PARAMETERS:
        body.pop(name, None)
    budget = body.get(budget_field)
    if budget is not None:
        body[budget_field] = int(budget) + THINKING_ALLOWANCE[body.get("reasoning_effort") or "medium"]
    return body
