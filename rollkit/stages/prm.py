"""Step scores from a served generative PRM (the kind `--format visualprm` trains).

Every solution of a record (a rollout, or each of N candidates) is asked as the export's
conversation (prm_conversation), and each step gets P(good) / (P(good) + P(bad)) read from the
log-probabilities at the assistant turn after it (prm_logprobs), in one of two modes:

- `one-request`: the whole conversation once, the good token in every assistant turn, with
  `prompt_logprobs` (vLLM, SGLang). A step whose bad token is not among the top k is asked again
  alone: the conversation up to it with the bad token in its turn, whose own log-probability the
  server always returns. One request per solution, plus one per such step.
- `per-step`: one request per step prefix, `max_tokens: 1`, `logprobs` and `top_logprobs` (any
  OpenAI-compatible server with logprobs); prefix caching makes the shared prefix cheap. A token
  outside the top k gives a bound, kept in `prm_step_bounds`.
- `auto`: the first solution is asked in one request; a server that refuses `prompt_logprobs`
  or ignores it is asked per step from then on (one probe, as the refusal probe does).

Record fields added: `prm_step_scores` and `prm_score` (the `--aggregate` of them: min, prod, last
or mean), `prm_mode`, `prm_step_bounds` ({step index: [low, high]} where a score is a bound); for
a record of candidates each is a list, one per candidate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import statistics
from dataclasses import dataclass, field

from rollkit.content.inputs import InputItem
from rollkit.content.messages import image_parts
from rollkit.content.prm_turns import StepTokens
from rollkit.net.client import ChatClient, ChatResult, UniformRefusal
from rollkit.stages.prm_conversation import NoSteps, conversation, record_solutions
from rollkit.stages.prm_logprobs import (
    LogprobError,
    TurnLogprobs,
    own_logprob,
    read_prompt_turns,
    read_top_logprobs,
    slim,
    step_score,
)
from rollkit.stages.runner import Outcome

log = logging.getLogger("rollkit")
AGGREGATES = {
    "min": min,
    "prod": math.prod,
    "last": lambda scores: scores[-1],
    "mean": statistics.fmean,
}
MODES = ("one-request", "per-step", "auto")
# A server without the capability: every record would fail the same way, so the first stops the run.
UNIFORM_REASONS = ("no_logprobs", "no_prompt_logprobs", "step_token_not_single")


def aggregate(scores: list[float | None], how: str) -> float | None:
    """None when a step has no score: an aggregate over the others would be a made-up number."""
    if not scores or any(s is None for s in scores):
        return None
    return float(AGGREGATES[how](scores))


@dataclass(frozen=True)
class PrmParams:
    model: str
    system: str
    tokens: StepTokens = field(default_factory=StepTokens)
    mode: str = "auto"
    how: str = "min"
    text_only: bool = False
    step_split: re.Pattern[str] | None = None
    prompt_k: int = 20  # prompt_logprobs (vLLM caps k at 20); a bad token outside is re-asked
    top_k: int = 20  # top_logprobs: OpenAI's and vLLM's default cap
    max_image_side: int | None = None


@dataclass
class Scored:
    scores: list[float | None]
    bounds: dict[str, list[float]] = field(default_factory=dict)
    reasked: int = 0


class RequestFailed(Exception):
    def __init__(self, result: ChatResult) -> None:
        super().__init__(result.message or result.reason)
        self.result = result


class PrmScorer:
    """Scores the solutions of records; one per stage, shared by its records."""

    def __init__(self, client: ChatClient, params: PrmParams) -> None:
        self.client = client
        self.p = params
        self.mode = None if params.mode == "auto" else params.mode
        self._probe = asyncio.Lock()
        self._scored = False

    async def process(self, item: InputItem, _key: str) -> Outcome:
        try:
            solutions = record_solutions(item.record, self.p.step_split)
        except NoSteps as exc:
            return Outcome(error_reason="no_steps", message=f"{item.where}: {exc}")
        images = [] if self.p.text_only else image_parts(item.record, item.source, self.p.max_image_side)
        try:
            scored = [await self._solution(item.record, steps, images) for steps in solutions.steps]
        except RequestFailed as exc:
            return Outcome(error_reason=exc.result.reason, message=f"{item.where}: {exc}")
        except LogprobError as exc:
            if exc.reason in UNIFORM_REASONS and not self._scored:
                raise UniformRefusal(f"{item.where}: {self.p.model}: {exc}") from exc
            return Outcome(error_reason=exc.reason, message=f"{item.where}: {exc}")
        self._scored = True
        unscored = any(score is None for s in scored for score in s.scores)
        fields = {"prm_step_scores": [s.scores for s in scored],
                  "prm_score": [aggregate(s.scores, self.p.how) for s in scored],
                  "prm_step_bounds": [s.bounds for s in scored]}
        if solutions.kind == "rollout":
            fields = {name: value[0] for name, value in fields.items()}
        # a step with no score: written, and marked incomplete so --retry-failed asks again
        return Outcome(record={**fields, "prm_aggregate": self.p.how, "prm_mode": self.mode}, incomplete=unscored)

    async def _solution(self, record: dict, steps: list[str], images: list[dict]) -> Scored:
        if self.mode is None:
            async with self._probe:
                if self.mode is None:
                    return await self._probe_mode(record, steps, images)
        if self.mode == "one-request":
            return await self.one_request(record, steps, images)
        return await self.per_step(record, steps, images)

    async def _probe_mode(self, record: dict, steps: list[str], images: list[dict]) -> Scored:
        try:
            scored = await self.one_request(record, steps, images)
        except (RequestFailed, LogprobError, UniformRefusal) as exc:
            # refused (a 400 on prompt_logprobs, as OpenAI answers) or ignored: ask per step
            if isinstance(exc, LogprobError) and exc.reason != "no_prompt_logprobs":
                raise
            log.warning("--prm-mode auto: no prompt log-probabilities (%s); asking one request per step", exc)
            self.mode = "per-step"
            return await self.per_step(record, steps, images)
        self.mode = "one-request"
        return scored

    def _body(self, messages: list[dict], **logprobs) -> dict:
        return {"model": self.p.model, "messages": messages, "max_tokens": 1, "temperature": 0, **logprobs}

    async def _ask(self, body: dict) -> ChatResult:
        trim = slim(self.p.tokens) if "prompt_logprobs" in body else None
        result = await self.client.complete(body, per_choice=True, trim=trim)  # an empty 1-token reply is fine
        if not result.ok:
            raise RequestFailed(result)
        return result

    async def one_request(self, record: dict, steps: list[str], images: list[dict]) -> Scored:
        messages = conversation(record, steps, self.p.system, self.p.tokens, images)
        result = await self._ask(self._body(messages, prompt_logprobs=self.p.prompt_k))
        turns = read_prompt_turns(result.prompt_logprobs, steps, self.p.tokens)
        missing = [i for i, turn in enumerate(turns) if turn.bad is None]
        await asyncio.gather(*(self._reask_bad(record, steps[:i + 1], images, turns[i]) for i in missing))
        return Scored([step_score(turn)[0] for turn in turns], reasked=len(missing))

    async def _reask_bad(self, record: dict, steps: list[str], images: list[dict], turn: TurnLogprobs) -> None:
        """The bad token's own log-probability: the conversation up to this step, the bad token in its turn."""
        messages = conversation(record, steps, self.p.system, self.p.tokens, images, last=self.p.tokens.bad)
        result = await self._ask(self._body(messages, prompt_logprobs=1))
        turn.bad = own_logprob(result.prompt_logprobs, steps[-1], self.p.tokens.bad)

    async def per_step(self, record: dict, steps: list[str], images: list[dict]) -> Scored:
        bodies = [self._body(conversation(record, steps[:i + 1], self.p.system, self.p.tokens, images, last=""),
                             logprobs=True, top_logprobs=self.p.top_k) for i in range(len(steps))]
        results = await asyncio.gather(*(self._ask(body) for body in bodies))
        scored = Scored([])
        for i, result in enumerate(results):
            logprobs = result.choice_logprobs[0] if result.choice_logprobs else None
            score, bound = step_score(read_top_logprobs(logprobs, self.p.tokens))
            scored.scores.append(score)
            if bound is not None:
                scored.bounds[str(i)] = list(bound)
        return scored
