"""Structured solutions: split a rollout into steps, render it back, build step prefixes.

A rollout looks like::

    [Visual Elements]
    <step_1>
    ...
    </step_1>

    [Reasoning]
    <step_1>
    ...
    </step_1>

    <correct_answer>
    $\\boxed{2}$
    </correct_answer>

Parsing rules (``parse_solution``), chosen so that a solution is either read exactly or refused:

- CRLF is read as LF; one markdown code fence around the whole text is removed.
- Headers are ``[Visual Elements]`` and ``[Reasoning]`` (any case or inner spacing). Text outside
  step tags and the answer (preambles, stray words, markdown) is ignored.
- Steps under ``[Visual Elements]`` are perception, under ``[Reasoning]`` reasoning. Steps before any
  header are perception when a ``[Reasoning]`` header follows (the model dropped the first header),
  and reasoning when there is no header at all (nothing says they are perception).
- Within a section, steps must be numbered 1, 2, 3, ... Duplicate headers, ``[Reasoning]`` before
  ``[Visual Elements]``, unclosed, nested or mismatched step tags, empty steps, no steps, steps after
  the answer, no closed ``<correct_answer>`` or more than one of them: ``parsed=False`` with a reason.
- Step texts and the answer are stripped; the answer keeps its raw form (``$\\boxed{2}$``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PERCEPTION_HEADER = "[Visual Elements]"
REASONING_HEADER = "[Reasoning]"

# One scan over the text: a match is a header, a whole step or a whole answer. Consuming whole
# steps means a header or answer tag quoted inside a step's text is never taken for structure.
_TOKEN = re.compile(
    r"(?P<perception>\[\s*visual\s+elements\s*\])"
    r"|(?P<reasoning>\[\s*reasoning\s*\])"
    r"|<\s*step_(?P<num>\d+)\s*>(?P<step>.*?)<\s*/\s*step_(?P=num)\s*>"
    r"|<\s*correct_answer\s*>(?P<answer>.*?)<\s*/\s*correct_answer\s*>",
    re.IGNORECASE | re.DOTALL,
)
_STRAY_TAG = re.compile(r"<\s*/?\s*(step_\d+|correct_answer)\s*>", re.IGNORECASE)
_FENCE = re.compile(r"\A```[^\n]*\n(?P<body>.*?)\n?```\s*\Z", re.DOTALL)


@dataclass(frozen=True)
class Solution:
    perception_steps: list[str] = field(default_factory=list)
    reasoning_steps: list[str] = field(default_factory=list)
    answer: str | None = None
    parsed: bool = False
    reason: str | None = None
    # The text as read (CRLF as LF, a fence removed) and where each step ends in it, so a prefix
    # can be the model's own bytes (`text_prefix`); not part of what the solution says, so not compared.
    text: str = field(default="", repr=False, compare=False)
    step_ends: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @property
    def steps(self) -> list[str]:
        return [*self.perception_steps, *self.reasoning_steps]


class _Malformed(ValueError):
    pass


def parse_solution(text: str) -> Solution:
    """Read a structured solution; never raises, malformed text gives ``parsed=False``."""
    if not isinstance(text, str) or not text.strip():
        return Solution(reason="empty or not a string")
    read = _unwrap(text)
    ends: list[int] = []
    try:
        sections, answer = _scan(read, ends)
        perception, reasoning = _assign_sections(sections)
    except _Malformed as exc:
        return Solution(reason=str(exc))
    return Solution(perception, reasoning, answer, parsed=True, text=read, step_ends=tuple(ends))


def _unwrap(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    fenced = _FENCE.match(text)
    return fenced.group("body") if fenced else text


def _scan(text: str, ends: list[int]) -> tuple[list[tuple[str | None, list[str]]], str]:
    """Split into (header, steps) sections in text order, plus the answer; `ends` gets the offset
    just past each step (and the newline after it)."""
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    answers: list[str] = []
    last_end = 0
    for token in _TOKEN.finditer(text):
        _check_gap(text[last_end : token.start()])
        last_end = token.end()
        if token.group("perception") or token.group("reasoning"):
            sections.append(("perception" if token.group("perception") else "reasoning", []))
        elif token.group("num") is not None:
            if answers:
                raise _Malformed("step after <correct_answer>")
            sections[-1][1].append(_step_text(token, len(sections[-1][1]) + 1))
            ends.append(token.end() + text.startswith("\n", token.end()))
        else:
            answers.append(token.group("answer").strip())
    _check_gap(text[last_end:])
    if len(answers) != 1:
        raise _Malformed("no closed <correct_answer>" if not answers else "more than one <correct_answer>")
    if not answers[0]:
        raise _Malformed("empty <correct_answer>")
    return sections, answers[0]


def _check_gap(gap: str) -> None:
    # A tag left between matched tokens was opened or closed without its partner.
    stray = _STRAY_TAG.search(gap)
    if stray:
        raise _Malformed(f"unclosed or mismatched tag {stray.group(0)!r}")


def _step_text(token: re.Match[str], expected: int) -> str:
    number = int(token.group("num"))
    if number != expected:
        raise _Malformed(f"step_{number} where step_{expected} was expected")
    body = token.group("step").strip()
    if _STRAY_TAG.search(body):
        raise _Malformed(f"nested tag inside step_{number}")
    if not body:
        raise _Malformed(f"empty step_{number}")
    return body


def _assign_sections(sections: list[tuple[str | None, list[str]]]) -> tuple[list[str], list[str]]:
    headers = [name for name, _ in sections[1:]]
    if len(set(headers)) != len(headers):
        raise _Malformed("a section header appears twice")
    if headers == ["reasoning", "perception"]:
        raise _Malformed("[Reasoning] comes before [Visual Elements]")
    leading = sections[0][1]
    found = dict(sections[1:])
    if leading and "perception" in found:
        raise _Malformed("steps before [Visual Elements]")
    perception = found.get("perception", leading if "reasoning" in found else [])
    reasoning = found.get("reasoning", [] if "reasoning" in found or "perception" in found else leading)
    if not perception and not reasoning:
        raise _Malformed("no steps")
    return perception, reasoning


def render_solution(solution: Solution) -> str:
    """The canonical text of a solution; ``parse_solution`` reads it back unchanged."""
    text = step_prefix(solution, len(solution.steps))
    if solution.answer is not None:
        text += f"\n<correct_answer>\n{solution.answer}\n</correct_answer>"
    return text


def step_prefix(solution: Solution, upto: int) -> str:
    """Steps ``0 .. upto-1`` (combined index) in the canonical format, for a model to continue.

    The prefix stops right after the last included step's closing tag and its newline: the step
    being scored is complete, and the model's next move is its own choice (another step, the next
    section header or the answer), so continuations are not steered by a half-written line.
    ``upto=0`` gives the empty string, i.e. a continuation from scratch.
    """
    if not solution.parsed:
        raise ValueError(f"cannot build a prefix of an unparsed solution ({solution.reason})")
    if not 0 <= upto <= len(solution.steps):
        raise ValueError(f"upto={upto} outside 0..{len(solution.steps)}")
    n_perception = len(solution.perception_steps)
    parts = []
    if upto and n_perception:
        parts.append(_render_section(PERCEPTION_HEADER, solution.perception_steps[:upto]))
    if upto > n_perception:
        parts.append(_render_section(REASONING_HEADER, solution.reasoning_steps[: upto - n_perception]))
    return "\n".join(parts)


def _render_section(header: str, steps: list[str]) -> str:
    body = "".join(f"<step_{i}>\n{step}\n</step_{i}>\n" for i, step in enumerate(steps, 1))
    return f"{header}\n{body}"


def text_prefix(solution: Solution, upto: int) -> str:
    """Steps ``0 .. upto-1`` as the model wrote them: the text read up to just past the closing tag
    of the last included step (and its newline). Continuing from the model's own bytes keeps every
    probe of a rollout a byte prefix of the next, which servers that cache prompt prefixes reuse.
    Falls back to `step_prefix` for a solution built by hand."""
    if not solution.step_ends:
        return step_prefix(solution, upto)
    if not 0 <= upto <= len(solution.steps):
        raise ValueError(f"upto={upto} outside 0..{len(solution.steps)}")
    return solution.text[: solution.step_ends[upto - 1]] if upto else ""
