"""List prices, for dry runs and reports: what a run would cost before it is paid for."""

from __future__ import annotations

from functools import lru_cache

# Dollars per 1M tokens (prompt, completion), list prices; override with --price-in/--price-out.
PRICES = {
    "gpt-4.1": (2.00, 8.00), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00), "gpt-4o-mini": (0.15, 0.60), "o4-mini": (1.10, 4.40), "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40), "o1": (15.00, 60.00), "gpt-5": (1.25, 10.00), "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
}


@lru_cache(maxsize=256)  # asked for every reply, to price its usage
def model_price(model: str) -> tuple[float | None, float | None]:
    """List price of the longest known name the model or deployment starts with (`gpt-4.1-nano-3`)."""
    names = [name for name in PRICES if model.startswith(name)]
    return PRICES[max(names, key=len)] if names else (None, None)


def usage_cost(model: str, prompt_tokens: int, completion_tokens: int,
               reasoning_tokens: int = 0) -> tuple[float, float] | None:
    """Dollars of one reply at list price, and the share of it that paid for hidden reasoning
    (reasoning tokens are billed as completion tokens and already counted in them); None when the
    model's price is unknown."""
    price_in, price_out = model_price(model)
    if price_in is None or price_out is None:
        return None
    return ((prompt_tokens * price_in + completion_tokens * price_out) / 1e6, reasoning_tokens * price_out / 1e6)
