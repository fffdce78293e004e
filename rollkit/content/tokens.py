"""Token estimates for rate budgets and batch packing.

Text is counted with the model's real encoding (bpe-openai bundles tiktoken's cl100k/o200k files, so
nothing is downloaded at run time). Images are counted by OpenAI's tile rule from their pixel size,
never from the length of their base64 text, which overstates them by two orders of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import bpe_openai

# Chat formatting adds a few tokens per message and per reply; these are OpenAI's published figures.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
DEFAULT_ENCODING = "o200k_base"


@lru_cache(maxsize=64)
def encoding_for(model: str | None) -> bpe_openai.Encoding:
    """The model's encoding (gpt-4 and gpt-3.5 use cl100k); names the library does not know
    (deployments, local models, newer o-series) fall back to o200k, today's encoding.

    bpe_openai is imported here, not at the top: it decodes every bundled vocabulary when imported
    (0.8 s of CPU), and most processes (export, report, map, every --help) never count a token."""
    import bpe_openai

    try:
        return bpe_openai.get_encoding(bpe_openai.encoding_name_for_model(model or ""))
    except (KeyError, ValueError):  # the library's UnsupportedModelError is a KeyError
        return bpe_openai.get_encoding(DEFAULT_ENCODING)


def count_text(text: str, model: str | None = None) -> int:
    return len(encoding_for(model).encode(text, disallowed_special=()))


def image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """OpenAI's tile rule: fit in 2048x2048, shortest side to 768, then 170 tokens per 512px tile."""
    if detail == "low":
        return IMAGE_BASE_TOKENS
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles


SizeLookup = Callable[[str], tuple[int, int] | None]


def _content_parts(content: Any) -> Iterable[dict]:
    if isinstance(content, str):
        yield {"type": "text", "text": content}
    elif isinstance(content, list):
        yield from (p for p in content if isinstance(p, dict))


def count_messages(messages: list[dict], model: str | None, image_size: SizeLookup) -> int:
    """Prompt tokens of a chat request; `image_size` maps an image URL to its pixel size."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE + count_text(str(message.get("role", "")), model)
        for part in _content_parts(message.get("content")):
            if part.get("type") == "text":
                total += count_text(part.get("text", ""), model)
            elif part.get("type") == "image_url":
                image = part.get("image_url") or {}
                size = image_size(image.get("url", ""))
                width, height = size if size else (512, 512)
                total += image_tokens(width, height, image.get("detail", "auto"))
    return total


def completion_allowance(body: dict) -> int:
    """The completion tokens a server reserves for a request: max tokens times the number of choices."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return int(limit) * int(body.get("n") or 1)
