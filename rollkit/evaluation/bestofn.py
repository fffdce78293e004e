"""Best-of-N: for questions with a known answer and N candidates each, the accuracy of a picker
that sees the first n candidates, for n = 1, 2, 4, ... N (and N itself).

Pickers:
- `prm_<aggregate>`: the candidate whose step scores aggregate highest (min, prod, last, mean);
- `majority`: the answer most candidates give (ties: the one given first; unparsed answers do not
  vote, and with no vote the first candidate is taken);
- `judge`: the highest `generated_scores` (only when a question has judge scores);
- `random`: the expected accuracy of a uniform pick, the share of right candidates;
- `oracle`: any of the n is right.
Ties in a score go to the earlier candidate. A question with fewer than n candidates uses all it
has. Candidates are the record's `generated_answers` (their step scores a list per candidate), or
the rollouts of one entry (one candidate each).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from rollkit.answers import check_answer, parse_answer, vqa_normalize
from rollkit.content.messages import reference_answers
from rollkit.export.view import AnswerCheck
from rollkit.stages.prm import AGGREGATES, aggregate


@dataclass
class Question:
    right: list[bool] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)  # normalised, for the vote
    steps: list[list[float] | None] = field(default_factory=list)  # PRM step scores per candidate
    judge: list[float | None] = field(default_factory=list)


def _norm(answer: str | None) -> str | None:
    return vqa_normalize(answer) if isinstance(answer, str) and answer.strip() else None


def from_candidates(record: dict, check: AnswerCheck) -> Question:
    texts = [str(t) for t in record.get("generated_answers") or []]
    truth = reference_answers(record)
    parsed = [parse_answer(t, check.answer_format) for t in texts]
    right = [bool(truth) and bool(check_answer(p, truth, list(check.modes))) for p in parsed]
    steps = record.get("prm_step_scores") or [None] * len(texts)
    judge = record.get("generated_scores") or [None] * len(texts)
    return Question(right, [_norm(p) for p in parsed], list(steps), list(judge))


def questions(records: Iterable[dict], check: AnswerCheck) -> list[Question]:
    """One Question per candidate record, and one per entry of rollout records (in first-seen order)."""
    out: list[Question] = []
    by_entry: dict[str, Question] = {}
    for record in records:
        if isinstance(record.get("generated_answers"), list):
            out.append(from_candidates(record, check))
            continue
        q = by_entry.setdefault(str(record.get("entry_id")), Question())
        response = record.get("response")
        q.right.append(check.is_right(record))
        q.answers.append(_norm(parse_answer(response, check.answer_format) if isinstance(response, str) else None))
        q.steps.append(record.get("prm_step_scores"))
        q.judge.append(None)
    return out + list(by_entry.values())


def sizes(largest: int) -> list[int]:
    ns, n = [], 1
    while n < largest:
        ns.append(n)
        n *= 2
    return [*ns, largest] if largest else []


def _argmax(values: list[float | None]) -> int | None:
    best = None
    for i, v in enumerate(values):
        if v is not None and (best is None or v > values[best]):
            best = i
    return best


def pick_prm(q: Question, n: int, how: str) -> int | None:
    return _argmax([aggregate(s, how) if s else None for s in q.steps[:n]])


def pick_majority(q: Question, n: int) -> int:
    votes = Counter(a for a in q.answers[:n] if a is not None)
    if not votes:
        return 0
    top = max(votes.values())
    winner = next(a for a in q.answers[:n] if a is not None and votes[a] == top)
    return q.answers.index(winner)


def curves(qs: list[Question]) -> dict:
    """{"n": [...], picker: [accuracy per n]}; a picker that has no scores for a question counts
    it wrong, and `questions_scored` says how many it could pick in."""
    largest = max((len(q.right) for q in qs), default=0)
    result: dict = {"n": sizes(largest), "questions": len(qs)}
    pickers = {f"prm_{how}": (lambda q, n, h=how: pick_prm(q, n, h)) for how in AGGREGATES}
    pickers["majority"] = pick_majority
    if any(any(s is not None for s in q.judge) for q in qs):
        pickers["judge"] = lambda q, n: _argmax(q.judge[:n])
    for name, pick in pickers.items():
        result[name] = [_mean(_right(q, pick(q, n)) for q in qs) for n in result["n"]]
    result["random"] = [_mean(_mean(q.right[:n]) for q in qs) for n in result["n"]]
    result["oracle"] = [_mean(float(any(q.right[:n])) for q in qs) for n in result["n"]]
    result["questions_scored"] = {"prm": sum(any(q.steps) for q in qs),
                                  "judge": sum(any(s is not None for s in q.judge) for q in qs)}
    return result


def _right(q: Question, index: int | None) -> float:
    return float(index is not None and q.right[index])


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
