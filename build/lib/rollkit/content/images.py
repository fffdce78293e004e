"""Images to data URLs: read once per run, optionally downscaled, with their pixel sizes kept for
token estimates (the tile rule needs the size, which the base64 text does not show cheaply).

Which file a record means is decided here once for every stage (`record_image_urls`): the first of
`images`, `image_path`, `image` whose every reference is a URL or a file that exists. A record that
names images none of which can be opened raises ImageError naming every field tried, so it goes to
the errors file and is never sent without its picture."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from rollkit.content.inputs import IMAGE_FIELDS, field_refs, is_url, resolve_image_path

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


def _tried(name: str, refs: list[str], missing: str) -> str:
    shown = refs[0] if len(refs) == 1 else refs
    return f"{name}={shown!r} (not found: {missing})"


def record_image_paths(record: dict, folder: str | Path) -> tuple[str | None, list[str]]:
    """(field, URLs and file paths) of the record's images; (None, []) when it names none.

    Relative paths resolve against `folder` (see records.image_folder). Raises ImageError naming
    every field tried when none of them names only URLs and existing files."""
    tried = []
    for name in IMAGE_FIELDS:
        refs = field_refs(record, name)
        if not refs:
            continue
        paths = [ref if is_url(ref) else str(resolve_image_path(ref, folder)) for ref in refs]
        missing = [p for ref, p in zip(refs, paths, strict=True) if not is_url(ref) and not Path(p).is_file()]
        if not missing:
            return name, paths
        tried.append(_tried(name, refs, missing[0]))
    if tried:
        raise ImageError(f"image not found; tried {'; '.join(tried)}")
    return None, []


def record_image_urls(record: dict, folder: str | Path, max_side: int | None = None) -> list[str]:
    """Every image of the record as a URL to send (files become data URLs), in the order listed."""
    name, paths = record_image_paths(record, folder)
    urls = []
    for path in paths:
        if is_url(path):
            urls.append(path)
            continue
        try:
            urls.append(load_image(path, max_side).data_url)
        except ImageError as exc:
            raise ImageError(f"{exc} (from {name})") from exc
    return urls
