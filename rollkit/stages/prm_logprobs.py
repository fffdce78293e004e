"""Step probabilities from the log-probabilities a server returns, and the errors when it cannot.

A step's score is P(good) / (P(good) + P(bad)) at the assistant turn that follows it.

- **one request** (`prompt_logprobs`, vLLM's chat extension): the reply lists, for every prompt
  position after the first, a dict `{token_id: {"logprob", "rank", "decoded_token"}}` holding the
  prompt token's own entry and the top k. The prompt token is named by `prompt_token_ids` when the
  server sends them, else it is the first entry (vLLM puts it first). The turn's token is found
  after the step's text: the first position whose token decodes to the good token exactly. Its own
  log-probability is always there; the bad token's only when it is in the top k, else the caller
  asks again for that step alone with the bad token in the turn: exact, not guessed.
- **per step** (`logprobs` + `top_logprobs` on one generated token): both tokens must be among the
  top k. One that is not is bounded by the smallest listed probability, and the step's score is
  reported as that bound with the interval in `bounds`, never as a made-up number; with neither
  listed the step has no score (null, interval [0, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rollkit.content.prm_turns import StepTokens


class LogprobError(ValueError):
    """The reply cannot give step probabilities; `reason` is the error file's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class TurnLogprobs:
    good: float | None  # log-probability of the good token at the turn, None when not listed
    bad: float | None
    floor: float | None = None  # the smallest log-probability listed there (a bound for a missing one)


def step_score(turn: TurnLogprobs) -> tuple[float | None, tuple[float, float] | None]:
    """The score, and the interval it lies in when one token was not listed (the score is then the
    interval's end the listed token fixes: the lower end when bad is missing, the upper when good is).
    Neither listed: no score (None) in [0, 1], for the record to say so rather than guess."""
    if turn.good is not None and turn.bad is not None:
        g, b = math.exp(turn.good), math.exp(turn.bad)
        return g / (g + b), None
    if turn.floor is None or (turn.good is None and turn.bad is None):
        return None, (0.0, 1.0)
    limit = math.exp(turn.floor)
    if turn.bad is None:
        g = math.exp(turn.good)
        low = g / (g + limit)
        return low, (low, 1.0)
    b = math.exp(turn.bad)
    high = limit / (limit + b)
    return high, (0.0, high)


def slim(tokens: StepTokens):
    """A reply's `prompt_logprobs` cut to what is read: at each position the prompt token's own
    entry and the step tokens' (the top k sent are ~20 times that; the journal keeps the cut)."""
    wanted = {tokens.good, tokens.bad}

    def cut(data: dict) -> dict:
        positions = data.get("prompt_logprobs")
        if not positions:
            return data
        ids = data.get("prompt_token_ids") or [None] * len(positions)
        kept = []
        for position, token_id in zip(positions, ids, strict=False):
            own = _actual(position, token_id)
            if own is None:
                kept.append(position)
                continue
            keys = [k for k, e in position.items() if e is own or e.get("decoded_token") in wanted]
            kept.append({k: position[k] for k in keys})
        return {**data, "prompt_logprobs": kept}

    return cut


def _entries(position: dict) -> dict[str, float]:
    """decoded token -> log-probability at one prompt position (the first entry per text wins)."""
    out: dict[str, float] = {}
    for entry in position.values():
        out.setdefault(str(entry.get("decoded_token")), float(entry["logprob"]))
    return out


def _actual(position: dict | None, token_id: int | None) -> dict | None:
    if not position:
        return None
    if token_id is not None and str(token_id) in position:
        return position[str(token_id)]
    return next(iter(position.values()))


def read_prompt_turns(reply: dict | None, steps: list[str], tokens: StepTokens) -> list[TurnLogprobs]:
    """The good and bad log-probabilities at the assistant turn after each step."""
    positions = (reply or {}).get("prompt_logprobs")
    if not positions:
        raise LogprobError("no_prompt_logprobs", "the server returned no prompt_logprobs")
    ids = (reply or {}).get("prompt_token_ids") or [None] * len(positions)
    actual = [_actual(p, i) for p, i in zip(positions, ids, strict=False)]
    pieces = [str(a.get("decoded_token") or "") if a else "" for a in actual]
    starts, text = [], ""
    for piece in pieces:
        starts.append(len(text))
        text += piece
    turns, cursor = [], 0
    for number, step in enumerate(steps, 1):
        end = _step_end(text, step, cursor, number)
        index = next((j for j in range(len(pieces)) if starts[j] >= end and pieces[j] == tokens.good), None)
        following = text.find(steps[number], end) if number < len(steps) else len(text)
        if index is None or (following >= 0 and starts[index] >= following > end):
            raise _not_single(tokens.good, text[end:following if following > end else None], pieces, starts, end)
        listed = _entries(positions[index])
        turns.append(TurnLogprobs(float(actual[index]["logprob"]), listed.get(tokens.bad),
                                  min(listed.values())))
        cursor = starts[index] + 1
    return turns


def _step_end(text: str, step: str, cursor: int, number: int) -> int:
    """Where step `number`'s text ends in the decoded prompt; its tail stands in when the whole
    does not decode piece by piece (a character split across tokens)."""
    for probe in (step.strip(), step.strip()[-24:]):
        found = text.find(probe, cursor)
        if probe and found >= 0:
            return found + len(probe)
    raise LogprobError("step_not_found", f"step {number}'s text is not in the prompt tokens the server "
                                         "returned (its template may rewrite it)")


def _not_single(token: str, between: str, pieces: list[str], starts: list[int], end: int) -> LogprobError:
    if token in between:
        split = [p for p, s in zip(pieces, starts, strict=True) if s >= end and p and p in token][:len(token)]
        return LogprobError("step_token_not_single", f"step token {token!r} is not a single token in the "
                            f"model's vocabulary: the server split it as {split}; choose --step-tokens "
                            "that are (the PRM was trained on them as single tokens)")
    return LogprobError("step_token_not_found", f"no assistant turn holding {token!r} after a step's text")


def read_top_logprobs(choice_logprobs: dict | None, tokens: StepTokens) -> TurnLogprobs:
    """The good and bad log-probabilities of one generated token's `top_logprobs`."""
    content = (choice_logprobs or {}).get("content") or []
    if not content or not content[0].get("top_logprobs"):
        raise LogprobError("no_logprobs", "the server returned no top_logprobs for the step token "
                                          "(it may not support logprobs)")
    listed: dict[str, float] = {}
    for entry in content[0]["top_logprobs"]:
        listed.setdefault(str(entry.get("token")), float(entry["logprob"]))
    good, bad = listed.get(tokens.good), listed.get(tokens.bad)
    if good is None and bad is None:
        for token in (tokens.good, tokens.bad):
            if len(token) > 1 and any(t and t != token and token.startswith(t) for t in listed):
                raise LogprobError("step_token_not_single", f"step token {token!r} is not a single token in "
                                   f"the model's vocabulary: the top tokens hold only its start "
                                   f"({sorted(t for t in listed if t and token.startswith(t))})")
    return TurnLogprobs(good, bad, min(listed.values()))


def own_logprob(reply: dict | None, last_step: str, token: str) -> float:
    """A re-asked step's bad token: its own log-probability at the turn after the last step (the
    template may close the turn and open another after it, so it is found, not taken as the last)."""
    positions = (reply or {}).get("prompt_logprobs")
    if not positions:
        raise LogprobError("no_prompt_logprobs", "the server returned no prompt_logprobs")
    ids = (reply or {}).get("prompt_token_ids") or [None] * len(positions)
    actual = [_actual(p, i) for p, i in zip(positions, ids, strict=False)]
    pieces = [str(a.get("decoded_token") or "") if a else "" for a in actual]
    text = "".join(pieces)
    found = text.rfind(last_step.strip()[-24:])
    if found < 0:
        raise LogprobError("step_not_found", "the last step's text is not in the prompt tokens returned")
    end, offset = found + len(last_step.strip()[-24:]), 0
    for piece, entry in zip(pieces, actual, strict=True):
        if offset >= end and piece == token:
            return float(entry["logprob"])
        offset += len(piece)
    raise _not_single(token, text[end:], pieces, [sum(map(len, pieces[:j])) for j in range(len(pieces))], end)
