"""Token counting as OpenAI bills it: o200k_base text tokens, a per-message overhead, image tiles.

The emulator counts on its own (not through the client's estimator) so tests can catch a client
whose estimate drifts from what the server charges.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
from functools import lru_cache
from typing import Any

import bpe_openai
from PIL import Image, UnidentifiedImageError

_ENCODING = bpe_openai.get_encoding("o200k_base")

# OpenAI's chat format wraps each message in a few special tokens, and primes the reply with three.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

# Image rule of the OpenAI vision docs: 85 base tokens, plus 170 per 512 px tile at high detail.
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
# A remote image URL is not fetched (no network); bill it as a 1024x1024 image (4 tiles).
UNKNOWN_IMAGE_SIZE = (1024, 1024)
# Most image headers sit in the first few KB; decode only this much base64 first.
_HEADER_B64_CHARS = 64 * 1024


def encode(text: str) -> list[int]:
    """Token ids of `text`; special-token look-alikes in user text are plain text, never an error."""
    return _ENCODING.encode_ordinary(text)


def decode(tokens: list[int]) -> str:
    return _ENCODING.decode(tokens)


@lru_cache(maxsize=8192)
def count_text_tokens(text: str) -> int:
    # Cached: Monte-Carlo continuations resend the same long prompt many times.
    return len(encode(text))


def text_parts(content: Any) -> list[str]:
    """The text pieces of a message `content` (a string, a list of parts, or None)."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return []


def image_parts(content: Any) -> list[dict]:
    if not isinstance(content, list):
        return []
    return [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]


def count_prompt_tokens(body: dict) -> int:
    """Prompt tokens of a chat-completions request body, the way the server bills them."""
    total = REPLY_PRIMING
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE
        total += count_text_tokens(str(message.get("role", "")))
        if message.get("name"):
            total += TOKENS_PER_NAME + count_text_tokens(str(message["name"]))
        content = message.get("content")
        total += sum(count_text_tokens(t) for t in text_parts(content))
        total += sum(image_tokens(part) for part in image_parts(content))
    return total


def image_tokens(part: dict) -> int:
    """Tokens of one `image_url` content part by the tile rule."""
    image_url = part.get("image_url")
    if isinstance(image_url, str):
        url, detail = image_url, "auto"
    elif isinstance(image_url, dict):
        url, detail = str(image_url.get("url", "")), str(image_url.get("detail") or "auto")
    else:
        return IMAGE_BASE_TOKENS
    if detail == "low":
        return IMAGE_BASE_TOKENS
    width, height = _image_size(url)
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tile_count(width, height)


def tile_count(width: int, height: int) -> int:
    """512 px tiles after fitting in 2048x2048 and then scaling the shortest side down to 768."""
    if width <= 0 or height <= 0:
        return 1
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        scale = 2048 / max(w, h)
        w, h = w * scale, h * scale
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = w * scale, h * scale
    return math.ceil(w / 512) * math.ceil(h / 512)


def _image_size(url: str) -> tuple[int, int]:
    if not url.startswith("data:"):
        return UNKNOWN_IMAGE_SIZE
    # Key the cache by a digest, not the URL: the cache must not pin megabytes of base64 in memory.
    return _data_url_size(hashlib.sha256(url.encode("utf-8", "replace")).hexdigest(), url)


_size_cache: dict[str, tuple[int, int]] = {}
_SIZE_CACHE_MAX = 4096


def _data_url_size(digest: str, url: str) -> tuple[int, int]:
    cached = _size_cache.get(digest)
    if cached is not None:
        return cached
    payload = url.partition(",")[2]
    # Try the header first (cheap); fall back to the whole image when the header is further in.
    size = _size_from_b64(payload[:_HEADER_B64_CHARS]) or _size_from_b64(payload) or UNKNOWN_IMAGE_SIZE
    if len(_size_cache) >= _SIZE_CACHE_MAX:
        _size_cache.clear()
    _size_cache[digest] = size
    return size


def _size_from_b64(b64: str) -> tuple[int, int] | None:
    b64 = b64[: len(b64) - len(b64) % 4]
    try:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
            return image.size
    except (binascii.Error, ValueError, OSError, UnidentifiedImageError):
        return None
