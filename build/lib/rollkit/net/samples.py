"""How N samples of one request are asked for, in one place for every stage: one body with `n`
(the prompt and its images are paid once), or N bodies.

Sample i of a request is seeded `base + i`, where `base` comes from the request's id. That is
vLLM's own rule for `n` (child i of a request with `seed` and `n` is sampled with `seed + i`), so
one body with `n`, N single bodies, and rounds of a few (`first` > 0) all draw the same samples,
and a cheaper Monte-Carlo mode sees exactly the continuations the exhaustive one would. A rerun
sends byte-identical bodies and the journal replays them."""

from __future__ import annotations

import hashlib


def sample_seed(entry_id: str, label: int | str) -> int:
    """The base seed of one request's samples, derived from its id (stable across runs)."""
    digest = hashlib.md5(f"{entry_id}:{label}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31)


def sample_bodies(base: dict, count: int, *, use_n: bool, seed: int | None, first: int = 0) -> list[dict]:
    """Samples `first .. first+count-1` of a request: one body asking for `count` choices, or one
    body per sample. `seed` is the base seed (sample i gets `seed + i`); None sends no seed."""
    if use_n:
        body = {**base, "n": count}
        if seed is not None:
            body["seed"] = seed + first
        return [body]
    bodies = []
    for index in range(first, first + count):
        body = dict(base)
        if seed is not None:
            body["seed"] = seed + index
        bodies.append(body)
    return bodies
