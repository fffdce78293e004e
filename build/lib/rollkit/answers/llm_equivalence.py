"""The ``llm_judge`` mode: a model decides equivalence, so it is checked by ``check_answer_async``.

Verdicts are cached per (prediction, truth, question), and concurrent checks of one key share a call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from rollkit.answers.modes import ASYNC_MODES, _as_text, _check_sync, _ground_truths, _mode_names

JudgeFn = Callable[[str, str, "str | None"], Awaitable[int]]

_judge: JudgeFn | None = None
_verdicts: dict[tuple[str, str, str | None], int] = {}
_in_flight: dict[tuple[str, str, str | None], tuple[asyncio.AbstractEventLoop, asyncio.Task[int]]] = {}
_MAX_VERDICTS = 100_000


def set_llm_judge(fn: JudgeFn | None) -> None:
    """Install ``fn(pred, gt, question) -> Awaitable[0/1]`` as the judge; clears cached verdicts."""
    global _judge
    _judge = fn
    _verdicts.clear()
    _in_flight.clear()


async def check_answer_async(
    answer_pred: object,
    answer_gt: object,
    mode: str | Sequence[str],
    *,
    question: str | None = None,
    image: object = None,
) -> int:
    """``check_answer`` that can also use ``llm_judge``; the judge is only asked if no other mode matched.

    Judge errors propagate: a failed call is not a wrong answer. ``image`` is accepted for symmetry.
    """
    names = _mode_names(mode)
    if _check_sync(answer_pred, answer_gt, [name for name in names if name not in ASYNC_MODES]):
        return 1
    pred = _as_text(answer_pred)
    if "llm_judge" not in names or not pred:
        return 0
    for gt in _ground_truths(answer_gt):
        if await _judge_verdict(pred, gt, question):
            return 1
    return 0


async def _judge_verdict(pred: str, gt: str, question: str | None) -> int:
    if pred.casefold() == gt.casefold():
        return 1  # no call needed to see these are the same
    key = (pred, gt, question)
    if key in _verdicts:
        return _verdicts[key]
    if _judge is None:
        raise RuntimeError("mode 'llm_judge' needs a judge: call set_llm_judge(fn) first")
    # Monte-Carlo continuations often reach the same answer at once: share one call per key.
    loop = asyncio.get_running_loop()
    entry = _in_flight.get(key)
    if entry is None or entry[0] is not loop:
        entry = (loop, loop.create_task(_ask_judge(_judge, key)))
        _in_flight[key] = entry
    return await asyncio.shield(entry[1])


async def _ask_judge(judge: JudgeFn, key: tuple[str, str, str | None]) -> int:
    try:
        verdict = 1 if await judge(*key) == 1 else 0
    finally:
        _in_flight.pop(key, None)
    if judge is _judge:  # a verdict of a replaced judge is not cached
        if len(_verdicts) >= _MAX_VERDICTS:
            _verdicts.pop(next(iter(_verdicts)))
        _verdicts[key] = verdict
    return verdict
