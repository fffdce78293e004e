"""What a generative PRM is asked: the solutions of a record, and their conversations.

The conversation is the one `--format visualprm` exports (content/prm_turns.py's `messages_row`:
the same system prompt file, first-turn template, step tokens and image placement), with the good
token in every assistant turn, so a PRM trained on the export is asked what it learned. The
export's `{"type": "image"}` placeholders become the record's images (data URLs), or are left out
with `--text-only`; a turn holding only text is sent as a plain string, as chat templates of text
models expect.

Solutions of a record:
- a rollout (`steps_with_score`, a ProcessBench `steps` list, or a `response` in the step format):
  one solution;
- a record of N candidates (`generated_answers`): one solution each, split into steps by the
  project's step parser, or by `--step-split` (a regex) for free text.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from rollkit.content.prm_turns import StepTokens, messages_row
from rollkit.content.rollouts import judge_question
from rollkit.content.steps import parse_solution
from rollkit.store.digests import canonical_json


class NoSteps(ValueError):
    """A solution that splits into no steps: bad input, named by file and line."""


@dataclass(frozen=True)
class Solutions:
    kind: str  # "rollout" or "candidates"
    steps: list[list[str]]  # one list of step texts per solution


def split_steps(text: str, step_split: re.Pattern[str] | None) -> list[str]:
    """Steps of a free-text solution: the step parser's, or the parts between `step_split` matches."""
    if step_split is not None:
        return [part.strip() for part in step_split.split(text) if part and part.strip()]
    solution = parse_solution(text)
    return solution.steps if solution.parsed else []


def record_solutions(record: dict, step_split: re.Pattern[str] | None = None) -> Solutions:
    """The solutions of a record; NoSteps names the one without steps."""
    answers = record.get("generated_answers")
    if isinstance(answers, list):
        steps = [split_steps(str(a), step_split) for a in answers]
        empty = [i for i, s in enumerate(steps) if not s]
        if empty:
            raise NoSteps(f"candidates {empty} of generated_answers have no steps (not in the step format; "
                          "give --step-split REGEX to split free text)")
        if not steps:
            raise NoSteps("generated_answers is empty")
        return Solutions("candidates", steps)
    steps = [str(s.get("step", "")) for s in record.get("steps_with_score") or [] if isinstance(s, dict)]
    if not steps and _str_list(record.get("steps")):  # ProcessBench's rows (with a `question` added)
        steps = list(record["steps"])
    if not steps and isinstance(record.get("response"), str):
        steps = split_steps(record["response"], step_split)
    if not steps:
        raise NoSteps("the solution has no steps (no steps_with_score, and no response in the step format"
                      "; give --step-split REGEX to split free text)")
    return Solutions("rollout", [steps])


def _str_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def prm_record_key(record: dict, entry_id: str) -> str:
    """A rollout's own id; else the entry id (StageRunner's, in the output's id version) and a digest
    of what is scored, so every rollout of one question is its own record."""
    if isinstance(record.get("rollout_id"), str) and record["rollout_id"]:
        return record["rollout_id"]
    scored = record.get("generated_answers", record.get("response", record.get("steps_with_score")))
    return f"{entry_id}:{hashlib.md5(canonical_json(scored)).hexdigest()[:12]}"


def conversation(record: dict, steps: list[str], system: str, tokens: StepTokens, images: list[dict],
                 last: str | None = None) -> list[dict]:
    """Chat messages for `steps`, every assistant turn the good token; `last` replaces the final
    assistant turn's token, or "" drops that turn (a per-step prefix asks the model for it)."""
    placeholders = ["image"] * len(images)
    row = messages_row(judge_question(record), steps, [True] * len(steps), placeholders, system, tokens)
    messages = []
    for message in row["messages"]:
        pending = list(images)
        parts = []
        for part in message["content"]:
            if part["type"] == "image":
                parts.append(pending.pop(0))
            else:
                parts.append(part)
        only_text = len(parts) == 1 and parts[0]["type"] == "text"
        messages.append({"role": message["role"], "content": parts[0]["text"] if only_text else parts})
    if last == "":
        return messages[:-1]
    if last is not None:
        messages[-1] = {"role": "assistant", "content": last}
    return messages
