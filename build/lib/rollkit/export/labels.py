"""Label policies: step labels for a rollout, or the reason it gets none.

- `mc-hard`: a step is good when its Monte-Carlo score is above `threshold` (0: VisualPRM's rule).
- `mc-soft`: the score itself, for trainers that take floats.
- `judge`: good before the judge's first incorrect step, bad from it on; all good when the judge
  concluded Correct.
- `consensus` (Qwen's consensus filtering, arXiv 2501.07301): kept only where Monte-Carlo and the
  judge agree. Either both call the rollout sound (every score above `threshold`, and Correct), or
  both put the first error at the same step; labels are good before that step and bad from it on.

A policy that reads scores never labels a step Monte-Carlo did not measure (binary search leaves
most unmeasured): with `fill_unmeasured` the monotone rule rollout.py uses fills them and the row
lists them in `filled_steps`; without, the rollout is dropped as `unmeasured_steps`. Rollouts whose
scores are hard labels (`score_kind: "label"`, adaptive Monte-Carlo) have no share to give
`mc-soft`: dropped as `scores_are_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollkit.export.view import RolloutView

POLICIES = ("mc-hard", "mc-soft", "judge", "consensus")
USES_MC = {"mc-hard", "mc-soft", "consensus"}
USES_JUDGE = {"judge", "consensus"}

# why a rollout with a verdict field has no usable verdict: `verification_status` -> drop reason
_NO_VERDICT = {"pending": "no_verdict", "unverified": "no_verdict", "refused": "judge_refused",
               "failed": "verification_failed", "no_conclusion": "judge_unparsed"}


@dataclass(frozen=True)
class Labels:
    values: list | None = None  # bools (floats for mc-soft); None when dropped
    dropped: str | None = None  # the reason, counted in the summary
    filled_steps: tuple[int, ...] = ()  # steps whose score came from the monotone rule


@dataclass(frozen=True)
class Policy:
    name: str
    threshold: float = 0.0
    fill_unmeasured: bool = False

    def label(self, view: RolloutView) -> Labels:
        if view.parsing_failed:
            return Labels(dropped="rollout_unparsed")
        if self.name in USES_JUDGE and view.verification != "ok":
            return Labels(dropped=_NO_VERDICT.get(view.verification, "no_verdict"))
        if self.name == "mc-soft" and view.score_kind == "label":
            return Labels(dropped="scores_are_labels")
        scores, filled = None, ()
        if self.name in USES_MC:
            filled = tuple(i for i, step in enumerate(view.steps) if not step.measured)
            if filled and not self.fill_unmeasured:
                return Labels(dropped="unmeasured_steps")
            scores = monotone_scores(view) if filled else [s.score for s in view.steps]
        result = self._apply(view, scores)
        return Labels(result.values, result.dropped, filled if result.values is not None else ())

    def _apply(self, view: RolloutView, scores: list[float] | None) -> Labels:
        if self.name == "mc-soft":
            return Labels(list(scores))
        if self.name == "mc-hard":
            return Labels([score > self.threshold for score in scores])
        judge = judge_first_error(view)
        if self.name == "judge":
            return Labels(dropped=judge) if isinstance(judge, str) else Labels(good_until(len(view.steps), judge))
        mc = next((i for i, score in enumerate(scores) if score <= self.threshold), None)
        if isinstance(judge, str):
            return Labels(dropped=judge)
        if mc == judge:
            return Labels(good_until(len(view.steps), mc))
        if mc is None:
            return Labels(dropped="disagree_mc_sound_judge_incorrect")
        if judge is None:
            return Labels(dropped="disagree_mc_error_judge_correct")
        return Labels(dropped="disagree_first_error_step")


def judge_first_error(view: RolloutView) -> int | None | str:
    """None when the judge says Correct, the step it found wrong, or why that step is unknown."""
    if view.judge_conclusion:
        return None
    step = view.judge_first_error
    if step is None:
        return "judge_step_unknown"
    return step if 0 <= step < len(view.steps) else "judge_step_out_of_range"


def good_until(n_steps: int, first_error: int | None) -> list[bool]:
    return [first_error is None or i < first_error for i in range(n_steps)]


def monotone_scores(view: RolloutView) -> list[float]:
    """Scores with unmeasured steps filled by rollout.py's rule (`fill_scores` in its Monte-Carlo
    module): 0 from the first zero on, else the score of the next measured step that reached the
    answer (1.0 when none does). Applied to the stored scores, not rebuilt from the counts, which
    for hard labels (adaptive) are not the score."""
    first = view.mc_first_error
    scores = []
    for i, step in enumerate(view.steps):
        if step.measured:
            scores.append(step.score)
        elif first is not None and i >= first:
            scores.append(0.0)
        else:
            scores.append(next((s.score for s in view.steps[i + 1:] if s.measured and s.score > 0), 1.0))
    return scores
