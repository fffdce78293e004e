"""Wording of the synthetic step solutions, and reading back which steps are wrong.

Ground truth lives in the wording, because the text must look exactly like the fixture rollouts
(no hidden markers):

* every *good* step contains the phrase ``consistent with``;
* every *bad* step (the first wrong step and all steps after it) contains ``which suggests``.

No good template contains ``which suggests`` (checked by the tests), and the fixture rollouts never
use it, so `is_bad_step` reads the ground truth back from any emulator output.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

GOOD_PHRASE = "consistent with"
BAD_PHRASE = "which suggests"

PERCEPTION_GOOD = (
    "The image shows {color} {obj} near the {place}, consistent with an ordinary {scene} scene.",
    "The {obj} in the foreground are sharp and fully visible, consistent with their size next to the {place}.",
    "The {place} fills the background and the light is even, consistent with a photo taken in daylight.",
    "Each of the {obj} stands apart from the others, consistent with a clear view of the {scene} scene.",
)
PERCEPTION_BAD = (
    "Part of the {place} is blurred, which suggests more {obj} may be hidden behind it.",
    "One {color} shape at the edge of the frame looks like another of the {obj}, which suggests counting it too.",
    "A reflection on the {place} repeats some of the {obj}, which suggests there are more of them.",
)
REASONING_GOOD = (
    "The question asks about the {obj}; counting only what is clearly visible is consistent with the steps above.",
    "Every one of the {obj} is counted exactly once, consistent with the perception steps.",
    "Nothing else in the {scene} scene changes the count, consistent with the visual elements listed.",
    "Objects at the edge of the frame are only counted when fully visible, consistent with the question.",
)
REASONING_BAD = (
    "The blurred region probably hides more {obj}, which suggests adding to the visible count.",
    "The ambiguous {color} shape is taken as one more of the {obj}, which suggests a larger total.",
    "The {place} may cover part of the scene, which suggests the visible {obj} are not all of them.",
)
# Realism: extra sentences that make step lengths vary; neutral, so neither wording marker appears.
EXTRA_SENTENCES = (
    "This detail is small but it is visible.",
    "The rest of the picture does not change this.",
    "Looking again at the same region gives the same reading.",
    "The lighting makes this easy to check.",
    "Nothing in the question points elsewhere.",
)
FINAL_GOOD = "Putting the observations together, the answer consistent with the image is {answer}."
FINAL_BAD = "Going with the earlier estimate, which suggests {answer}, the final answer is {answer}."

# Each solution keeps one scene, so its steps talk about the same things.
_SCENES = {
    "street": (("buses", "cars", "people"), ("building", "fence", "crossing")),
    "park": (("people", "dogs", "birds"), ("tree line", "fence", "bench")),
    "kitchen": (("sinks", "chairs", "cups"), ("counter", "window", "cabinet")),
    "harbor": (("boats", "birds", "people"), ("pier", "water", "dock")),
    "stadium": (("players", "people", "flags"), ("grandstand", "fence", "field")),
}
_COLORS = ("red", "white", "blue", "dark", "yellow", "green")


def scene_slots(rng: random.Random) -> dict[str, str]:
    """The nouns one solution talks about, drawn once per solution."""
    scene = rng.choice(sorted(_SCENES))
    objects, places = _SCENES[scene]
    return {"scene": scene, "obj": rng.choice(objects), "place": rng.choice(places), "color": rng.choice(_COLORS)}


_STEP = re.compile(r"<step_(\d+)>(.*?)</step_\1>", re.DOTALL)
_REASONING_HEADER = re.compile(r"\[Reasoning\]")


def is_bad_step(text: str) -> bool:
    """True when a step is wrong by the emulator's construction (it carries the bad wording)."""
    return BAD_PHRASE in text.lower()


@dataclass(frozen=True)
class SolutionShape:
    """How long solutions are, and whether a wrong step can still be recovered from."""

    section_steps: tuple[int, int] = (2, 4)  # steps a section gets, at least
    extra_sentences: int = 0  # each step gets 0..this many extra sentences
    recover: float = 0.0  # after b bad steps, a continuation is right with p_right * recover ** b


DEFAULT_SHAPE = SolutionShape()
REALISM_SHAPE = SolutionShape(section_steps=(4, 6), extra_sentences=2, recover=0.02)


@dataclass(frozen=True)
class ParsedSteps:
    perception: list[str]
    reasoning: list[str]
    in_reasoning: bool  # the `[Reasoning]` header was reached

    @property
    def combined(self) -> list[str]:
        return self.perception + self.reasoning


def parse_steps(solution_text: str) -> ParsedSteps:
    """Closed `<step_i>` blocks, split at the `[Reasoning]` header."""
    header = _REASONING_HEADER.search(solution_text)
    cut = header.start() if header else len(solution_text)
    perception, reasoning = [], []
    for match in _STEP.finditer(solution_text):
        (perception if match.start() < cut else reasoning).append(match.group(2).strip())
    return ParsedSteps(perception, reasoning, header is not None)


def first_wrong_step(solution_text: str) -> int | None:
    """0-based index over perception + reasoning steps of the first bad step, or None if all are good."""
    for index, step in enumerate(parse_steps(solution_text).combined):
        if is_bad_step(step):
            return index
    return None


class StepWriter:
    """Writes the steps of one solution: one scene, and no sentence twice until all were used."""

    def __init__(self, rng: random.Random, extra_sentences: int = 0):
        self.rng = rng
        self.slots = scene_slots(rng)
        self.extra_sentences = extra_sentences
        self._unused: dict[tuple[str, ...], list[str]] = {}

    def step(self, reasoning: bool, bad: bool, final_answer: str | None = None) -> str:
        """One step sentence; `final_answer` makes it the concluding reasoning step."""
        if final_answer is not None:
            template = FINAL_BAD if bad else FINAL_GOOD
        elif reasoning:
            template = self._draw(REASONING_BAD if bad else REASONING_GOOD)
        else:
            template = self._draw(PERCEPTION_BAD if bad else PERCEPTION_GOOD)
        text = template.format(answer=final_answer, **self.slots)
        if self.extra_sentences and final_answer is None:
            extra = self.rng.sample(EXTRA_SENTENCES, self.rng.randint(0, self.extra_sentences))
            text = " ".join([text, *extra])
        return text

    def _draw(self, templates: tuple[str, ...]) -> str:
        unused = self._unused.get(templates)
        if not unused:
            unused = self._unused[templates] = list(templates)
            self.rng.shuffle(unused)
        return unused.pop()


def render_step(number: int, text: str) -> str:
    return f"<step_{number}>\n{text}\n</step_{number}>\n"


def render_answer(answer: str) -> str:
    return f"<correct_answer>\n$\\boxed{{{answer}}}$\n</correct_answer>"
