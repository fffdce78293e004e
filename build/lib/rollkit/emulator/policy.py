"""The seeded synthetic policy: what the emulator answers, deterministic given (--seed, request body).

Every choice of one request draws from ``random.Random(seed_from(request_key, seed, "choice", i))``,
where ``request_key`` is the sha256 of the canonical request body. The same body always gets the
same answer (so crash/resume tests can compare outputs byte for byte); a different `seed` field in
the body, as clients send per sample, gets a different one. A body with an integer `seed` follows
vLLM's rule for `n` (child i of the request is sampled with seed + i): choice i is exactly what the
same body with `seed + i` and no `n` gets, so one request with `n` and separate seeded requests
draw the same samples.

A request is classified by the text of its messages (all text parts, concatenated):

0. **equivalence**: the text contains "<same>" -> `<same>yes</same>` when the candidate answer
   equals the reference, else `<same>no</same>` (see `judging.py`);
1. **scoring**: the text contains "scale from 0 to 10" -> a judge score (see `judging.py`);
2. **verification**: the text contains "<conclusion>" -> a step-wise verdict with `<analysis_i>`
   blocks and `<conclusion>Correct/Incorrect</conclusion>` (see `judging.py`);
3. **continuation**: the last message is an assistant prefix, or `continue_final_message` is true
   (vLLM) -> only the rest of the solution after the prefix;
4. **generation**: everything else -> a structured step solution in the fixture format.

Ground truth of every solution is in its wording (see `steps_text.py`): good steps contain
"consistent with", bad steps contain "which suggests". A wrong solution has a first wrong step f
(0-based over perception + reasoning steps); steps before f are good, f and after are bad.
A continuation after a prefix holding a bad step is always wrong; after an all-good prefix it is
right with probability `p_continue_correct` (a fresh generation: `p_correct`). `is_bad_step` and
`first_wrong_step` read this back; `truth_for_question` gives the right answer.

The `realism` profile (`--realism`) makes the policy an honest opponent for Monte-Carlo scoring:

- each question has its own chance of success, drawn once from Beta(1.5, 1) by (--seed, question):
  most questions are easy, some are hard (about 1 in 11 below 0.2). A generation, and a
  continuation of an all-good prefix, are right with that chance;
- a wrong step can be recovered from: a continuation after a prefix holding b bad steps is still
  right with the question's chance times 0.02 ** b (a later continuation sometimes gets there);
- lengths vary: 4-6 steps a section, and steps carry 0-2 extra sentences.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from rollkit.emulator import judge_replies as judging
from rollkit.emulator import stats
from rollkit.emulator.answers import question_in, truth_for_question, wrong_answer
from rollkit.emulator.steps_text import (
    DEFAULT_SHAPE,
    REALISM_SHAPE,
    SolutionShape,
    StepWriter,
    first_wrong_step,
    is_bad_step,
    parse_steps,
    render_answer,
    render_step,
)
from rollkit.emulator.tokens import text_parts

__all__ = ["Policy", "PolicySettings", "classify", "first_wrong_step", "is_bad_step", "seed_from",
           "truth_for_question"]

SCORING_PHRASE = "scale from 0 to 10"
EQUIVALENCE_TAG = "<same>"
VERIFICATION_TAG = "<conclusion>"


def seed_from(*parts: object) -> int:
    """A 64-bit seed from any parts, stable across processes (unlike `hash()`)."""
    joined = ":".join(str(p) for p in parts).encode("utf-8")
    return int(hashlib.sha256(joined).hexdigest()[:16], 16)


@dataclass(frozen=True)
class PolicySettings:
    seed: int = 0
    p_correct: float = 0.6
    p_continue_correct: float = 0.8
    judge_garbage: float = 0.02
    answer_key: dict[str, str] = field(default_factory=dict)
    realism: bool = False


# Beta(1.5, 1): mean 0.6 like the default --p-correct, with a tail of hard questions.
DIFFICULTY_ALPHA, DIFFICULTY_BETA = 1.5, 1.0


@dataclass(frozen=True)
class Prompt:
    """The parts of a request body the policy looks at."""

    text: str  # all text parts of all messages, joined by newlines
    prompt_text: str  # the same without a final assistant prefix
    last_user_text: str
    prefix: str | None  # the assistant prefix to continue, if this is a continuation


def read_prompt(body: dict[str, Any]) -> Prompt:
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    texts = ["\n".join(text_parts(m.get("content"))) for m in messages]
    last_user = next((t for m, t in zip(reversed(messages), reversed(texts), strict=True)
                      if m.get("role") == "user"), "")
    is_prefix = bool(messages) and (messages[-1].get("role") == "assistant" or bool(body.get("continue_final_message")))
    prefix = None
    if is_prefix:
        # vLLM continues whatever the final message is; only an assistant message holds solution text.
        prefix = texts[-1] if messages[-1].get("role") == "assistant" else ""
    prompt_texts = texts[:-1] if is_prefix else texts
    return Prompt("\n".join(texts), "\n".join(prompt_texts), last_user, prefix)


def classify(prompt: Prompt) -> str:
    """One of "equivalence", "scoring", "verification", "continuation", "generation"."""
    lowered = prompt.prompt_text.lower()
    if EQUIVALENCE_TAG in lowered:
        return "equivalence"
    if SCORING_PHRASE in lowered:
        return "scoring"
    if VERIFICATION_TAG in lowered:
        return "verification"
    if prompt.prefix is not None:
        return "continuation"
    return "generation"


class Policy:
    """Turns a request body into the content of each of its `n` choices."""

    def __init__(self, settings: PolicySettings):
        self.settings = settings

    def truth(self, prompt: Prompt) -> str:
        return truth_for_question(question_in(prompt.prompt_text, prompt.last_user_text), self.settings.answer_key)

    def question_chance(self, prompt: Prompt) -> float:
        """Realism: this question's chance that a sound attempt reaches the right answer."""
        question = question_in(prompt.prompt_text, prompt.last_user_text)
        rng = random.Random(seed_from(self.settings.seed, "difficulty", question))
        return rng.betavariate(DIFFICULTY_ALPHA, DIFFICULTY_BETA)

    def contents(self, body: dict[str, Any], request_key: str, n: int) -> list[str]:
        prompt = read_prompt(body)
        kind = classify(prompt)
        return [self._one(kind, prompt, rng) for rng in self._choice_rngs(body, request_key, n)]

    def _choice_rngs(self, body: dict[str, Any], request_key: str, n: int) -> list[random.Random]:
        seed = body.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool):
            return [self._rng(request_key, i) for i in range(n)]
        unseeded = stats.request_key({k: v for k, v in body.items() if k not in ("n", "seed")})
        return [self._rng(f"{unseeded}:seed={seed + i}", 0) for i in range(n)]

    def _rng(self, request_key: str, choice: int) -> random.Random:
        return random.Random(seed_from(request_key, self.settings.seed, "choice", choice))

    def _one(self, kind: str, prompt: Prompt, rng: random.Random) -> str:
        s = self.settings
        if kind == "equivalence":
            return judging.equivalence_reply(rng, prompt.prompt_text, s.judge_garbage)
        if kind == "scoring":
            return judging.score_reply(rng, prompt.prompt_text, s.judge_garbage)
        if kind == "verification":
            return judging.verification_reply(rng, prompt.prompt_text, self.truth(prompt), s.judge_garbage)
        if s.realism:
            chance = self.question_chance(prompt)
            return continue_solution(rng, prompt.prefix or "", self.truth(prompt), chance, REALISM_SHAPE)
        if kind == "continuation":
            return continue_solution(rng, prompt.prefix or "", self.truth(prompt), s.p_continue_correct)
        return continue_solution(rng, "", self.truth(prompt), s.p_correct)


def continue_solution(rng: random.Random, prefix: str, truth: str, p_right: float,
                      shape: SolutionShape = DEFAULT_SHAPE) -> str:
    """The rest of a structured solution after `prefix` ("" gives a whole solution).

    The rest keeps the prefix's numbering and sections, adds steps so each section has
    `shape.section_steps` (2-4; more if the prefix already has more), and always ends with at least
    one new reasoning step and the `<correct_answer>` block. Text after the last closed step of the
    prefix is left as it is. After a bad step the rest is right with `p_right * shape.recover ** b`
    (b bad steps in the prefix; 0 by default).
    """
    done = parse_steps(prefix)
    low, high = shape.section_steps
    new_p = 0 if done.in_reasoning else rng.randint(max(low, len(done.perception)), max(high, len(done.perception)))
    new_p -= 0 if done.in_reasoning else len(done.perception)
    total_r = rng.randint(max(low, len(done.reasoning) + 1), max(high, len(done.reasoning) + 1))
    new_r = total_r - len(done.reasoning)
    bad_steps = sum(is_bad_step(step) for step in done.combined)
    prefix_bad = bad_steps > 0
    if prefix_bad and not shape.recover:
        right = False  # no draw: the default profile's answers stay exactly as they were
    else:
        right = rng.random() < p_right * shape.recover ** bad_steps
    # Index (over the new steps) of the first bad one; steps from there on are bad.
    first_bad = new_p + new_r if right else (0 if prefix_bad else rng.randrange(new_p + new_r))
    answer = truth if right else wrong_answer(truth, rng.randrange(1 << 30))

    writer = StepWriter(rng, shape.extra_sentences)
    parts: list[str] = []
    if not prefix.strip():
        parts.append("[Visual Elements]\n")
    elif not prefix.endswith("\n"):
        parts.append("\n")
    for i in range(new_p):
        parts.append(render_step(len(done.perception) + i + 1, writer.step(False, i >= first_bad)))
    if not done.in_reasoning:
        parts.append("\n[Reasoning]\n")
    for j in range(new_r):
        last = j == new_r - 1
        text = writer.step(True, new_p + j >= first_bad, answer if last else None)
        parts.append(render_step(len(done.reasoning) + j + 1, text))
    parts.append("\n" + render_answer(answer))
    return "".join(parts)
