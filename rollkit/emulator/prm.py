"""A generative process reward model: a served model whose name contains "prm" answers as one.

It grades the step in the user turn before each assistant turn with the step tokens "+" and "-":
P(good) is drawn from the turn's text alone (seeded by --seed), so the same step gets the same
probability whatever comes before it, in one request or one per step. Its wrong steps are the
policy's planted ones (steps_text: a bad step carries "which suggests"): P(good) in 0.02-0.30 for
them, 0.60-0.98 for good steps, and a quarter of good steps are sure (P(good) 0.9995), so the bad
token falls below the 20 filler tokens that share 4% of the mass: outside any top k <= 20.

Log-probabilities, as vLLM returns them:
- `prompt_logprobs: k` (chat extension): `prompt_logprobs`, one entry per prompt token of a
  ChatML rendering, the first null, each `{id: {"logprob", "rank", "decoded_token"}}` with the
  prompt token's own entry first, then the top k; the turn after a user turn is graded, elsewhere
  the text is given -0.5 and fillers the rest. `prompt_token_ids` come with `return_token_ids`.
- `logprobs` + `top_logprobs: k`: the generated token (the likelier step token) with the top k.
`--prm-no-prompt-logprobs` refuses `prompt_logprobs` as OpenAI does (400), `--prm-no-logprobs`
answers `logprobs: null` (a server without them).
"""

from __future__ import annotations

import math
import random
from functools import lru_cache
from typing import Any

from rollkit.emulator.policy import seed_from
from rollkit.emulator.shapes import error_response
from rollkit.emulator.steps_text import is_bad_step
from rollkit.emulator.tokens import decode, encode, text_parts

GOOD, BAD = "+", "-"
FILLERS = ("The", "Step", "\n", "Yes", "No", "yes", "no", "1", "0", ".", ",", ":", " good", " bad", "Correct",
           "Wrong", "OK", "*", "#", "<")
FILLER_MASS = 0.04
SURE = 0.9995
TEXT_LOGPROB = -0.5
SPECIAL_IDS = {"<|im_start|>": 199998, "<|im_end|>": 199999}


def is_prm(model: str) -> bool:
    return "prm" in model.lower()


def p_good(text: str, seed: int) -> float:
    rng = random.Random(seed_from(seed, "prm", text))
    if is_bad_step(text):
        return rng.uniform(0.02, 0.30)
    return SURE if rng.random() < 0.25 else rng.uniform(0.60, 0.98)


def distribution(text: str, seed: int) -> list[tuple[str, float]]:
    """(token, log-probability), likeliest first, of the turn graded after user text `text`."""
    p = p_good(text, seed)
    probs = [(GOOD, p * (1 - FILLER_MASS)), (BAD, (1 - p) * (1 - FILLER_MASS))]
    probs += [(token, FILLER_MASS / len(FILLERS)) for token in FILLERS]
    return sorted(((t, math.log(q)) for t, q in probs), key=lambda tq: -tq[1])


@lru_cache(maxsize=4096)
def token_id(token: str) -> int:
    return SPECIAL_IDS.get(token) or encode(token)[0]


def refusal(config: Any, body: dict) -> Any:
    if body.get("prompt_logprobs") is not None and not config.prm_prompt_logprobs:
        return error_response(400, "Unrecognized request argument supplied: prompt_logprobs",
                              "invalid_request_error", "prompt_logprobs")
    return None


def _pieces(body: dict) -> list[tuple[str, str | None]]:
    """(token text, the user text graded at it or None) of the ChatML prompt, token by token."""
    messages = body.get("messages") or []
    out: list[tuple[str, str | None]] = []
    previous_user = None
    for n, message in enumerate(messages):
        role, text = message.get("role", "user"), "".join(text_parts(message.get("content")))
        out.append(("<|im_start|>", None))
        out += [(piece, None) for piece in _split(f"{role}\n")]
        pieces = _split(text)
        for j, piece in enumerate(pieces):
            out.append((piece, previous_user if role == "assistant" and j == 0 else None))
        last_open = n == len(messages) - 1 and body.get("continue_final_message")
        if not last_open:
            out += [("<|im_end|>", None), ("\n", None)]
        previous_user = text if role == "user" else None
    return out


@lru_cache(maxsize=4096)
def _split(text: str) -> tuple[str, ...]:
    return tuple(decode([t]) for t in encode(text))


def _entry(token: str, logprob: float, rank: int) -> tuple[str, dict]:
    return str(token_id(token)), {"logprob": logprob, "rank": rank, "decoded_token": token}


@lru_cache(maxsize=65536)
def _text_position(piece: str, k: int) -> dict:
    """A position that grades nothing: the text itself at -0.5, fillers the rest (cached: most are)."""
    entries = dict([_entry(piece, TEXT_LOGPROB, 1)])
    for rank, token in enumerate(FILLERS[:max(0, k - 1)], 2):
        key, entry = _entry(token, math.log(FILLER_MASS / len(FILLERS)), rank)
        entries.setdefault(key, entry)
    return entries


def prompt_logprobs(body: dict, seed: int) -> tuple[list, list[int]]:
    k = int(body["prompt_logprobs"])
    positions: list = []
    ids = []
    for index, (piece, graded) in enumerate(_pieces(body)):
        ids.append(token_id(piece))
        if index == 0:
            positions.append(None)
            continue
        if graded is None:
            positions.append(_text_position(piece, k))
            continue
        ranked = distribution(graded, seed)
        ranks = {t: r for r, (t, _) in enumerate(ranked, 1)}
        own = dict(ranked).get(piece, math.log(1e-6))
        entries = dict([_entry(piece, own, ranks.get(piece, len(ranked) + 1))])
        for token, logprob in ranked[:k]:
            key, entry = _entry(token, logprob, ranks[token])
            entries.setdefault(key, entry)
        positions.append(entries)
    return positions, ids


def choice_logprobs(body: dict, seed: int) -> tuple[str, dict]:
    """The generated token and its `logprobs` for a request ending in a user turn."""
    texts = [m for m in body.get("messages") or [] if m.get("role") == "user"]
    ranked = distribution("".join(text_parts(texts[-1].get("content"))) if texts else "", seed)
    top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in ranked[:int(body.get("top_logprobs")
                                                                                           or 0)]]
    token, logprob = ranked[0]
    return token, {"content": [{"token": token, "logprob": logprob, "bytes": list(token.encode()),
                                "top_logprobs": top}]}


def decorate(payload: dict, body: dict, config: Any) -> None:
    """Add the log-probabilities asked for to a PRM model's chat.completion."""
    if body.get("prompt_logprobs") is not None:
        positions, ids = prompt_logprobs(body, config.seed)
        payload["prompt_logprobs"] = positions
        if body.get("return_token_ids"):
            payload["prompt_token_ids"] = ids
    if body.get("logprobs") and config.prm_logprobs:
        _, logprobs = choice_logprobs(body, config.seed)
        for choice in payload["choices"]:
            choice["logprobs"] = logprobs


def content(body: dict, seed: int) -> str:
    return choice_logprobs(body, seed)[0]
