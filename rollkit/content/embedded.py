"""Images stored inside a table (Hugging Face's `{"bytes", "path"}` image values, or bare bytes) become
files, so they are sent like any other image and stay available to the exports.

Where they go: one cache folder, `$ROLLKIT_IMAGE_CACHE`, else `$XDG_CACHE_HOME/rollkit/images`, else
`~/.cache/rollkit/images`. Each image is written once, named by the sha256 of its bytes
(`<sha256>.<ext>`), atomically, so runs reading the same dataset (or several machines on a shared
disk) share it. The record then names the image by that file name, relative, with the cache folder
as its `image_root`: the entry id depends on the picture's bytes, not on where the cache lives.
A cache folder rather than a folder beside the output because the input is read before, and
independently of, any output (dry runs, several stages over one dataset, report and export).
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from rollkit.store.atomic import atomic_write

IMAGE_CACHE_ENV = "ROLLKIT_IMAGE_CACHE"
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


class EmbeddedImageError(ValueError):
    """Bytes in an image value that are not a picture."""


def image_cache() -> Path:
    """The folder embedded images are written to (see the module docstring)."""
    given = os.environ.get(IMAGE_CACHE_ENV)
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rollkit" / "images"


def is_embedded(value: Any) -> bool:
    """A Hugging Face image value (`{"bytes", "path"}`) or raw bytes."""
    return isinstance(value, bytes | bytearray) or (
        isinstance(value, dict) and "bytes" in value and set(value) <= {"bytes", "path"})


def _extension(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            return _EXTENSIONS.get(image.format or "", (image.format or "img").lower())
    except (UnidentifiedImageError, OSError) as exc:
        raise EmbeddedImageError(f"{len(data)} bytes that are not an image ({type(exc).__name__})") from exc


# files known to be in the cache, remembered per run: a dataset asks many questions about one picture
_KNOWN: set[Path] = set()


def store_image(data: bytes) -> str:
    """Write `data` to the cache once; its file name there (`<sha256>.<ext>`)."""
    data = bytes(data)
    digest, ext = hashlib.sha256(data).hexdigest(), _extension(data)
    folder = image_cache()
    name = f"{digest}.{ext}"
    path = folder / name
    if path not in _KNOWN:
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "wb") as out:
                out.write(data)
        if len(_KNOWN) >= 4096:
            _KNOWN.clear()
        _KNOWN.add(path)
    return name


def _unpack(value: Any) -> tuple[Any, bool]:
    """(the reference for one image value, whether it came from the cache)."""
    if isinstance(value, bytes | bytearray):
        return store_image(value), True
    if value.get("bytes"):
        return store_image(value["bytes"]), True
    return value.get("path"), False


def unpack_images(record: dict) -> dict:
    """The record with every embedded image (a value or a list of them) replaced by its file name
    in the cache, and `image_root` set to the cache when any was. EmbeddedImageError names the field."""
    changed, cached = {}, False
    for name, value in record.items():
        values = value if isinstance(value, list) and value and all(is_embedded(v) for v in value) else None
        if values is None and not is_embedded(value):
            continue
        try:
            refs = [_unpack(v) for v in (values if values is not None else [value])]
        except EmbeddedImageError as exc:
            raise EmbeddedImageError(f'"{name}" holds {exc}') from None
        cached = cached or any(from_cache for _, from_cache in refs)
        paths = [ref for ref, _ in refs if ref]
        changed[name] = paths if values is not None else (paths[0] if paths else None)
    if not changed:
        return record
    out = {**record, **changed}
    out = {k: v for k, v in out.items() if v is not None}
    if cached:
        out["image_root"] = str(image_cache().resolve())
    return out
