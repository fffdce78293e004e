"""The judge's verdicts read out of its reply: the conclusion and the first step it found wrong.

A reply in the judge format has `<analysis_i>` blocks under `[Visual Elements]` and `[Reasoning]`
headers, each numbered from 1 within its section, then `<conclusion>Correct</conclusion>` or
`<conclusion>Incorrect</conclusion>`.

- `conclusion`: True/False from the last `<conclusion>` block; None when there is none, or it holds
  anything but the one word (markdown emphasis and a final period are forgiven).
- `first_incorrect_step`: the first analysis whose own verdict line says incorrect
  (`Verdict: incorrect`, as verify_steps.txt asks). A judge that writes no verdict lines (the
  seed's prompt did not ask for them) stops at the first wrong step, so for an `Incorrect`
  conclusion its last analysis is that step. None when the judge gave neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONCLUSION = re.compile(r"<conclusion>(.*?)</conclusion>", re.DOTALL | re.IGNORECASE)
_TOKEN = re.compile(
    r"(?P<perception>\[\s*visual\s+elements\s*\])"
    r"|(?P<reasoning>\[\s*reasoning\s*\])"
    r"|<analysis_(?P<num>\d+)>(?P<body>.*?)</analysis_(?P=num)>",
    re.DOTALL | re.IGNORECASE,
)
_VERDICT = re.compile(r"verdict\W{0,4}(correct|incorrect)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Analysis:
    section: str  # "perception" or "reasoning"
    index: int  # 1-based within its section, as the judge numbered it
    verdict: bool | None  # from the analysis's own verdict line, if it wrote one


def parse_conclusion(text: str | None) -> bool | None:
    if not isinstance(text, str):
        return None
    found = _CONCLUSION.findall(text)
    if not found:
        return None
    word = found[-1].strip().strip("*_ \n.").strip().lower()
    return {"correct": True, "incorrect": False}.get(word)


def parse_analyses(text: str, first_section: str = "perception") -> list[Analysis]:
    """Analyses in reply order. Before any header they belong to `first_section`: perception, the
    first section, unless the solution has no perception steps."""
    section, out = first_section, []
    for token in _TOKEN.finditer(text):
        if token.group("perception"):
            section = "perception"
        elif token.group("reasoning"):
            section = "reasoning"
        else:
            verdicts = _VERDICT.findall(token.group("body"))
            verdict = None if not verdicts else verdicts[-1].lower() == "correct"
            out.append(Analysis(section, int(token.group("num")), verdict))
    return out


def first_incorrect(analyses: list[Analysis], conclusion: bool | None) -> Analysis | None:
    flagged = next((a for a in analyses if a.verdict is False), None)
    if flagged is not None:
        return flagged
    if conclusion is False and analyses and all(a.verdict is None for a in analyses):
        return analyses[-1]
    return None


def step_location(found: Analysis, perception_steps: int | None) -> dict:
    """{"section", "index", "step"}: `step` is 0-based over perception then reasoning steps (the
    order of `steps_with_score`), None when the solution's perception count is unknown."""
    if found.section == "perception":
        step = found.index - 1
    else:
        step = None if perception_steps is None else perception_steps + found.index - 1
    return {"section": found.section, "index": found.index, "step": step}


@dataclass(frozen=True)
class Verdict:
    conclusion: bool | None
    first_incorrect_step: dict | None


def parse_verdict(text: str | None, perception_steps: int | None = None) -> Verdict:
    if not isinstance(text, str):
        return Verdict(None, None)
    conclusion = parse_conclusion(text)
    first_section = "reasoning" if perception_steps == 0 else "perception"
    found = first_incorrect(parse_analyses(text, first_section), conclusion)
    return Verdict(conclusion, None if found is None else step_location(found, perception_steps))
