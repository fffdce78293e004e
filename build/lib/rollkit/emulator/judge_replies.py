"""Judge replies of the synthetic policy: 0-10 scores and step-wise verification verdicts.

Scores (prompt contains "scale from 0 to 10"): the candidate's final answer (its last `\\boxed{}`,
else its last line or last word) is compared, case-insensitively, with the reference answer. Equal
gives 7..10, anything else (including a missing block) 0..4. The reply format varies to exercise
client parsing: "7", "Score: 7/10", "**8**", "Score: 6\\n<remark>"; with probability
`judge_garbage` the reply has no number at all ("I cannot rate this.").

Equivalence (prompt contains "<same>"): `<same>yes</same>` when the candidate equals the reference
as above, else `<same>no</same>`; with probability `judge_garbage`, a reply without the tag.

Verification (prompt contains "<conclusion>"): the solution is the last `<solution>` block. The
first wrong step is the first step with the bad wording (`is_bad_step`), or, for a solution without
such wording whose boxed answer differs from the truth, its last step. The reply analyses steps up
to and including that one and concludes "Incorrect"; otherwise all steps and "Correct". With
probability `judge_garbage` the `<conclusion>` block is left out (a judge that ignored the format).
"""

from __future__ import annotations

import random
import re

from rollkit.emulator.answers import boxed_answer, normalize_answer
from rollkit.emulator.steps_text import is_bad_step, parse_steps

_REFERENCE = re.compile(r"<reference_answer>(.*?)</reference_answer>", re.DOTALL | re.IGNORECASE)
_CANDIDATE = re.compile(r"<candidate_answer>(.*?)</candidate_answer>", re.DOTALL | re.IGNORECASE)
_SOLUTION = re.compile(r"<solution>(.*?)</solution>", re.DOTALL | re.IGNORECASE)
_FIRST_INT = re.compile(r"\d+")

GARBAGE_SCORES = (
    "I cannot rate this.",
    "The candidate answer needs more context before it can be rated.",
    "Unable to assign a rating without seeing the image.",
)
_REMARK_HIGH = ("The answer is mostly right.", "The final answer matches the reference.")
_REMARK_LOW = ("The final answer does not match the reference.", "The answer is wrong.")


def _last_block(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.findall(text)
    return found[-1].strip() if found else None


def candidate_matches(candidate: str | None, reference: str | None) -> bool:
    """Does the candidate's final answer equal the reference (case-insensitive, stripped)?"""
    if not candidate or not reference:
        return False
    ref = normalize_answer(boxed_answer(reference) or reference)
    boxed = boxed_answer(candidate)
    if boxed is not None:
        return normalize_answer(boxed) == ref
    lines = [line for line in candidate.splitlines() if line.strip()]
    last_line = lines[-1] if lines else ""
    last_word = last_line.split()[-1] if last_line.split() else ""
    return ref in (normalize_answer(last_line), normalize_answer(last_word))


def score_reply(rng: random.Random, prompt_text: str, judge_garbage: float) -> str:
    if rng.random() < judge_garbage:
        return rng.choice(GARBAGE_SCORES)
    match = candidate_matches(_last_block(_CANDIDATE, prompt_text), _last_block(_REFERENCE, prompt_text))
    score = rng.randint(7, 10) if match else rng.randint(0, 4)
    remark = rng.choice(_REMARK_HIGH if match else _REMARK_LOW)
    formats = (f"{score}", f"Score: {score}/10", f"**{score}**", f"Score: {score}\n{remark}")
    return rng.choice(formats)


def equivalence_reply(rng: random.Random, prompt_text: str, judge_garbage: float) -> str:
    if rng.random() < judge_garbage:
        return "They look similar."
    same = candidate_matches(_last_block(_CANDIDATE, prompt_text), _last_block(_REFERENCE, prompt_text))
    return f"<same>{'yes' if same else 'no'}</same>"


def score_from_reply(text: str) -> int | None:
    """The score a reasonable client reads from a reply: its first integer if 0..10, else None."""
    found = _FIRST_INT.search(text)
    if found is None or int(found.group()) > 10:
        return None
    return int(found.group())


def verification_reply(rng: random.Random, prompt_text: str, truth: str, judge_garbage: float) -> str:
    solution = _last_block(_SOLUTION, prompt_text) or ""
    steps = parse_steps(solution)
    total = len(steps.combined)
    first_bad = next((i for i, step in enumerate(steps.combined) if is_bad_step(step)), None)
    boxed = boxed_answer(solution)
    if first_bad is None and total and boxed is not None and normalize_answer(boxed) != normalize_answer(truth):
        first_bad = total - 1
    shown = total if first_bad is None else first_bad + 1
    parts = ["[Visual Elements]\n"]
    for i in range(min(shown, len(steps.perception))):
        parts.append(_analysis(rng, i + 1, i == first_bad))
    if shown > len(steps.perception):
        parts.append("\n[Reasoning]\n")
        for j in range(shown - len(steps.perception)):
            index = len(steps.perception) + j
            parts.append(_analysis(rng, j + 1, index == first_bad))
    if rng.random() >= judge_garbage:
        parts.append(f"\n<conclusion>\n{'Correct' if first_bad is None else 'Incorrect'}\n</conclusion>")
    return "".join(parts)


def _analysis(rng: random.Random, number: int, bad: bool) -> str:
    if bad:
        text = rng.choice((
            "This step is wrong: it relies on a guess about objects that are not clearly visible. "
            "Only what the image actually shows should be counted.",
            "This step does not follow from the image: the extra objects it assumes are not there. "
            "The count should be redone from the visible objects.",
        ))
    else:
        text = rng.choice((
            "This observation is accurate and supported by the image.",
            "The step is logically sound and follows from the previous observations.",
            "This matches what is visible in the image.",
        ))
    return f"<analysis_{number}>\n{text}\n</analysis_{number}>\n"
