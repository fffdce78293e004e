"""A stand-in for a server's prompt prefix cache, so clients can see `cached_tokens` (--realism).

Real servers (vLLM, SGLang, OpenAI) keep the key/value state of prompts they have seen and bill a
new prompt's longest already-seen prefix as `usage.prompt_tokens_details.cached_tokens`. Here the
unit is a whole piece of a message (its role, one text part, one image), in order: a request's
cached tokens are those of its longest run of leading pieces that an earlier request also began
with. Coarser than a real server's token blocks, and bounded: the oldest prefixes are forgotten.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any

from rollkit.emulator.tokens import TOKENS_PER_MESSAGE, count_text_tokens, image_tokens

MAX_PREFIXES = 200_000


class PrefixCache:
    def __init__(self, max_prefixes: int = MAX_PREFIXES) -> None:
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.max_prefixes = max_prefixes

    def cached_tokens(self, body: dict[str, Any]) -> int:
        """Tokens of the longest seen leading run of `body`'s pieces; remembers every run of it."""
        digest, tokens, cached, hit = hashlib.sha256(), 0, 0, True
        for piece, cost in _pieces(body):
            digest.update(json.dumps(piece, sort_keys=True).encode("utf-8"))
            tokens += cost
            key = digest.hexdigest()
            if hit and key in self._seen:
                cached = tokens
                self._seen.move_to_end(key)
            else:
                hit = False
                self._seen[key] = None
        while len(self._seen) > self.max_prefixes:
            self._seen.popitem(last=False)
        return cached


def _pieces(body: dict[str, Any]):
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role", ""))
        yield ["role", role], TOKENS_PER_MESSAGE + count_text_tokens(role)
        content = message.get("content")
        for part in [{"type": "text", "text": content}] if isinstance(content, str) else content or []:
            if isinstance(part, dict) and part.get("type") == "text":
                yield ["text", str(part.get("text"))], count_text_tokens(str(part.get("text")))
            elif isinstance(part, dict) and part.get("type") == "image_url":
                yield ["image", part], image_tokens(part)
