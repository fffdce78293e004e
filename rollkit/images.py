"""Images to data URLs: read once per run, optionally downscaled, with their pixel sizes kept for
token estimates (the tile rule needs the size, which the base64 text does not show cheaply)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


class ImageError(Exception):
    """An image that cannot be used: missing, unreadable, or not an image."""


@dataclass(frozen=True)
class LoadedImage:
    data_url: str
    width: int
    height: int


# Keyed by the data URL string itself: the string caches its own hash, so lookups stay cheap.
# Bounded like load_image's cache: every key pins a whole data URL, so an unbounded dict would
# hold every image of a run in memory.
_SIZES: dict[str, tuple[int, int]] = {}
# A few hundred MB at most even for large photos; datasets list the questions about one image
# together, so a window of this many recent images still reads each image once per run.
CACHED_IMAGES = 1024
_SIZES_MAX = CACHED_IMAGES


def _remember_size(url: str, size: tuple[int, int]) -> None:
    if len(_SIZES) >= _SIZES_MAX:
        del _SIZES[next(iter(_SIZES))]  # oldest first: dicts keep insertion order
    _SIZES[url] = size


@lru_cache(maxsize=CACHED_IMAGES)
def load_image(path: str, max_side: int | None = None) -> LoadedImage:
    """Read an image file into a data URL; downscale so its longest side is at most `max_side`."""
    try:
        raw = Path(path).read_bytes()
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            fmt = image.format or "PNG"
            width, height = image.size
            if max_side and max(width, height) > max_side:
                raw, width, height = _downscale(image, max_side)
                fmt = "JPEG"
    except FileNotFoundError as exc:
        raise ImageError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageError(f"image unreadable: {path} ({type(exc).__name__})") from exc
    mime = _MIME.get(fmt, "image/png")
    url = f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"
    _remember_size(url, (width, height))
    return LoadedImage(url, width, height)


def _downscale(image: Image.Image, max_side: int) -> tuple[bytes, int, int]:
    copy = image.convert("RGB")
    copy.thumbnail((max_side, max_side))
    out = io.BytesIO()
    copy.save(out, format="JPEG", quality=90)
    return out.getvalue(), copy.width, copy.height


def image_size(url: str) -> tuple[int, int] | None:
    """Pixel size of an image URL: known data URLs from the cache, others decoded once."""
    size = _SIZES.get(url)
    if size is None and url.startswith("data:") and "," in url:
        try:
            with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
                size = image.size
        except (ValueError, OSError, UnidentifiedImageError):
            return None
        _remember_size(url, size)
    return size
