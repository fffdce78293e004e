"""How N samples of one request are asked for, in one place for every stage: one body with `n`
(the prompt and its images are paid once), or N bodies. Each sample gets a seed derived from its
id, so a rerun sends byte-identical bodies and the journal replays them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable


def sample_seed(entry_id: str, index: int | str) -> int:
    """A per-sample seed derived from the id: reruns send the same body, so results map back."""
    digest = hashlib.md5(f"{entry_id}:{index}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31)


def sample_bodies(base: dict, count: int, *, use_n: bool, seed: Callable[[int | None], int] | None,
                  first: int = 0) -> list[dict]:
    """One body asking for `count` choices, or `count` bodies for samples `first .. first+count-1`.
    `seed(i)` gives sample i's seed (`i` is None for the body with `n`); None sends no seed."""
    if use_n:
        body = {**base, "n": count}
        if seed is not None:
            body["seed"] = seed(None)
        return [body]
    bodies = []
    for index in range(first, first + count):
        body = dict(base)
        if seed is not None:
            body["seed"] = seed(index)
        bodies.append(body)
    return bodies
