"""Judge scores read from a judge's free text: a number on the 0-10 scale, or None."""

from __future__ import annotations

import pytest

from rollkit.answers.score_text import parse_judge_score


@pytest.mark.parametrize("text,score", [
    ("7", 7.0), ("Score: 7/10", 7.0), ("**8**", 8.0), ("Score: 6\nThe answer is mostly right.", 6.0),
    ("score = 9.5 because", 9.5), ("I give it 4/10.", 4.0), ("**Score**: 3", 3.0),
    ("I cannot rate this.", None), ("", None), (None, None), ("Score: 42", None),
])
def test_judge_scores_parse_or_are_null(text, score):
    assert parse_judge_score(text) == score
