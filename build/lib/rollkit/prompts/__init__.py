"""Prompt templates: text files in this folder, filled with `render`.

Placeholders are `{{name}}`; they are replaced in one pass, so text inside a value (LaTeX braces,
a question that itself contains `{{x}}`) is never substituted again.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_FOLDER = Path(__file__).parent
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@lru_cache(maxsize=32)
def load_template(name: str) -> str:
    return (_FOLDER / f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **values: str) -> str:
    return fill(load_template(name), name, **values)


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def fill(template: str, name: str, **values: str) -> str:
    """A template's text with its placeholders replaced (`name` only names it in errors)."""
    missing = placeholders(template) - set(values)
    if missing:
        raise KeyError(f"template {name} needs {sorted(missing)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
