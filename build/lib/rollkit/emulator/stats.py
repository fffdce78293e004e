"""Counters that let tests prove nothing was paid twice, served at `GET /_emulator/stats`.

A request's key is the sha256 of its canonical JSON body (`request_key`). `completed_by_key` counts
the *billable* 200 answers per key: proper chat.completion objects, including `length` and
`content_filter` finishes. A malformed 200 body counts under `by_status["200"]` and `malformed`
but not as completed (the client cannot use it). Requests that never got an answer count under
`by_status["reset"]` (injected reset) or `by_status["client_closed"]` (the client hung up first,
for example while a timeout fault stalled).

`requests_by_image_parts` counts chat requests by how many `image_url` parts their messages hold
(`{"0": 3, "1": 40}`), so a test can prove no request of a vision record went out without its image.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any


def canonical_json(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def image_part_count(body: Any) -> int:
    """How many `image_url` content parts the messages of a chat request body hold."""
    messages = body.get("messages") if isinstance(body, dict) else None
    count = 0
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            count += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
    return count


def request_key(body: Any) -> str:
    """sha256 hex of the canonical JSON of a request body (sorted keys, no spaces)."""
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.completed_by_key: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.malformed = 0
        # Tokens charged against TPM by admitted requests (prompt + max tokens x n), for benchmarks.
        self.tokens_billed = 0
        # How often each key was received (any outcome): the attempt number that seeds fault draws.
        self.attempts: Counter[str] = Counter()
        self.by_image_parts: Counter[str] = Counter()

    def received(self) -> None:
        self.requests += 1

    def saw_body(self, body: Any) -> None:
        self.by_image_parts[str(image_part_count(body))] += 1

    def next_attempt(self, key: str) -> int:
        attempt = self.attempts[key]
        self.attempts[key] += 1
        return attempt

    def answered(self, status: int | str, key: str | None = None, completed: bool = False) -> None:
        self.by_status[str(status)] += 1
        if completed and key is not None:
            self.completed_by_key[key] += 1

    def as_json(self, with_keys: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "completed": sum(self.completed_by_key.values()),
            "duplicates": sum(1 for count in self.completed_by_key.values() if count > 1),
            "faults": dict(self.faults),
            "malformed": self.malformed,
            "tokens_billed": self.tokens_billed,
            "most_attempts": max(self.attempts.values(), default=0),  # the most times one body was sent
            "requests_by_image_parts": dict(self.by_image_parts),
        }
        if with_keys:
            out["completed_by_key"] = dict(self.completed_by_key)
        return out
