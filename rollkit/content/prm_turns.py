"""The conversation a generative process reward model is trained on and asked: VisualPRM's.

A system turn (prompts/visualprm_system.txt, or --prompt-file) says the model grades steps; the
first user turn holds the image(s), the question and step 1; every assistant turn is one step
token (good or bad, "+"/"-" by default) and every user turn after one holds the next step.
`export --format visualprm` writes it as training rows; `rollkit prm-score` asks it of a served
PRM (stages/prm_conversation), so the PRM is asked exactly what it learned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rollkit.prompts import fill, load_template, placeholders

SYSTEM_PROMPT = "visualprm_system"
IMAGE_TAG = "<image>"  # where the seed's collators put the row's image
FIRST_TURN = "visualprm_first_turn"


class PromptFileError(ValueError):
    """A --prompt-file that cannot be the system prompt: bad usage."""


@dataclass(frozen=True)
class StepTokens:
    good: str = "+"
    bad: str = "-"

    @classmethod
    def parse(cls, text: str) -> StepTokens:
        """`"+,-"` or `"<+>,<->"`: two different tokens without spaces; ValueError otherwise."""
        parts = text.split(",")
        if len(parts) != 2 or not all(parts) or parts[0] == parts[1] or any(re.search(r"\s", p) for p in parts):
            raise ValueError(f"--step-tokens wants GOOD,BAD: two different tokens without spaces; got {text!r}")
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.good},{self.bad}"

    def clash(self, steps: list[str]) -> bool:
        """A step holds a step token as a word of its own (`4 + 9`): a collator that unmasks every
        such token would train on it too."""
        words = {self.good, self.bad}
        return any((self.good in step or self.bad in step) and not words.isdisjoint(step.split()) for step in steps)


def system_prompt(path: str | Path | None, tokens: StepTokens) -> str:
    """The built-in system prompt, or --prompt-file's; `{{good}}`/`{{bad}}` name the step tokens."""
    if path is None:
        text = load_template(SYSTEM_PROMPT)
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptFileError(f"--prompt-file {path}: cannot read it ({exc})") from exc
        extra = placeholders(text) - {"good", "bad"}
        if extra:
            raise PromptFileError(f"--prompt-file {path}: only {{{{good}}}} and {{{{bad}}}} can be filled; "
                                  f"it has {sorted(extra)}")
    return fill(text, str(path or SYSTEM_PROMPT), good=tokens.good, bad=tokens.bad).strip()


def turns(question: str, steps: list[str], marks: list[bool], tokens: StepTokens) -> list[tuple[str, str]]:
    """(role, text) pairs after the system turn; the first user text still lacks its image tags."""
    first = fill(load_template(FIRST_TURN), FIRST_TURN, question=question, step=steps[0]).strip()
    turns = []
    for i, (step, good) in enumerate(zip(steps, marks, strict=True)):
        turns.append(("user", first if i == 0 else step))
        turns.append(("assistant", tokens.good if good else tokens.bad))
    return turns


def messages_row(question: str, steps: list[str], marks: list[bool], images: list[str], system: str,
                 tokens: StepTokens) -> dict:
    messages = [{"role": "system", "content": [{"type": "text", "text": system}]}]
    for n, (role, text) in enumerate(turns(question, steps, marks, tokens)):
        parts = [{"type": "image", "text": IMAGE_TAG} for _ in images] if n == 0 else []
        messages.append({"role": role, "content": [*parts, {"type": "text", "text": text}]})
    return {"messages": messages, "image": images[0] if images else None, "images": images}
