"""Quantities written the way people write them: `$34.00`, `1,200 km`, `12.5%`, `34 dollars`.

Word problems (GSM8K, MATH's applied items) give the number while models add the currency, the unit or
the percent sign, so `math_score` compares such answers by value before asking math_verify. Only a
single number with at most a currency sign before it and one unit word or symbol after it is read as a
quantity; anything else (an expression, two numbers, a ratio) is left to math_verify.
"""

from __future__ import annotations

import re

_QUANTITY = re.compile(
    r"""^\s*
    (?P<sign>[-+−])?\s*
    (?P<currency>[$€£¥₹]|usd|eur|gbp|rs\.?)?\s*
    (?P<number>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)\s*
    (?P<unit>%|percent|per\s*cent|[a-zA-Z°][a-zA-Z°²³/.]{0,15})?
    \s*[.!]?\s*$""",
    re.VERBOSE | re.IGNORECASE,
)
_TOLERANCE = 1e-9


def quantity(text: str) -> tuple[float, str] | None:
    """(value, unit) of a single written quantity, the unit lower-cased ('' for none), else None."""
    match = _QUANTITY.match(text.replace("\\$", "$").replace("\\%", "%"))
    if not match:
        return None
    value = float(match["number"].replace(",", ""))
    if match["sign"] in ("-", "−"):
        value = -value
    unit = " ".join((match["unit"] or "").lower().split())
    return value, "%" if unit in ("percent", "per cent") else unit


def same_quantity(pred: str, gt: str) -> bool | None:
    """True or False when both sides are quantities; None when either is not (let another check decide).

    A unit on one side only is the usual case (`$34.00` against `34`, `5 km` against `5`) and counts;
    two different units do not (`5 km` is not `5 m`)."""
    a, b = quantity(pred), quantity(gt)
    if a is None or b is None:
        return None
    (value_a, unit_a), (value_b, unit_b) = a, b
    if unit_a and unit_b and unit_a.rstrip("s.") != unit_b.rstrip("s."):
        return False
    return abs(value_a - value_b) <= _TOLERANCE * max(1.0, abs(value_b))
