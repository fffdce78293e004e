"""Which prompt templates a rollout run uses, and what its records say about them.

The bundled templates are `rollkit/prompts/rollout.txt` (a question with images) and
`rollout_text.txt` (a question without any: no observation steps to ask for), and
`rollout_continue.txt`; a run may replace them with `--prompt-file NAME=PATH`. Records name each
template by source and sha256 and keep the rendered rollout text, so a training set can say exactly
what it was made with.

Placeholders: `{{question}}` (with the options under it, unless the template places `{{options}}`
itself), `{{options}}` (`A. text` lines), `{{max_perception_steps}}`, `{{max_reasoning_steps}}`, and
any other `{{name}}` is filled from the record's field `name`. A record without a field its template
needs is a RecordError (`bad_input`); the first record of each input is checked before anything is sent.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import TYPE_CHECKING

from rollkit.content.inputs import IMAGE_FIELDS, RecordError, question_text
from rollkit.content.messages import options_text, prompt_question, strip_image_tokens
from rollkit.prompts import fill, load_template, placeholders

if TYPE_CHECKING:
    from rollkit.stages.montecarlo import RolloutParams

TEMPLATE_NAMES = ("rollout", "rollout_text", "rollout_continue")
BUILT_IN = {"question", "max_perception_steps", "max_reasoning_steps"}


def template(params: RolloutParams, name: str) -> tuple[str, str]:
    """(text, source) of template `name`: the user's --prompt-file, else the bundled file. A
    `--prompt-file rollout=...` alone serves text-only questions too."""
    given = {key: (text, origin) for key, text, origin in params.templates}
    if name == "rollout_text" and name not in given and "rollout" in given:
        return given["rollout"]
    return given.get(name) or (load_template(name), f"rollkit/prompts/{name}.txt")


def record_fields(params: RolloutParams) -> tuple[str, ...]:
    """The record fields the rollout templates fill from (`options` included)."""
    names = set()
    for name in ("rollout", "rollout_text"):
        names |= placeholders(template(params, name)[0]) - BUILT_IN
    return tuple(sorted(names))


@cache
def templates_used(params: RolloutParams) -> dict:
    """What an output records of its prompts: each template's source and sha256, so a training set
    can name the exact text it was made with (the rollout's rendered text is kept as well)."""
    used = {}
    for name in TEMPLATE_NAMES:
        text, origin = template(params, name)
        used[name] = {"source": origin, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
    return used


def has_images(record: dict) -> bool:
    return any(record.get(name) for name in IMAGE_FIELDS)


def rollout_prompt(record: dict, params: RolloutParams) -> str:
    name = "rollout" if has_images(record) else "rollout_text"
    text = template(params, name)[0]
    wanted = placeholders(text)
    values = {"max_perception_steps": str(params.max_perception_steps),
              "max_reasoning_steps": str(params.max_reasoning_steps)}
    if "options" in wanted:
        values["options"] = options_text(record)
        values["question"] = strip_image_tokens(question_text(record))
    else:
        values["question"] = strip_image_tokens(prompt_question(record))
    for field in wanted - BUILT_IN:
        value = record.get(field)
        if field != "options" and isinstance(value, str | int | float) and not isinstance(value, bool):
            values[field] = str(value)
    missing = sorted(f for f in wanted - BUILT_IN if not values.get(f))
    if missing:
        raise RecordError(f"the {name} template uses {', '.join('{{' + f + '}}' for f in missing)} "
                          f"but the record has no such field")
    return fill(text, name, **values)
