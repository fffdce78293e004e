"""Ground truth for the synthetic policy: which answer counts as right for a question.

`truth_for_question(text)` is the answer from `--answer-key` when the question is listed there,
otherwise `str(int(md5(question).hexdigest()[:8], 16) % 10)`, so tests can compute it with no file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from rollkit.content.inputs import iter_inputs

_QUESTION_BLOCK = re.compile(r"<question>(.*?)</question>", re.DOTALL | re.IGNORECASE)
_IMAGE_TOKEN = re.compile(r"<image>", re.IGNORECASE)


def normalize_question(text: str) -> str:
    """The lookup form of a question: `<image>` placeholders dropped, whitespace collapsed."""
    return " ".join(_IMAGE_TOKEN.sub(" ", text).split())


def question_in(prompt_text: str, last_user_text: str) -> str:
    """The question of a prompt: the last `<question>` block if any, else the last user message."""
    blocks = _QUESTION_BLOCK.findall(prompt_text)
    return (blocks[-1] if blocks else last_user_text).strip()


def hashed_truth(question: str) -> str:
    return str(int(hashlib.md5(question.encode("utf-8")).hexdigest()[:8], 16) % 10)


def truth_for_question(text: str, answer_key: dict[str, str] | None = None) -> str:
    """The right answer to `text` (a bare question, as found by `question_in`)."""
    if answer_key:
        # a multiple-choice prompt lists the options under the question the key knows
        for question in (text, text.split("\n\nOptions:\n")[0]):
            found = answer_key.get(normalize_question(question))
            if found is not None:
                return found
    return hashed_truth(text.strip())


def load_answer_key(path: Path) -> dict[str, str]:
    """Read `question -> answer` from any input rollkit reads (JSON/JSONL, CSV, Parquet, a dataset
    folder: `rollkit.content.inputs`), so the emulator answers from the dataset's own answers.

    Records are either `{"question", "answer"}` (an `answer` list counts by its first item; a GSM8K
    answer by what follows its `####`) or `conversations` (OpenAI `messages` are read as such).
    """
    records = (item.record for item in iter_inputs(path) if item.record is not None)
    key: dict[str, str] = {}
    for record in records:
        pair = _question_and_answer(record) if isinstance(record, dict) else None
        if pair is not None:
            key[normalize_question(pair[0])] = pair[1]
    return key


def _question_and_answer(record: dict[str, Any]) -> tuple[str, str] | None:
    if isinstance(record.get("conversations"), list):
        question = None
        for turn in record["conversations"]:
            if not isinstance(turn, dict):
                continue
            if turn.get("from") == "human" and question is None:
                question = str(turn.get("value", ""))
            elif turn.get("from") == "gpt" and question is not None:
                return question, str(turn.get("value", "")).strip()
        return None
    if "question" in record and "answer" in record:
        answer = record["answer"]
        if isinstance(answer, list):
            if not answer:
                return None
            answer = answer[0]
        return str(record["question"]), str(answer).rsplit("\n####", 1)[-1].strip()
    return None


def boxed_answer(text: str) -> str | None:
    """Content of the last `\\boxed{...}` in `text` (nested braces allowed), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 1, start + len("\\boxed{")
    begin = i
    while i < len(text):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[begin:i].strip()
        i += 1
    return None


def normalize_answer(text: str) -> str:
    """Compare form of a final answer: lower case, no surrounding `$`, spaces or final period."""
    return text.strip().strip("$").strip().rstrip(".").strip().lower()


def wrong_answer(truth: str, pick: int) -> str:
    """A deterministic integer different from `truth` (`pick` is any random integer)."""
    try:
        base = int(truth.strip())
    except ValueError:
        return str(pick % 10)
    offsets = [1, 2, 3, -1, -2]
    candidate = base + offsets[pick % len(offsets)]
    return str(candidate if candidate >= 0 else base + 1 + pick % 3)
