"""Adaptive Monte-Carlo scoring and the emulator's realism profile it is measured against."""

from __future__ import annotations

from rollkit.emulator.policy import Policy, PolicySettings, first_wrong_step, read_prompt
from rollkit.emulator.steps_text import is_bad_step, parse_steps


def question_body(number: int, seed: int = 1) -> dict:
    return {"model": "m", "seed": seed, "messages": [{"role": "user", "content": f"<question>How many {number}?</question>"}]}


def continuation_body(number: int, prefix: str) -> dict:
    body = question_body(number)
    return {**body, "messages": [*body["messages"], {"role": "assistant", "content": prefix}]}


def cut_before(solution: str, upto: int) -> str:
    """The solution up to and including combined step `upto` (0-based), as a continuation prefix."""
    steps = parse_steps(solution)
    target = steps.combined[upto]
    end = solution.index(target) + len(target)
    return solution[: solution.index("\n", solution.index("</step_", end)) + 1]


def test_realism_questions_differ_in_difficulty_and_lengths_vary():
    realism = Policy(PolicySettings(seed=3, realism=True))
    chances = [realism.question_chance(read_prompt(question_body(q))) for q in range(300)]
    assert 0.5 < sum(chances) / len(chances) < 0.7
    assert sum(c < 0.2 for c in chances) > 10 and sum(c > 0.8 for c in chances) > 60  # hard ones and easy ones
    solutions = realism.contents(question_body(1), "key", 40)
    lengths = {len(parse_steps(s).combined) for s in solutions}
    assert min(lengths) >= 8 and max(lengths) <= 12 and len(lengths) >= 3
    assert len({len(s) for s in solutions}) > 30
    # Deterministic per seed, and another seed is another draw.
    assert solutions == Policy(PolicySettings(seed=3, realism=True)).contents(question_body(1), "key", 40)
    assert solutions != Policy(PolicySettings(seed=4, realism=True)).contents(question_body(1), "key", 40)


def test_realism_wrong_steps_are_sometimes_recovered_and_sound_prefixes_follow_the_question():
    realism = Policy(PolicySettings(seed=3, realism=True))
    default = Policy(PolicySettings(seed=3))
    recovered = tried = 0
    for q in range(30):
        wrong = next((s for s in realism.contents(question_body(q), "key", 20) if first_wrong_step(s) is not None), None)
        if wrong is None:
            continue
        bad_prefix = cut_before(wrong, first_wrong_step(wrong))
        assert is_bad_step(parse_steps(bad_prefix).combined[-1])
        continuations = realism.contents(continuation_body(q, bad_prefix), "key", 200)
        tried += len(continuations)
        recovered += sum(first_wrong_step(bad_prefix + c) == first_wrong_step(wrong) and c.count("which suggests") == 0
                         for c in continuations)
        # The default profile never recovers.
        assert all("which suggests" in c for c in default.contents(continuation_body(q, bad_prefix), "key", 50))
    assert 0 < recovered < 0.03 * tried
