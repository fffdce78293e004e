"""Which prompt templates a rollout run uses, and what its records say about them.

The bundled templates are `rollkit/prompts/rollout.txt` and `rollout_continue.txt`; a run may
replace either with `--prompt-file NAME=PATH`. Records name each template by source and sha256 and
keep the rendered rollout text, so a training set can say exactly what it was made with.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import TYPE_CHECKING

from rollkit.content.messages import question_text, strip_image_tokens
from rollkit.prompts import fill, load_template

if TYPE_CHECKING:
    from rollkit.stages.montecarlo import RolloutParams

TEMPLATE_NAMES = ("rollout", "rollout_continue")


def template(params: RolloutParams, name: str) -> tuple[str, str]:
    """(text, source) of template `name`: the user's --prompt-file, else the bundled file."""
    given = next(((text, origin) for key, text, origin in params.templates if key == name), None)
    return given or (load_template(name), f"rollkit/prompts/{name}.txt")


@cache
def templates_used(params: RolloutParams) -> dict:
    """What an output records of its prompts: each template's source and sha256, so a training set
    can name the exact text it was made with (the rollout's rendered text is kept as well)."""
    used = {}
    for name in TEMPLATE_NAMES:
        text, origin = template(params, name)
        used[name] = {"source": origin, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    return used


def rollout_prompt(record: dict, params: RolloutParams) -> str:
    question = strip_image_tokens(question_text(record))
    return fill(template(params, "rollout")[0], "rollout", question=question,
                       max_perception_steps=str(params.max_perception_steps),
                       max_reasoning_steps=str(params.max_reasoning_steps))
