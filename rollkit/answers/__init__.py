"""Answer parsing (``parse_answer``) and checking (``check_answer``) for every format and scoring mode.

Answer formats and scoring modes are small functions registered by name; adding a dataset is one
function plus one line in ``_DATASET_MODES``. Conventions that hold for every mode:

- ``check_answer`` returns 0 or 1; with several modes the result is the best of them.
- A ground truth may be a list of acceptable answers: a match with any one counts.
- An empty (or whitespace-only) prediction or ground truth never counts as correct: 0.
- The same string as a ground truth (after stripping) is correct in every mode, as in the seed.
- Predictions that are not text (None, dicts, bools) score 0; ints and floats are read as their
  decimal text, so ``2`` and ``"2"`` are the same answer.
- ``parse_answer`` returns None when nothing parses; no response text makes it raise.

Modules, one concern each: ``formats`` (answer formats), ``normalize`` (VQA rules, numbers),
``modes`` (scoring modes and ``check_answer``), ``mathcheck`` (math_verify and its worker
processes), ``llm_equivalence`` (``llm_judge`` and ``check_answer_async``), ``equivalence_endpoint``
(the endpoint behind it), ``datasets`` (``get_mode``, ``choose_modes``: modes by dataset name, and why),
``quantities`` (money, units, percentages by value), ``checkers`` (a user's own checker as a mode),
``score_text`` (a judge's 1-10 score in free text).
"""

from __future__ import annotations

from rollkit.answers.checkers import CheckerError
from rollkit.answers.datasets import DEFAULT_MODES, choose_modes, get_mode, resolve_modes
from rollkit.answers.formats import (
    answer_formats,
    answer_line,
    auto,
    correct_answer,
    dvqa_v1,
    final_answers,
    last_boxed,
    mc_letter,
    parse_answer,
    raven_v1,
    raven_v2,
    register_format,
)
from rollkit.answers.llm_equivalence import JudgeFn, check_answer_async, set_llm_judge
from rollkit.answers.mathcheck import math_equal
from rollkit.answers.modes import (
    ASYNC_MODES,
    ModeFn,
    anls,
    anls_similarity,
    check_answer,
    dvqa_int_only_score,
    known_mode,
    latex_score,
    levenshtein,
    math_score,
    mc_score,
    raven_score_alphabet_only,
    raven_score_integer_only,
    register_mode,
    relaxed_accuracy,
    scoring_modes,
    vqa_score,
    vqav2_num_str_only_score,
)
from rollkit.answers.normalize import integer_text, vqa_normalize

__all__ = [
    "ASYNC_MODES",
    "CheckerError",
    "DEFAULT_MODES",
    "JudgeFn",
    "ModeFn",
    "anls",
    "anls_similarity",
    "answer_formats",
    "answer_line",
    "auto",
    "check_answer",
    "check_answer_async",
    "choose_modes",
    "correct_answer",
    "dvqa_int_only_score",
    "dvqa_v1",
    "final_answers",
    "get_mode",
    "integer_text",
    "known_mode",
    "last_boxed",
    "latex_score",
    "levenshtein",
    "math_equal",
    "math_score",
    "mc_letter",
    "mc_score",
    "parse_answer",
    "raven_score_alphabet_only",
    "raven_score_integer_only",
    "raven_v1",
    "raven_v2",
    "register_format",
    "register_mode",
    "relaxed_accuracy",
    "resolve_modes",
    "scoring_modes",
    "set_llm_judge",
    "vqa_normalize",
    "vqa_score",
    "vqav2_num_str_only_score",
]
