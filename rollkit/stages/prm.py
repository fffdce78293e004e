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

Best-of-N (`reject`/`score --scorer-kind prm`) asks `score_candidates`: each free-text candidate on
its own, so one without steps or whose requests failed gets null and its reason in `prm_failures`
while the others are scored, as a failed judge call is.
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
from rollkit.stages.prm_conversation import NoSteps, conversation, record_solutions, split_steps
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


def request_body(params: PrmParams, messages: list[dict], **logprobs) -> dict:
    return {"model": params.model, "messages": messages, "max_tokens": 1, "temperature": 0, **logprobs}


def one_request_body(params: PrmParams, record: dict, steps: list[str], images: list[dict]) -> dict:
    """The whole conversation, the good token in every assistant turn, asking prompt_logprobs."""
    messages = conversation(record, steps, params.system, params.tokens, images)
    return request_body(params, messages, prompt_logprobs=params.prompt_k)


def per_step_bodies(params: PrmParams, record: dict, steps: list[str], images: list[dict]) -> list[dict]:
    """One request per step prefix, the model asked for the token after it."""
    return [request_body(params, conversation(record, steps[:i + 1], params.system, params.tokens, images, last=""),
                         logprobs=True, top_logprobs=params.top_k) for i in range(len(steps))]


def request_images(params: PrmParams, item: InputItem) -> list[dict]:
    """The record's images as the PRM is shown them: none with --text-only."""
    return [] if params.text_only else image_parts(item.record, item.source, params.max_image_side)


def dry_run_bodies(params: PrmParams, item: InputItem, solutions: list[list[str]]) -> list[dict]:
    """What scoring these solutions (each a list of steps; one without steps is not asked) sends,
    for a dry run: auto counts as one-request, the mode it tries first; a bad token outside the top
    k, asked again, cannot be known without asking."""
    images = request_images(params, item)
    bodies = []
    for steps in filter(None, solutions):
        if params.mode == "per-step":
            bodies += per_step_bodies(params, item.record, steps, images)
        else:
            bodies.append(one_request_body(params, item.record, steps, images))
    return bodies


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
        images = request_images(self.p, item)
        try:
            scored = [await self._solution(item.record, steps, images) for steps in solutions.steps]
        except RequestFailed as exc:
            return Outcome(error_reason=exc.result.reason, message=f"{item.where}: {exc}")
        except LogprobError as exc:
            self._stop_if_uniform(item, exc)
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

    def _stop_if_uniform(self, item: InputItem, exc: LogprobError) -> None:
        """The first solution failing for want of a capability stops the run: every one would."""
        if exc.reason in UNIFORM_REASONS and not self._scored:
            raise UniformRefusal(f"{item.where}: {self.p.model}: {exc}") from exc

    async def score_candidates(self, item: InputItem, answers: list[str]) -> dict:
        """Fields a record of free-text candidates adds, `generated_scores` being each one's aggregate
        (what best-of-N selects by); a candidate that cannot be scored is null with its reason."""
        images = request_images(self.p, item)
        done = await asyncio.gather(*(self._candidate(item, i, str(answer), images) for i, answer in enumerate(answers)))
        scores = [aggregate(s.scores, self.p.how) if s else None for s, _ in done]
        failures = [failure for _, failure in done]
        return {"generated_scores": scores, "prm_step_scores": [s.scores if s else None for s, _ in done],
                "prm_score": scores, "prm_step_bounds": [s.bounds if s else None for s, _ in done],
                "prm_failures": failures, "prm_aggregate": self.p.how, "prm_mode": self.mode,
                "scorer_model": self.p.model,
                # what asking again may mend: not a candidate without steps
                "failed_scores": sum(f is not None and f["reason"] != "no_steps" for f in failures)}

    async def _candidate(self, item: InputItem, index: int, answer: str,
                         images: list[dict]) -> tuple[Scored | None, dict | None]:
        where = f"{item.where}: candidate {index}"
        steps = split_steps(answer, self.p.step_split)
        if not steps:
            message = f"{where} has no steps (not in the step format; give --step-split REGEX to split free text)"
            log.warning("%s", message)
            return None, {"reason": "no_steps", "message": message}
        try:
            scored = await self._solution(item.record, steps, images)
        except RequestFailed as exc:
            return None, {"reason": exc.result.reason, "message": f"{where}: {exc}"}
        except LogprobError as exc:
            self._stop_if_uniform(item, exc)
            return None, {"reason": exc.reason, "message": f"{where}: {exc}"}
        self._scored = True
        if any(score is None for score in scored.scores):
            return scored, {"reason": "unscored_step", "message": f"{where}: a step got no score"}
        return scored, None

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

    async def _ask(self, body: dict) -> ChatResult:
        trim = slim(self.p.tokens) if "prompt_logprobs" in body else None
        result = await self.client.complete(body, per_choice=True, trim=trim)  # an empty 1-token reply is fine
        if not result.ok:
            raise RequestFailed(result)
        return result

    async def one_request(self, record: dict, steps: list[str], images: list[dict]) -> Scored:
        result = await self._ask(one_request_body(self.p, record, steps, images))
        turns = read_prompt_turns(result.prompt_logprobs, steps, self.p.tokens)
        missing = [i for i, turn in enumerate(turns) if turn.bad is None]
        await asyncio.gather(*(self._reask_bad(record, steps[:i + 1], images, turns[i]) for i in missing))
        return Scored([step_score(turn)[0] for turn in turns], reasked=len(missing))

    async def _reask_bad(self, record: dict, steps: list[str], images: list[dict], turn: TurnLogprobs) -> None:
        """The bad token's own log-probability: the conversation up to this step, the bad token in its turn."""
        messages = conversation(record, steps, self.p.system, self.p.tokens, images, last=self.p.tokens.bad)
        result = await self._ask(request_body(self.p, messages, prompt_logprobs=1))
        turn.bad = own_logprob(result.prompt_logprobs, steps[-1], self.p.tokens.bad)

    async def per_step(self, record: dict, steps: list[str], images: list[dict]) -> Scored:
        results = await asyncio.gather(*(self._ask(body) for body in per_step_bodies(self.p, record, steps, images)))
        scored = Scored([])
        for i, result in enumerate(results):
            logprobs = result.choice_logprobs[0] if result.choice_logprobs else None
            score, bound = step_score(read_top_logprobs(logprobs, self.p.tokens))
            scored.scores.append(score)
            if bound is not None:
                scored.bounds[str(i)] = list(bound)
        return scored
