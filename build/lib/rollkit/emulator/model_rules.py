"""What real servers and models did that a plain OpenAI-compatible server does not (see
`shared/design/real_servers.md`), each off by default:

* ``--reasoning-rules``: models named like OpenAI's reasoning families (o1, o3, o4-mini, gpt-5, dated
  names too) refuse `max_tokens` (400 `unsupported_parameter`) and any sampling parameter but its
  default (400 `unsupported_value`), with OpenAI's own bodies; they think before answering, and the
  hidden reasoning tokens come out of `max_completion_tokens` and are reported in
  `usage.completion_tokens_details.reasoning_tokens` (and counted in `completion_tokens`);
* ``--ramble SHARE``: that share of choices runs on to its token budget (`finish_reason: "length"`),
  as a real model sometimes does;
* ``--ignore-n``: one choice whatever `n` asks, silently (llama.cpp's server, Ollama);
* ``--max-model-len N``: a prompt over the context is refused with vLLM's 400, and a token budget
  over it with OpenAI's (`context_length_exceeded`, naming the request's own token counts);
* ``--models a,b``: the models served; any other answers 404 `model_not_found`.
"""

from __future__ import annotations

import argparse
import random
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

# The server's parts (aiohttp, the tokenizer) are imported where used: the settings and flags here
# are read by `--help` and the config, which must not wait a second for the tokenizer to load.
if TYPE_CHECKING:
    from aiohttp import web

    from rollkit.emulator.shapes import Choice

# The server's own list, not the client's (rollkit.net.kinds.reasoning): a client that misreads a model
# name must meet a refusal here, as it would on the real service.
_REASONING_FAMILY = re.compile(r"^(o[1-9][0-9]*|gpt-5(\.[0-9]+)?)(-|$)")
# Parameters a reasoning model takes only at their default value, and that default.
_DEFAULT_ONLY = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0}
_REFUSED = ("max_tokens", "logprobs", "top_logprobs", "logit_bias")
# Hidden reasoning per choice by effort: small, so tests stay fast, yet enough to eat a tiny budget.
REASONING_TOKENS = {"low": 24, "medium": 64, "high": 192}
RAMBLE_FILLER = " and then, to be thorough, let us look at it once more from the start"
DEFAULT_BUDGET = 256  # how far a rambling choice runs when the request set no budget


@dataclass(frozen=True)
class ModelRules:
    reasoning: bool = False
    ramble: float = 0.0
    ignore_n: bool = False
    max_model_len: int = 0  # 0: no context limit
    models: tuple[str, ...] = ()  # empty: every model name is served


def add_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("real servers' and models' rules (off by default)")
    group.add_argument("--reasoning-rules", action="store_true",
                       help="o1/o3/o4-mini/gpt-5 names refuse max_tokens and non-default temperature/top_p, "
                            "and report reasoning_tokens")
    group.add_argument("--ramble", type=float, default=0.0, metavar="SHARE",
                       help="share of choices that run to the token budget (finish_reason length)")
    group.add_argument("--ignore-n", action="store_true", help="answer one choice whatever n asks (llama.cpp)")
    group.add_argument("--max-model-len", type=int, default=0,
                       help="context length in tokens; a longer prompt gets vLLM's 400, a longer budget OpenAI's (default: none)")
    group.add_argument("--models", default="", help="comma-separated served models; others get 404 (default: any)")


def rules_from_args(args: argparse.Namespace) -> ModelRules:
    models = tuple(name.strip() for name in args.models.split(",") if name.strip())
    return ModelRules(args.reasoning_rules, args.ramble, args.ignore_n, args.max_model_len, models)


def is_reasoning(rules: ModelRules, model: str) -> bool:
    return rules.reasoning and bool(_REASONING_FAMILY.match(model.rsplit("/", 1)[-1].lower()))


Refused = tuple[int, dict[str, Any]]  # HTTP status and error body


def refusal(rules: ModelRules, body: dict[str, Any], model: str, prompt_tokens: int) -> web.Response | None:
    """The 4xx this server answers to `body` before generating anything, or None."""
    from rollkit.emulator.shapes import json_response

    refused = refused_body(rules, body, model, prompt_tokens)
    return json_response(*refused) if refused is not None else None


def refused_body(rules: ModelRules, body: dict[str, Any], model: str, prompt_tokens: int) -> Refused | None:
    """The status and error body of `refusal`: a Batch API line gets them in its error file."""
    if rules.models and model not in rules.models:
        return _refused(404, f"The model `{model}` does not exist or you do not have access to it.",
                        "invalid_request_error", None, "model_not_found")
    if is_reasoning(rules, model):
        refused = _reasoning_refusal(body)
        if refused is not None:
            return refused
    if rules.max_model_len:
        return _context_refusal(body, rules.max_model_len, prompt_tokens)
    return None


def _refused(status: int, message: str, type_: str, param: str | None, code: str | int) -> Refused:
    from rollkit.emulator.shapes import error_body

    return status, error_body(message, type_, param, code)


def _reasoning_refusal(body: dict[str, Any]) -> Refused | None:
    for name in _REFUSED:
        if body.get(name) is not None and body.get(name) is not False:
            hint = " Use 'max_completion_tokens' instead." if name == "max_tokens" else ""
            return _refused(400, f"Unsupported parameter: '{name}' is not supported with this model.{hint}",
                            "invalid_request_error", name, "unsupported_parameter")
    for name, default in _DEFAULT_ONLY.items():
        value = body.get(name)
        if value is not None and value != default:
            return _refused(400, f"Unsupported value: '{name}' does not support {value} with this model. "
                                 f"Only the default ({default}) value is supported.",
                            "invalid_request_error", name, "unsupported_value")
    return None


def _context_refusal(body: dict[str, Any], max_model_len: int, prompt_tokens: int) -> Refused | None:
    """A prompt over the context gets vLLM's 400 (`BadRequestError`, code 400); a budget over it gets
    OpenAI's, whose message carries the request's own counts, so it differs from request to request
    (a prompt plus a budget within the context each is accepted: the answer stops at the context)."""
    if prompt_tokens > max_model_len:
        return _refused(400, f"This model's maximum context length is {max_model_len} tokens. However, "
                             f"your prompt contains at least {max_model_len + 1} input tokens, which exceeds "
                             "the limit. Please reduce the length of the input messages.",
                        "BadRequestError", None, 400)
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None and value > max_model_len:
            return _refused(400, f"This model's maximum context length is {max_model_len} tokens. However, "
                                 f"you requested {prompt_tokens + value} tokens ({prompt_tokens} in the "
                                 f"messages, {value} in the completion). Please reduce the length of the "
                                 "messages or completion.",
                            "invalid_request_error", "messages", "context_length_exceeded")
    return None


def shape_choices(rules: ModelRules, body: dict[str, Any], model: str, key: str, choices: list[Choice],
                  budget: int | None) -> tuple[list[Choice], int | None]:
    """The choices as this server sends them, and the reasoning tokens to report (None: not a
    reasoning model)."""
    if rules.ignore_n:
        choices = choices[:1]
    rng = random.Random(f"{key}:rules")
    if rules.ramble:
        choices = [_ramble(c, budget or DEFAULT_BUDGET) if rng.random() < rules.ramble else c for c in choices]
    if not is_reasoning(rules, model):
        return choices, None
    thinking = REASONING_TOKENS.get(str(body.get("reasoning_effort") or "medium"), REASONING_TOKENS["medium"])
    thought = [min(thinking, budget) if budget is not None else thinking for _ in choices]
    choices = [_after_thinking(c, budget - t if budget is not None else None, t) for c, t in zip(choices, thought, strict=True)]
    return choices, sum(thought)


def _ramble(choice: Choice, budget: int) -> Choice:
    from rollkit.emulator.shapes import Choice
    from rollkit.emulator.tokens import decode, encode

    if choice.content is None or choice.finish_reason == "content_filter":
        return choice
    tokens = encode(choice.content)
    while len(tokens) < budget:
        tokens += encode(RAMBLE_FILLER)
    return Choice(decode(tokens[:budget]), "length", budget)


def _after_thinking(choice: Choice, room: int | None, thought: int) -> Choice:
    """What is left of the visible answer once `thought` tokens of the budget went to reasoning."""
    from rollkit.emulator.shapes import Choice
    from rollkit.emulator.tokens import decode, encode

    if choice.content is None or room is None or choice.completion_tokens <= room:
        return replace(choice, completion_tokens=choice.completion_tokens + thought)
    kept = encode(choice.content)[:max(0, room)]
    return Choice(decode(kept), "length", len(kept) + thought)
