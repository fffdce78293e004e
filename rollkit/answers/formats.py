"""Answer formats: ``parse_answer`` reads the answer out of a response under a named format.

Each format is a function ``fn(text) -> str | None`` registered by name with ``register_format``.
The seed's ``prompt_format_version`` names are accepted too (``SEED_ALIASES``): its English and
Chinese prompts (``en``, ``zh``, ``en_v2``, ``zh_v2``) all asked for the answer in
``<correct_answer>`` (boxed from v2 on), and the ``_r1`` ones put a ``<think>`` block first.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_FORMATS: dict[str, Callable[[str], str | None]] = {}


def register_format(name: str) -> Callable[[Callable[[str], str | None]], Callable[[str], str | None]]:
    def add(fn: Callable[[str], str | None]) -> Callable[[str], str | None]:
        _FORMATS[name] = fn
        return fn

    return add


# seed prompt_format_version -> the format it means (raven_v1, raven_v2, dvqa_v1_int_only are
# formats under their own names)
SEED_ALIASES = {"en": "correct_answer", "zh": "correct_answer", "en_v2": "correct_answer",
                "zh_v2": "correct_answer", "en_r1": "after_think", "zh_r1": "after_think"}


def parse_answer(response: str, answer_format: str) -> str | None:
    """The answer in ``response`` under ``answer_format`` (see ``answer_formats()``), or None."""
    answer_format = SEED_ALIASES.get(answer_format, answer_format)
    if answer_format not in _FORMATS:
        raise ValueError(f"unknown answer format {answer_format!r}; known: {sorted(_FORMATS)}")
    if not isinstance(response, str):
        return None
    answer = _FORMATS[answer_format](response)
    return answer if answer else None


def answer_formats() -> list[str]:
    """Every format name, the seed's prompt_format_version aliases included."""
    return sorted({*_FORMATS, *SEED_ALIASES})


@register_format("boxed")
def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, braces matched by counting (``\\{`` is escaped)."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = start + len("\\boxed")
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text) or text[i] != "{":
        return None
    depth, body_start = 0, i + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return _unwrap_text(text[body_start:i].strip())
        i += 1
    # Unbalanced: the output was cut off inside the box; an earlier box is not the final answer.
    return None


def _unwrap_text(content: str) -> str:
    wrapped = re.fullmatch(r"\\(?:text|textbf|mathrm)\{([^{}]*)\}", content)
    return wrapped.group(1).strip() if wrapped else content


_OPEN_ANSWER = re.compile(r"<\s*correct_answer\s*>", re.IGNORECASE)
_CLOSE_ANSWER = re.compile(r"<\s*/\s*correct_answer\s*>", re.IGNORECASE)


def _correct_answer_inside(text: str) -> str | None:
    # The last opening tag decides: if a re-answer was cut off, an earlier answer is not final.
    openings = list(_OPEN_ANSWER.finditer(text))
    opening = openings[-1] if openings else None
    closing = _CLOSE_ANSWER.search(text, opening.end()) if opening else None
    return text[opening.end() : closing.start()].strip() if opening and closing else None


@register_format("correct_answer")
def correct_answer(text: str) -> str | None:
    """Inside ``<correct_answer>``: the boxed content if there is a box, else the stripped text."""
    inside = _correct_answer_inside(text)
    if inside is None or "\\boxed" not in inside:
        return inside
    return last_boxed(inside)  # None for a broken box: its raw text is not an answer either


_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


@register_format("after_think")
def after_think(text: str) -> str | None:
    """``correct_answer`` read after the reasoning model's ``<think>`` block (seed ``en_r1``/``zh_r1``),
    so an answer tried out while thinking is not taken for the final one."""
    return correct_answer(_THINK.sub("", text))


@register_format("dvqa_v1_int_only")
def dvqa_v1(text: str) -> str | None:
    return correct_answer(text)


@register_format("raven_v1")
def raven_v1(text: str) -> str | None:
    """Panel number 1-8 from the answer block (first standalone digit; the box first if present)."""
    content = correct_answer(text)
    found = re.search(r"(?<![\d.])[1-8](?!\d|\.\d)", content or "")
    return found.group(0) if found else None


@register_format("raven_v2")
def raven_v2(text: str) -> str | None:
    """Option letter A-H from the answer block, read like any multiple-choice letter."""
    content = correct_answer(text)
    letter = mc_letter(content) if content else None
    return letter if letter and letter <= "H" else None


# "Answer: 72", "**Final answer:** 72", or GSM8K's own "#### 72"
_ANSWER_LINE = re.compile(
    r"^(?:[\s>*_#-]*(?:final\s+)?(?:answer|答案)[\s*_]*[:：]|\s*####)[\s*_]*(?P<answer>.+?)[\s*_]*$",
    re.IGNORECASE | re.MULTILINE,
)


@register_format("answer_line")
def answer_line(text: str) -> str | None:
    found = list(_ANSWER_LINE.finditer(text))
    return found[-1].group("answer").strip() if found else None


_WHOLE_LETTER = re.compile(r"\(?([A-Za-z])\)?[.:)]?")
_LEADING_LETTER = re.compile(r"(?:\(([A-Z])\)|([A-Z])[.:)])\s+\S")
# The letter must be closed off ("B", "B.", "(B)") so "the answer is A bird" is not read as A.
_KEYWORD_LETTER = re.compile(
    r"(?i:\b(?:answer|option|choice)\b)(?:\s+(?i:is))?\s*[:：]?\s*"
    r"(?:\(([A-Z])\)|([A-Z])(?=\s*(?:$|[.,;:)\]])))",
    re.MULTILINE,
)


@register_format("mc_letter")
def mc_letter(text: str) -> str | None:
    """An option letter from ``B``, ``(B)``, ``B.``, ``B) text``, ``Answer: B``, ``the answer is B``."""
    for candidate in (last_boxed(text), _correct_answer_inside(text), text):
        if not candidate:
            continue
        bare = candidate.strip().strip("*$'\"` ").strip()
        short = _WHOLE_LETTER.fullmatch(bare) or _LEADING_LETTER.match(bare)
        if short:
            return (short.group(1) or short.group(2)).upper()
        keyword = list(_KEYWORD_LETTER.finditer(candidate))
        if keyword:
            return keyword[-1].group(1) or keyword[-1].group(2)
    return None


@register_format("auto")
def auto(text: str) -> str | None:
    for fmt in (correct_answer, last_boxed, answer_line, _last_short_line):
        answer = fmt(text)
        if answer:
            return answer
    return None


def _last_short_line(text: str, max_chars: int = 100) -> str | None:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines and len(lines[-1]) <= max_chars else None


def final_answers(references: list[str]) -> list[str]:
    """References with their final answer added when it ends a worked solution: GSM8K's last line
    `#### 72` (or an `Answer:` line), or MATH's last `\\boxed{...}`. The whole text stays acceptable too."""
    out = list(references)
    for reference in references:
        final = answer_line(reference) or last_boxed(reference)
        if final and final not in out:
            out.append(final)
    return out
