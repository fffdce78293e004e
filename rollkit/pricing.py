"""List prices, for dry runs and reports: what a run would cost before it is paid for."""

from __future__ import annotations

# Dollars per 1M tokens (prompt, completion), list prices; override with --price-in/--price-out.
PRICES = {
    "gpt-4.1": (2.00, 8.00), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60), "o4-mini": (1.10, 4.40), "o3": (2.00, 8.00),
}


def model_price(model: str) -> tuple[float | None, float | None]:
    """List price of the longest known name the model or deployment starts with (`gpt-4.1-nano-3`)."""
    names = [name for name in PRICES if model.startswith(name)]
    return PRICES[max(names, key=len)] if names else (None, None)
