"""One shape for a rollout, whichever stage and schema version wrote it.

Schema 1 (`map` before the judge's field had its own name): the judge's first wrong step is a
dict in `first_incorrect_step` and the Monte-Carlo one an int in `mc_first_incorrect_step`.
Schema 2: the judge's is in `judge_first_incorrect_step`, and `first_incorrect_step` stays the
Monte-Carlo int that rollout.py wrote. Rollouts that were never verified (rollout.py's output, the
seed's rollouts) have no verdict at all; the seed's have no `measured` either (every step was).
"""

from __future__ import annotations

from dataclasses import dataclass

from rollkit.answers import check_answer, parse_answer
from rollkit.content.messages import reference_answers


@dataclass(frozen=True)
class Step:
    text: str
    score: float
    measured: bool
    correct: int  # continuations that reached the answer (0 when not measured)
    total: int


@dataclass(frozen=True)
class RolloutView:
    steps: tuple[Step, ...]
    mc_first_error: int | None  # 0-based over perception + reasoning steps; None: no zero score
    judge_first_error: int | None  # the same numbering; None when the judge named no step
    judge_conclusion: bool | None  # True Correct, False Incorrect, None: no readable verdict
    verification: str  # ok | no_conclusion | refused | failed | pending | unverified
    parsing_failed: bool
    score_kind: str = "share"  # "label" when rollout.py's mode (adaptive) stores hard labels as scores


def _step(raw: dict) -> Step:
    total = int(raw.get("num_mc_total") or 0)
    measured = raw.get("measured")
    measured = total > 0 if measured is None and "num_mc_total" in raw else measured is not False
    return Step(str(raw.get("step", "")), float(raw.get("score") or 0.0), bool(measured),
                int(raw.get("num_mc_correct") or 0), total)


def _judge_step(value: object) -> int | None:
    if isinstance(value, dict) and isinstance(value.get("step"), int):
        return value["step"]
    return None


def _verification(record: dict) -> str:
    status = record.get("verification_status")
    if isinstance(status, str) and status:
        return status
    if record.get("conclusion") is not None:
        return "ok"
    return "pending" if "verification_response" in record else "unverified"


def read_rollout(record: dict) -> RolloutView:
    """The fields every export and report reads, from a record of either schema."""
    steps = tuple(_step(s) for s in record.get("steps_with_score") or [] if isinstance(s, dict))
    legacy = record.get("first_incorrect_step")
    judge = record.get("judge_first_incorrect_step", legacy if isinstance(legacy, dict) else None)
    mc = record.get("mc_first_incorrect_step", legacy if not isinstance(legacy, dict) else None)
    if not isinstance(mc, int) or isinstance(mc, bool):
        mc = next((i for i, s in enumerate(steps) if s.score == 0), None)
    conclusion = record.get("conclusion")
    return RolloutView(
        steps=steps, mc_first_error=mc, judge_first_error=_judge_step(judge),
        judge_conclusion=conclusion if isinstance(conclusion, bool) else None,
        verification=_verification(record),
        parsing_failed=bool(record.get("parsing_failed")) or not steps,
        score_kind="label" if record.get("score_kind") == "label" else "share")


@dataclass(frozen=True)
class AnswerCheck:
    """How to tell whether a rollout that does not say so (`is_correct`) reached the answer."""

    answer_format: str = "correct_answer"
    modes: tuple[str, ...] = ("vqa_score",)

    def is_right(self, record: dict) -> bool:
        given = record.get("is_correct")
        if isinstance(given, bool):
            return given
        truth = reference_answers(record)
        if not truth or not isinstance(record.get("response"), str):
            return False
        return bool(check_answer(parse_answer(record["response"], self.answer_format), truth, list(self.modes)))
