"""Text normalisation shared by the scoring modes: the official VQA rules, numbers and number words."""

from __future__ import annotations

import itertools
import re

# Punctuation the official VQA evaluation removes; apostrophes, colons and periods are kept here.
_VQA_PUNCT = ';/[]"{}()=+\\_-><@`,?!'
_VQA_DIGIT_COMMA = re.compile(r"\d,\d")
# The official script meant "a period not between digits" but its regex, as run, strips every
# period not followed by a digit ("2." -> "2", "2.5" kept). Published scores use that behaviour.
_VQA_PERIOD = re.compile(r"\.(?!\d)")
_VQA_NUMBERS = dict(
    zip(
        "none zero one two three four five six seven eight nine ten".split(),
        "0 0 1 2 3 4 5 6 7 8 9 10".split(),
        strict=True,
    )
)
_VQA_ARTICLES = frozenset({"a", "an", "the"})
_CONTRACTIONS = (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't "
    "haven't he'd he'd've he's how'd how'll how's i'd've i'm i've isn't it'd it'd've it'll ma'am "
    "mightn't mightn't've might've mustn't must've needn't not've o'clock oughtn't shan't she'd've "
    "she's should've shouldn't shouldn't've somebody'd've somebody'll somebody's someone'd "
    "someone'd've someone'll someone's something'd something'd've something'll that's there'd "
    "there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't we'd've we've "
    "weren't what'll what're what's what've when's where'd where's where've who'd who'd've who'll "
    "who's who've why'll why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've "
    "you'd you'd've you'll you're you've"
).split()


def _contraction_map() -> dict[str, str]:
    # Every spelling with some apostrophes dropped ("dont", "couldnt've") maps to the full form.
    table = {}
    for word in _CONTRACTIONS:
        marks = [i for i, char in enumerate(word) if char == "'"]
        for k in range(1, len(marks) + 1):
            for dropped in itertools.combinations(marks, k):
                table["".join(c for i, c in enumerate(word) if i not in dropped)] = word
    return table


_VQA_CONTRACTIONS = _contraction_map()


def vqa_normalize(text: str) -> str:
    """The official VQA answer normalisation: punctuation, periods, number words, articles, contractions."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    # Official rule: a mark touching a space, or any mark in text with a digit-comma, is deleted
    # ("1,000" -> "1000"); elsewhere it becomes a space ("red/white" -> "red white").
    delete = bool(_VQA_DIGIT_COMMA.search(text))
    for mark in _VQA_PUNCT:
        gone = delete or f"{mark} " in text or f" {mark}" in text
        text = text.replace(mark, "" if gone else " ")
    text = _VQA_PERIOD.sub("", text)
    words = [_VQA_NUMBERS.get(word, word) for word in text.lower().split()]
    return " ".join(_VQA_CONTRACTIONS.get(word, word) for word in words if word not in _VQA_ARTICLES)


_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def _to_float(text: str) -> float | None:
    text = _THOUSANDS_COMMA.sub("", text.strip()).removesuffix("%").strip()
    return float(text) if _NUMBER.fullmatch(text) else None


_SMALL_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def _number_word_table() -> dict[str, int]:
    # 0-99 covers the counts VQA-style questions ask for; larger numbers come back as digits.
    table = {word: value for value, word in enumerate(_SMALL_NUMBERS)}
    for tens_value, tens in enumerate(_TENS, 2):
        table[tens] = tens_value * 10
        for unit in range(1, 10):
            for joiner in (" ", "-"):
                table[f"{tens}{joiner}{_SMALL_NUMBERS[unit]}"] = tens_value * 10 + unit
    return table


_NUMBER_WORDS = _number_word_table()
# Thousands may be grouped by commas or spaces; "1 2" is not twelve.
_GROUPED_DIGITS = re.compile(r"\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d+")


def integer_text(text: str) -> str | None:
    """Canonical integer text: ``" 1,000 "`` -> ``"1000"``, ``"minus three"`` -> ``"-3"``; else None.

    Leading zeros are kept ("07" on a jersey is not "7"); callers that compare values use ``int()``.
    """
    text = " ".join(text.strip().lower().split())
    sign = ""
    for prefix, prefix_sign in (("minus ", "-"), ("negative ", "-"), ("-", "-"), ("+", "")):
        if text.startswith(prefix):
            sign, text = prefix_sign, text[len(prefix) :].strip()
            break
    if text in _NUMBER_WORDS:
        digits = str(_NUMBER_WORDS[text])
    elif _GROUPED_DIGITS.fullmatch(text):
        digits = text.replace(" ", "").replace(",", "")
    else:
        return None
    return ("" if digits.strip("0") == "" else sign) + digits
