"""Finding the first wrong step, in ProcessBench's form (arXiv 2412.06559).

Each solution has a reference first-error index, -1 when every step is right, from one of:
- a ProcessBench-format record (`steps`, `label`; `final_answer_correct` is not needed);
- rollkit's own labels: `mc` (Monte-Carlo: the first step scored 0, unmeasured steps filled by the
  monotone rule), `judge` (the judge's first incorrect step; -1 when it concluded Correct) or
  `consensus` (only where the two agree), as export/labels.py's policies give them.
Each scorer predicts an index the same way: the PRM at a threshold (the first step whose score is
below it), the judge, Monte-Carlo. Against the reference: accuracy on erroneous solutions (the
first error found exactly), accuracy on correct ones (no error claimed), and F1, their harmonic mean.
A solution without a reference, or without a scorer's prediction, is left out of that scorer's
figures (counted in `solutions`).
"""

from __future__ import annotations

from collections.abc import Iterable

from rollkit.export.labels import Policy
from rollkit.export.view import read_rollout

REFERENCES = ("processbench", "mc", "judge", "consensus")
POLICY_OF = {"mc": "mc-hard", "judge": "judge", "consensus": "consensus"}
DEFAULT_THRESHOLDS = (0.5,)


def first_false(marks: list) -> int:
    return next((i for i, good in enumerate(marks) if not good), -1)


def reference(record: dict, source: str) -> int | None:
    if source == "processbench":
        label = record.get("label")
        return label if isinstance(label, int) and not isinstance(label, bool) else None
    labels = Policy(POLICY_OF[source], fill_unmeasured=True).label(read_rollout(record))
    return None if labels.values is None else first_false(labels.values)


def prm_prediction(scores: object, threshold: float) -> int | None:
    if not isinstance(scores, list) or not scores or not all(isinstance(s, (int, float)) for s in scores):
        return None
    return next((i for i, s in enumerate(scores) if s < threshold), -1)


def predictions(record: dict, thresholds: Iterable[float]) -> dict[str, int | None]:
    out = {f"prm@{t:g}": prm_prediction(record.get("prm_step_scores"), t) for t in thresholds}
    if "steps_with_score" in record:
        for name in ("judge", "mc"):
            out[name] = reference(record, name)
    return out


def metrics(pairs: list[tuple[int, int]]) -> dict:
    """(reference, prediction) pairs to ProcessBench's three figures (None where undefined)."""
    erroneous = [(r, p) for r, p in pairs if r != -1]
    correct = [(r, p) for r, p in pairs if r == -1]
    acc_err = sum(r == p for r, p in erroneous) / len(erroneous) if erroneous else None
    acc_cor = sum(p == -1 for _, p in correct) / len(correct) if correct else None
    f1 = None
    if acc_err is not None and acc_cor is not None:
        f1 = 0.0 if acc_err + acc_cor == 0 else 2 * acc_err * acc_cor / (acc_err + acc_cor)
    return {"erroneous_accuracy": acc_err, "correct_accuracy": acc_cor, "f1": f1,
            "erroneous": len(erroneous), "correct": len(correct)}


def step_level(records: Iterable[dict], source: str, thresholds: Iterable[float] = DEFAULT_THRESHOLDS) -> dict:
    """{"reference": source, "solutions": n, "scorers": {name: metrics}}; a scorer that is the
    reference itself is left out (it would score 1 by definition)."""
    thresholds = list(thresholds)
    pairs: dict[str, list[tuple[int, int]]] = {}
    solutions = 0
    for record in records:
        if isinstance(record.get("generated_answers"), list):
            continue  # candidates carry no step labels
        solutions += 1
        ref = reference(record, source)
        if ref is None:
            continue
        for name, predicted in predictions(record, thresholds).items():
            if predicted is not None and name != source:
                pairs.setdefault(name, []).append((ref, predicted))
    return {"reference": source, "solutions": solutions,
            "scorers": {name: metrics(p) for name, p in sorted(pairs.items())}}
