"""Your own answer checker, without editing rollkit: a Python function named on the command line
(`--answer-checker mypkg.checks:same_money`, or `--scoring-mode mypkg.checks:same_money`) or
published by an installed package under the entry-point group `rollkit.answer_checkers`:

    [project.entry-points."rollkit.answer_checkers"]
    same_money = "mypkg.checks:same_money"

The function takes `(prediction, reference)`, both non-empty stripped strings, and returns whether the
prediction is right (a bool, or 0/1). It becomes a scoring mode under the name it was given, so it
combines with the built-in modes (`--scoring-mode math_score,mypkg.checks:same_money`: right when any
mode says so) and is recorded in the run's `.config.json` like them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "rollkit.answer_checkers"


class CheckerError(ValueError):
    """A checker that cannot be loaded: the message says what was looked for and where."""


def _plugin_target(name: str) -> str | None:
    """`module:function` for `name`: itself when it has that shape, else an installed entry point's."""
    if ":" in name:
        return name
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    return found[0].value if found else None


def load_checker(name: str) -> Callable[[str, str], object] | None:
    """The function `name` stands for, or None when it names no plugin (it may be a built-in mode)."""
    target = _plugin_target(name)
    if target is None:
        return None
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise CheckerError(f"answer checker {name!r}: cannot import {module_name!r} ({error})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise CheckerError(f"answer checker {name!r}: {module_name} has no function {attribute!r}")
    return function


def as_mode(function: Callable[[str, str], object]) -> Callable[[str, str], int]:
    return lambda pred, gt: int(bool(function(pred, gt)))
