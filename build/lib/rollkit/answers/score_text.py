"""Reading a judge's score out of free text.

Judges answer `7`, `Score: 7/10`, `**8**`, `Score: 6` followed by reasons, and sometimes nothing
usable. An unreadable reply is `None` (the caller keeps the raw text), never a default number that
would quietly rank a candidate.
"""

from __future__ import annotations

import re

MAX_SCORE = 10.0
_NUMBER = r"(-?\d+(?:\.\d+)?)"
_PATTERNS = (
    re.compile(r"score\W{0,6}" + _NUMBER, re.IGNORECASE),  # "Score: 7", "**Score**: 7", "score = 7"
    re.compile(_NUMBER + r"\s*/\s*10\b"),  # "7/10", "7 / 10"
    re.compile(r"^\W*" + _NUMBER + r"\W*(?:\n|$)"),  # a bare number on the first line: "7", "**8**"
)


def parse_judge_score(text: str | None) -> float | None:
    if not text:
        return None
    for pattern in _PATTERNS:
        match = pattern.search(text.strip())
        if match:
            value = float(match.group(1))
            return value if 0.0 <= value <= MAX_SCORE else None
    return None
