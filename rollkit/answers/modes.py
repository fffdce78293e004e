"""Scoring modes: ``check_answer`` compares a prediction with its ground truths under named modes.

Each mode is a function ``fn(pred, gt) -> 0/1`` registered by name with ``register_mode``; the
conventions every mode follows are in the package docstring.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from rollkit.answers.formats import mc_letter
from rollkit.answers.mathcheck import math_equal
from rollkit.answers.normalize import _to_float, integer_text, vqa_normalize
from rollkit.answers.quantities import same_quantity

ModeFn = Callable[[str, str], int]

_MODES: dict[str, ModeFn] = {}
_PLUGINS: set[str] = set()  # modes loaded from a user's checker
ASYNC_MODES = frozenset({"llm_judge", "ai2d_open_answer_score"})
# The seed's name for judging open answers (AI2D and other open-ended sets) is the same judge.
MODE_ALIASES = {"ai2d_open_answer_score": "llm_judge"}


def register_mode(name: str) -> Callable[[ModeFn], ModeFn]:
    """Register ``fn(pred, gt) -> 0/1``; both arguments arrive as non-empty stripped strings."""

    def add(fn: ModeFn) -> ModeFn:
        _MODES[name] = fn
        return fn

    return add


def _as_text(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return value.strip() if isinstance(value, str) else None


def _ground_truths(answer_gt: object) -> list[str]:
    values = answer_gt if isinstance(answer_gt, (list, tuple)) else [answer_gt]
    return [text for text in map(_as_text, values) if text]


def _mode_names(mode: str | Sequence[str]) -> list[str]:
    names = [mode] if isinstance(mode, str) else list(mode)
    for name in names:
        _load_plugin(name)
    unknown = [name for name in names if name not in _MODES and name not in ASYNC_MODES]
    if unknown or not names:
        raise ValueError(f"unknown scoring mode(s) {unknown or names}; known: {scoring_modes()}")
    return [MODE_ALIASES.get(name, name) for name in names]


def _load_plugin(name: str) -> None:
    """A user's checker (`module:function` or an entry point) becomes the mode `name`."""
    if name in _MODES or name in ASYNC_MODES:
        return
    from rollkit.answers.checkers import as_mode, load_checker  # the seam imports this module

    function = load_checker(name)
    if function is not None:
        _MODES[name] = as_mode(function)
        _PLUGINS.add(name)


def known_mode(name: str) -> bool:
    """Built in, or a user's checker that loads (raises CheckerError when it is named but does not)."""
    _load_plugin(name)
    return name in _MODES or name in ASYNC_MODES


def scoring_modes() -> list[str]:
    """The built-in modes (a user's checkers are accepted too, but not listed)."""
    return sorted({*_MODES, *ASYNC_MODES} - _PLUGINS)


def check_answer(
    answer_pred: object,
    answer_gt: object,
    mode: str | Sequence[str],
    *,
    question: str | None = None,
    image: object = None,
) -> int:
    """1 if the prediction matches a ground truth under any of the modes, else 0.

    ``question`` and ``image`` are only used by ``llm_judge``, which needs ``check_answer_async``.
    """
    names = _mode_names(mode)
    if ASYNC_MODES.intersection(names):
        raise ValueError("mode 'llm_judge' calls a model: use `await check_answer_async(...)` instead")
    return _check_sync(answer_pred, answer_gt, names)


def _check_sync(answer_pred: object, answer_gt: object, names: Iterable[str]) -> int:
    pred = _as_text(answer_pred)
    if not pred:
        return 0
    gts = _ground_truths(answer_gt)
    if pred in gts:  # the seed's shortcut: the same string is right in every mode
        return 1
    return int(any(_MODES[name](pred, gt) for name in names for gt in gts))


# ---------------------------------------------------------------- scoring modes


@register_mode("vqa_score")
def vqa_score(pred: str, gt: str) -> int:
    normalised = vqa_normalize(pred)
    return int(bool(normalised) and normalised == vqa_normalize(gt))


@register_mode("relaxed_accuracy")
def relaxed_accuracy(pred: str, gt: str, tolerance: float = 0.05) -> int:
    """ChartQA: numbers within 5% of the truth, anything else an exact case-insensitive match."""
    pred_value, gt_value = _to_float(pred), _to_float(gt)
    if pred_value is None or gt_value is None:
        return int(pred.casefold() == gt.casefold())
    # Years are labels, not quantities (2019 is not "within 5%" of 2020); only 0 is near 0.
    if gt_value == 0 or re.fullmatch(r"(?:19|20)\d\d", gt):
        return int(pred_value == gt_value)
    return int(abs(pred_value - gt_value) <= tolerance * abs(gt_value))


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def anls_similarity(pred: str, gt: str, threshold: float = 0.5) -> float:
    """DocVQA's ANLS for one pair: 1 - edit distance / longer length, 0.0 below ``threshold``."""
    pred, gt = (" ".join(str(s).lower().split()) for s in (pred, gt))
    if not pred or not gt:
        return 0.0
    similarity = 1.0 - levenshtein(pred, gt) / max(len(pred), len(gt))
    return similarity if similarity >= threshold else 0.0


@register_mode("anls")
def anls(pred: str, gt: str) -> int:
    return int(anls_similarity(pred, gt) > 0.0)


@register_mode("mc_score")
def mc_score(pred: str, gt: str) -> int:
    letter = mc_letter(pred)
    return int(letter is not None and letter == mc_letter(gt))


@register_mode("raven_score_integer_only")
def raven_score_integer_only(pred: str, gt: str) -> int:
    return int(pred == gt and pred in set("12345678"))


@register_mode("raven_score_alphabet_only")
def raven_score_alphabet_only(pred: str, gt: str) -> int:
    pred, gt = pred.upper(), gt.upper()
    return int(pred == gt and pred in set("ABCDEFGH"))


@register_mode("vqav2_num_str_only_score")
def vqav2_num_str_only_score(pred: str, gt: str) -> int:
    pred_int = integer_text(pred)
    return int(pred_int is not None and pred_int == integer_text(gt))


@register_mode("dvqa_int_only_score")
def dvqa_int_only_score(pred: str, gt: str) -> int:
    pred_int, gt_int = integer_text(pred), integer_text(gt)
    return int(pred_int is not None and gt_int is not None and int(pred_int) == int(gt_int))


@register_mode("math_score")
def math_score(pred: str, gt: str) -> int:
    """Equal by value when both are written quantities (`$34.00` = `34`), else by math_verify."""
    by_value = same_quantity(pred, gt)
    return int(by_value) if by_value is not None else int(math_equal(pred, gt))


@register_mode("latex_score")
def latex_score(pred: str, gt: str) -> int:
    """math_verify equality, only when one side is LaTeX or a fraction; plain text is left to other modes."""
    looks_latex = any("\\" in s or re.fullmatch(r"-?\d+\s*/\s*\d+", s) for s in (pred, gt))
    return int(bool(looks_latex) and math_equal(pred, gt))
