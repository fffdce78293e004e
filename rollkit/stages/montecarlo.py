"""Rollouts with Monte-Carlo step scores: structured solutions, and for each step the share of
continuations from it that still reach the right answer.

One rollout is one unit of work (`rollout_id = f"{entry_id}:r{k}"`): it is generated, parsed into
steps (`rollkit.content.steps`), scored, and written on its own, so a restart never redoes a finished one.

- Generation: with `n`, the K rollouts of a question are the K choices of one request (the prompt
  and image are paid once); without, one request per rollout.
- A step is scored from the prefix that ends with it: N continuations are sampled (one request with
  `n=N`, or N requests), each answer is read with `parse_answer` and checked with
  `check_answer_async` (`llm_judge` asks a judge endpoint when no rule matched, see answer_judge).
  A continuation is an assistant message holding the prefix, after a user turn that says to carry
  on; `Endpoint.shape_body` adds vLLM's `continue_final_message` for local servers.
- Every body is deterministic (a `seed` derived from the entry id), so the request journal replays
  a restarted run exactly. Identical requests in flight at once are sent once (`SharedCalls`).
- Which steps are measured, and how the others are filled in, is `rollkit.stages.mc_search`'s concern
  (`exhaustive`, `binary-search`, `adaptive`). An adaptive probe asks for `--mc-round` continuations
  at a time (one request with `n`), each round its own seed, so a restarted run replays every round
  it paid for from the journal; without `n` its samples are exhaustive's own, one request each.
- Continuations may be shorter than rollouts (`mc_max_tokens`): they only finish the solution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import NamedTuple

from rollkit.answers import check_answer_async, final_answers, parse_answer
from rollkit.answers.equivalence_endpoint import JudgeFailed
from rollkit.content.inputs import RecordError
from rollkit.content.messages import image_parts, question_text, reference_answers, strip_image_tokens
from rollkit.content.steps import Solution, parse_solution, text_prefix
from rollkit.net.client import ChatClient, ChatResult
from rollkit.net.samples import sample_bodies, sample_seed
from rollkit.prompts import fill, load_template
from rollkit.stages.mc_search import (
    HARD_LABEL_MODES,
    MC_MODES,
    StepCount,
    cost_aware_split,
    fill_scores,
    first_zero_step,
    max_probes,
    midpoint,
    round_sizes,
    score_binary_search,
    score_exhaustive,
)
from rollkit.stages.rollout_prompts import rollout_prompt, template, templates_used
from rollkit.stages.runner import Outcome
from rollkit.store.journal import request_key

__all__ = ["MC_MODES", "RolloutParams", "SharedCalls", "StepCount", "StepScorer", "dry_run_bodies", "fill_scores",
           "first_zero_step", "rollout_units", "run_rollout", "score_binary_search", "score_exhaustive"]


@dataclass(frozen=True)
class RolloutParams:
    model: str
    num_rollouts: int = 4
    num_mc: int = 16
    mc_mode: str = "exhaustive"
    mc_round: int = 4  # adaptive: continuations per round
    answer_format: str = "correct_answer"
    scoring_modes: tuple[str, ...] = ("vqa_score",)
    max_perception_steps: int = 10
    max_reasoning_steps: int = 10
    temperature: float = 1.0
    max_tokens: int = 2048
    mc_max_tokens: int | None = None  # per continuation; None: max_tokens
    use_n: bool = True
    seeded: bool = True
    max_image_side: int | None = None
    drop_truncated: bool = False  # leave rollouts cut off at the token budget out (default: keep them)
    # (name, text, source) of templates given with --prompt-file; the others are rollkit/prompts/ files
    templates: tuple[tuple[str, str, str], ...] = ()


class Request(NamedTuple):
    body: dict
    sample_index: int
    choice: int = 0  # which choice of the reply is this rollout's


def rollout_id(eid: str, k: int) -> str:
    return f"{eid}:r{k}"


def split_rollout_id(unit: str) -> tuple[str, int]:
    eid, _, k = unit.rpartition(":r")
    return eid, int(k)


def rollout_units(num_rollouts: int) -> Callable[[str], list[str]]:
    """The StageRunner's units: the rollout ids of an entry."""
    return lambda eid: [rollout_id(eid, k) for k in range(num_rollouts)]


# ---------------------------------------------------------------- request bodies


def rollout_messages(record: dict, source: str, params: RolloutParams) -> list[dict]:
    """The structured-solution prompt with the question, and the images as data URLs."""
    prompt = rollout_prompt(record, params)
    images = image_parts(record, source, params.max_image_side)
    return [{"role": "user", "content": [{"type": "text", "text": prompt}, *images]}]


def continuation_messages(messages: list[dict], prefix: str, instruction: str | None = None) -> list[dict]:
    """The rollout prompt, an instruction to carry on, and the prefix as the assistant's own words.

    The instruction comes after the image, so the prompt and image stay a common prefix of every
    request about this question (servers that cache prompt prefixes bill them once)."""
    user = messages[-1]
    text = (instruction if instruction is not None else load_template("rollout_continue")).strip()
    content = [*user["content"], {"type": "text", "text": text}]
    return [*messages[:-1], {**user, "content": content}, {"role": "assistant", "content": prefix}]


def _base_body(messages: list[dict], params: RolloutParams, max_tokens: int | None = None) -> dict:
    return {"model": params.model, "messages": messages, "temperature": params.temperature,
            "max_tokens": max_tokens or params.max_tokens}


def _sampled(base: dict, count: int, eid: str, label: str, params: RolloutParams, first: int = 0) -> list[Request]:
    """`count` samples of one request: one body with `n`, or `count` bodies with their own seeds
    (samples `first .. first+count-1` of the label)."""
    seed = sample_seed(eid, label) if params.seeded else None
    bodies = sample_bodies(base, count, use_n=params.use_n, seed=seed, first=first)
    if params.use_n:
        return [Request(bodies[0], 0, choice) for choice in range(count)]
    return [Request(body, index) for index, body in zip(range(first, first + count), bodies, strict=True)]


def generation_request(messages: list[dict], eid: str, k: int, params: RolloutParams) -> Request:
    return _sampled(_base_body(messages, params), params.num_rollouts, eid, "rollout", params)[k]


def probe_requests(messages: list[dict], prefix: str, eid: str, params: RolloutParams) -> list[Request]:
    """The requests for the N continuations of one prefix. Seeds depend on the entry, not the
    rollout: two rollouts that share a prefix send the same bodies, and pay for them once."""
    return round_requests(messages, prefix, eid, params, 0, params.num_mc)


def continuation_body(messages: list[dict], prefix: str, params: RolloutParams) -> dict:
    instruction = fill(template(params, "rollout_continue")[0], "rollout_continue")
    return _base_body(continuation_messages(messages, prefix, instruction), params, params.mc_max_tokens)


def round_requests(messages: list[dict], prefix: str, eid: str, params: RolloutParams, first: int,
                   size: int) -> list[Request]:
    """Continuations `first .. first+size-1` of one prefix: with `n`, one request seeded for sample
    `first`; without, one request per sample. Either way sample i has the same seed in every mode,
    so a server that follows vLLM's seed rule gives a round the whole probe's samples."""
    requests = _sampled(continuation_body(messages, prefix, params), size, eid, "mc", params, first)
    return requests[:1] if params.use_n else requests


# ---------------------------------------------------------------- calls and costs


class SharedCalls:
    """Sends each distinct request once even when several rollouts ask for it at the same moment
    (the K rollouts of a question share one generation request); later askers get the journal."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self._in_flight: dict[str, list] = {}  # request key -> [task, number of askers waiting]

    async def complete(self, request: Request) -> ChatResult:
        key = request_key(request.body, request.sample_index)
        entry = self._in_flight.get(key)
        if entry is None:
            call = self.client.complete(request.body, request.sample_index, per_choice=True)
            entry = self._in_flight[key] = [asyncio.ensure_future(call), 0]
        entry[1] += 1
        try:
            return await asyncio.shield(entry[0])  # one asker's cancellation must not cancel the others'
        finally:
            entry[1] -= 1
            if entry[1] == 0:  # the last asker is done, or cancelled (an interrupted run): so is the call
                self._in_flight.pop(key, None)
                entry[0].cancel()


@dataclass
class Tally:
    requests: int = 0
    continuations: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, result: ChatResult) -> None:
        self.requests += 1
        self.prompt_tokens += int((result.usage or {}).get("prompt_tokens") or 0)
        self.completion_tokens += int((result.usage or {}).get("completion_tokens") or 0)


def usage_share(usage: dict | None, index: int, parts: int) -> dict:
    """Rollout `index`'s share of a reply shared by `parts` rollouts; the shares add up exactly."""
    share = {}
    for name in ("prompt_tokens", "completion_tokens"):
        total = int((usage or {}).get(name) or 0)
        share[name] = total // parts + (index < total % parts)
    return share


# ---------------------------------------------------------------- scoring


class ProbeFailed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


async def answer_is_right(text: str, truth: list[str], params: RolloutParams, question: str | None) -> int:
    """Whether a reply's answer is right by the scoring modes (may ask the answer judge)."""
    return await check_answer_async(parse_answer(text, params.answer_format), truth, list(params.scoring_modes),
                                    question=question)


class StepScorer:
    """Measures the steps of one parsed rollout, tallying what every probe cost."""

    def __init__(self, calls: SharedCalls, params: RolloutParams, messages: list[dict], solution: Solution,
                 eid: str, truth: list[str], question: str | None = None) -> None:
        self.calls, self.params, self.messages = calls, params, messages
        self.solution, self.eid, self.truth, self.question = solution, eid, truth, question
        self.tally = Tally()

    async def is_right(self, text: str) -> int:
        return await answer_is_right(text, self.truth, self.params, self.question)

    async def count_right(self, texts: list[str]) -> int:
        try:
            return sum(await asyncio.gather(*(self.is_right(text) for text in texts)))
        except JudgeFailed as exc:
            raise ProbeFailed(exc.reason, str(exc)) from exc

    async def measure(self, step: int) -> StepCount:
        """Score the prefix that ends with `step` (0-based over perception + reasoning steps)."""
        texts = await self._sample(step, 0, self.params.num_mc)
        return StepCount(await self.count_right(texts), len(texts))

    async def measure_adaptive(self, step: int) -> StepCount:
        """The same prefix in rounds of `mc_round`, stopping at the first round with a success."""
        sizes = round_sizes(self.params.num_mc, self.params.mc_round)
        correct = total = first = 0
        for number, size in enumerate(sizes):
            texts = await self._sample(step, first, size, allow_filtered=True)
            first += size
            correct += await self.count_right(texts)
            total += len(texts)
            if correct:
                return StepCount(correct, total, decided_early=number < len(sizes) - 1)
        if not total:
            raise ProbeFailed("content_filter", f"continuations after step {step + 1}: every continuation was filtered")
        return StepCount(0, total)

    async def _sample(self, step: int, first: int, size: int, allow_filtered: bool = False) -> list[str]:
        """The texts of continuations `first .. first+size-1` after `step`, filtered ones left out."""
        prefix = text_prefix(self.solution, step + 1)
        requests = round_requests(self.messages, prefix, self.eid, self.params, first, size)
        results = await asyncio.gather(*(self.calls.complete(request) for request in requests))
        for result in results:
            self.tally.add(result)
        where = f"continuations after step {step + 1}"
        # A filtered sample is left out of the count; any other failure leaves the step unmeasured.
        failed = next((r for r in results if not r.ok and r.reason != "content_filter"), None)
        if failed is not None:
            raise ProbeFailed(failed.reason or "failed", f"{where}: {failed.message}")
        texts = [text for r in results if r.ok
                 for text, finish in zip(r.texts, r.finish_reasons, strict=True) if finish != "content_filter"]
        if self.params.use_n and results[0].ok and len(results[0].texts) < size:
            raise ProbeFailed("n_ignored", f"{where}: asked n={size}, got {len(results[0].texts)} "
                                           "choices; this endpoint ignores n: use --no-n")
        if not texts and not allow_filtered:
            raise ProbeFailed("content_filter", f"{where}: every continuation was filtered")
        self.tally.continuations += len(texts)
        return texts


def parse_problem(solution: Solution, params: RolloutParams) -> str | None:
    """Why a rollout that ran to its end cannot be scored, or None."""
    if not solution.parsed:
        return solution.reason
    for label, found, limit in (("perception", solution.perception_steps, params.max_perception_steps),
                                ("reasoning", solution.reasoning_steps, params.max_reasoning_steps)):
        if len(found) > limit:
            return f"{len(found)} {label} steps, more than --max-{label}-steps {limit}"
    return None


# ---------------------------------------------------------------- one rollout


def search_split(params: RolloutParams):
    """Adaptive probes cost a round when they succeed and N when they find zero; others cost N."""
    if params.mc_mode == "adaptive":
        return cost_aware_split(params.num_mc, min(params.mc_round, params.num_mc))
    return midpoint


async def score_steps(scorer: StepScorer, rollout_correct: bool) -> list[dict]:
    """`steps_with_score` of one parsed rollout, in the mode its parameters name."""
    mode, n_steps = scorer.params.mc_mode, len(scorer.solution.steps)
    if mode == "exhaustive":
        counts, first_zero = await score_exhaustive(scorer.measure, n_steps)
    elif mode == "adaptive":
        counts, first_zero = await score_binary_search(scorer.measure_adaptive, n_steps, rollout_correct,
                                                       search_split(scorer.params))
    else:
        counts, first_zero = await score_binary_search(scorer.measure, n_steps, rollout_correct)
    return fill_scores(scorer.solution.steps, counts, first_zero, hard=mode in HARD_LABEL_MODES)


async def run_rollout(calls: SharedCalls, params: RolloutParams, record: dict, source: str, unit: str) -> Outcome:
    """Generate rollout `unit`, score its steps, and return its record (or why it failed)."""
    eid, k = split_rollout_id(unit)
    truth = final_answers(reference_answers(record))
    if not truth:
        return Outcome(error_reason="no_answer", message="the record has no reference answer to score against")
    try:
        messages = rollout_messages(record, source, params)
    except RecordError as exc:  # a field its template needs: the start-up check saw only the first record
        return Outcome(error_reason="bad_input", message=str(exc))
    request = generation_request(messages, eid, k, params)
    result = await calls.complete(request)
    if not result.ok:
        return Outcome(error_reason=result.reason, message=f"rollout: {result.message}")
    if request.choice >= len(result.texts):
        return Outcome(error_reason="n_ignored", message=f"asked n={params.num_rollouts}, got {len(result.texts)} "
                                                         "choices; this endpoint ignores n: use --no-n")
    text, finish = result.texts[request.choice], result.finish_reasons[request.choice]
    if finish == "content_filter":
        return Outcome(error_reason="content_filter", message="rollout: the reply was filtered")
    # Cut off at the token budget is not a parse failure: it is recorded as cut off (finish_reason
    # length, kept unscored as it stands) or, with --drop-truncated, left out before anything is judged.
    truncated = finish == "length"
    if truncated and params.drop_truncated:
        return Outcome(error_reason="length", truncated=True,
                       message=f"the rollout was cut off at --max-tokens {params.max_tokens} and --drop-truncated "
                               "left it out; raise --max-tokens")
    predicted = parse_answer(text, params.answer_format)
    solution = parse_solution(text)
    problem = None if truncated else parse_problem(solution, params)
    question = strip_image_tokens(question_text(record))
    scorer = StepScorer(calls, params, messages, solution, eid, truth, question)
    steps: list[dict] = []
    try:
        correct = bool(await answer_is_right(text, truth, params, question))
        if problem is None and not truncated:
            steps = await score_steps(scorer, correct)
    except (ProbeFailed, JudgeFailed) as exc:
        return Outcome(error_reason=exc.reason, message=str(exc))
    usage = usage_share(result.usage, request.choice, params.num_rollouts if params.use_n else 1)
    usage = {name: value + getattr(scorer.tally, name) for name, value in usage.items()}
    return Outcome(truncated=truncated, record={
        "response": text, "finish_reason": finish, "steps_with_score": steps,
        "first_incorrect_step": first_zero_step(steps),
        "parsing_failed": problem is not None, "parsing_failed_reason": problem,
        "predicted_answer": predicted, "is_correct": correct, "mc_mode": params.mc_mode, "num_mc": params.num_mc,
        "score_kind": "label" if params.mc_mode in HARD_LABEL_MODES else "share",
        "model": result.model or params.model, "usage": usage, "mc_usage": asdict(scorer.tally),
        "prompt": {"text": messages[-1]["content"][0]["text"], "templates": templates_used(params),
                   "max_image_side": params.max_image_side},
    })


def dry_run_bodies(params: RolloutParams) -> Callable:
    """What a run would send per question, at most: every step of the longest allowed rollout is
    probed (binary search and adaptive: as many as their search can make), from a prefix half as long
    as --max-tokens."""
    max_steps = params.max_perception_steps + params.max_reasoning_steps
    probes = max_steps if params.mc_mode == "exhaustive" else max_probes(max_steps, search_split(params))
    placeholder = "x " * (params.max_tokens // 2)

    def bodies(item, eid: str) -> list[dict]:
        messages = rollout_messages(item.record, item.source, params)
        generation = _sampled(_base_body(messages, params), params.num_rollouts, eid, "rollout", params)
        generation = generation[:1] if params.use_n else generation  # with n, one request for all K
        if params.mc_mode == "adaptive":  # at worst, every round of every probe
            rounds = round_sizes(params.num_mc, params.mc_round)
            starts = [sum(rounds[:i]) for i in range(len(rounds))]
            probe = [r.body for first, size in zip(starts, rounds, strict=True)
                     for r in round_requests(messages, placeholder, eid, params, first, size)]
        else:
            probe = [r.body for r in probe_requests(messages, placeholder, eid, params)]
        return [*(r.body for r in generation), *probe * (probes * params.num_rollouts)]
    return bodies
