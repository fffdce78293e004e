"""Which steps of a rollout to measure, and what the record says about the others.

Three modes, one record shape (`steps_with_score` with `step`, `score`, `num_mc_correct`,
`num_mc_total`, `measured`, `decided_early`):

- `exhaustive`: every step measured with N continuations; `score` is the share that reached the
  right answer (a soft score).
- `binary-search`: the first step whose score is zero, found in O(log steps) probes of N each, as
  OmegaPRM does. Measured steps have soft scores; the others are filled in (see `fill_scores`).
- `adaptive`: the same search, but a probe samples in rounds and stops at the first continuation
  that reaches the answer (VisualPRM's rule: a step is good when any continuation from it gets
  there). Only a probe heading for zero pays the full N. `score` is a hard label, 1.0 or 0.0, and a
  step that stopped early says so (`decided_early`): one success in 4 is no estimate of a share.

Searches assume what binary search always does: once a step is wrong, every later step is too.
A rollout that reached the right answer needs no probe (its own answer is a continuation of its
full prefix that succeeded), and a wrong one is taken to fail from its full prefix, so the search
runs over the steps before its last.

Binary search splits each range in the middle: its probes cost the same whatever they find. An
adaptive probe does not: one that finds a success costs about a round, one that finds zero costs N.
So adaptive splits where the expected cost of the rest of the search is least (`cost_aware_split`,
first wrong step taken as equally likely anywhere in the range): earlier than the middle, where a
probe is more likely to succeed cheaply. On the emulator's realism profile this paid 8-13% fewer
continuation tokens than splitting in the middle, with the same answers (`bench/bench_mc.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache, lru_cache

MC_MODES = ("exhaustive", "binary-search", "adaptive")
HARD_LABEL_MODES = ("adaptive",)


@dataclass(frozen=True)
class StepCount:
    correct: int
    total: int
    decided_early: bool = False  # a round reached the answer before all N were paid for

    @property
    def score(self) -> float:
        return self.correct / self.total


Measure = Callable[[int], Awaitable[StepCount]]
Split = Callable[[int, int], int]  # (low, high) -> the step to probe, low <= step < high


def midpoint(low: int, high: int) -> int:
    return (low + high) // 2


def cost_aware_split(zero_cost: float, success_cost: float) -> Split:
    """The split that minimises the expected cost of the search when a probe finding zero costs
    `zero_cost` and one finding a success `success_cost` (see the module docstring)."""
    return lambda low, high: low + _plan(high - low + 1, float(zero_cost), float(success_cost))[1]


@lru_cache(maxsize=4096)
def _plan(size: int, zero_cost: float, success_cost: float) -> tuple[float, int]:
    """(expected cost, offset of the best probe) for a range of `size` steps whose last is zero."""
    if size <= 1:
        return 0.0, 0
    best = (float("inf"), 0)
    for offset in range(size - 1):
        p_zero = (offset + 1) / size  # the first zero is at or before the probe
        cost = (p_zero * (zero_cost + _plan(offset + 1, zero_cost, success_cost)[0])
                + (1 - p_zero) * (success_cost + _plan(size - offset - 1, zero_cost, success_cost)[0]))
        best = min(best, (cost, offset))
    return best


def max_probes(n_steps: int, split: Split = midpoint) -> int:
    """The most probes a search over `n_steps` can make (for the dry run)."""
    @cache
    def depth(low: int, high: int) -> int:
        if low >= high:
            return 0
        middle = split(low, high)
        return 1 + max(depth(low, middle), depth(middle + 1, high))
    return depth(0, n_steps - 1)


def round_sizes(num_mc: int, mc_round: int) -> list[int]:
    """The sizes of the rounds one adaptive probe may pay for: `mc_round` each, N in all."""
    size = max(1, min(mc_round, num_mc))
    return [min(size, num_mc - start) for start in range(0, num_mc, size)]


async def score_exhaustive(measure: Measure, n_steps: int) -> tuple[dict[int, StepCount], int | None]:
    """Every step measured; returns the counts and the first zero-score step (or None)."""
    # Wait for every probe even when one fails: the others are paid for, and end up in the journal.
    outcomes = await asyncio.gather(*(measure(step) for step in range(n_steps)), return_exceptions=True)
    failure = next((o for o in outcomes if isinstance(o, BaseException)), None)
    if failure is not None:
        raise failure
    counts = dict(enumerate(outcomes))
    return counts, min((i for i, count in counts.items() if count.correct == 0), default=None)


async def score_binary_search(measure: Measure, n_steps: int, rollout_correct: bool,
                              split: Split = midpoint) -> tuple[dict[int, StepCount], int | None]:
    """Probe steps until the first zero-score step is pinned down (see the module docstring).

    Every probe already paid for bounds the rest: a step with a success moves the low end past
    it, a step with none moves the high end to it."""
    counts: dict[int, StepCount] = {}
    if rollout_correct:
        return counts, None
    low, high = 0, n_steps - 1  # high: a step known (or, for the last one, taken) to score zero
    while low < high:
        middle = split(low, high)
        counts[middle] = await measure(middle)
        if counts[middle].correct == 0:
            high = middle
        else:
            low = middle + 1
    return counts, low


def fill_scores(steps: list[str], counts: dict[int, StepCount], first_zero: int | None,
                hard: bool = False) -> list[dict]:
    """`steps_with_score` with every step: measured ones as counted, the others inferred.

    Soft (`hard=False`): a measured step's score is its share; an unmeasured one gets 0.0 from the
    first zero on, else the score of the next measured step (1.0 when none follows). Hard: 1.0
    before the first zero, 0.0 from it on, whatever was counted."""
    filled = []
    for i, text in enumerate(steps):
        count = counts.get(i)
        zero = first_zero is not None and i >= first_zero
        if hard:
            score = 0.0 if zero else 1.0
        elif count is not None:
            score = count.score
        elif zero:
            score = 0.0
        else:
            later = [counts[j] for j in sorted(counts) if j > i and counts[j].correct]
            score = later[0].score if later else 1.0
        filled.append({"step": text, "score": score, "num_mc_correct": count.correct if count else 0,
                       "num_mc_total": count.total if count else 0, "measured": count is not None,
                       "decided_early": bool(count and count.decided_early)})
    return filled


def first_zero_step(steps_with_score: list[dict]) -> int | None:
    """0-based index (over perception + reasoning steps) of the first step scored 0, or None."""
    return next((i for i, step in enumerate(steps_with_score) if step["score"] == 0), None)
