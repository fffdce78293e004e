"""Images as the seed's two PRM trainers read them.

- `conversations` rows: the Qwen-VL fine-tuning data module (IMAGE_SIZE=smart-resize, its default)
  opens `image_qwen_smart_resize`, the image already resized by Qwen's rule. `ResizedCopies` writes
  that copy once per image content into RESIZED_FOLDER beside the export.
- `messages` rows written as Parquet: the image itself goes into the row, in the layout HF `datasets`
  gives its Image feature (a struct of `bytes` and `path`, named in the schema's metadata), so the
  rows load with their images from any folder or from a dataset repository.

Both folders start with a dot: `load_dataset(export_folder)` skips hidden files and folders, so it
reads the rows and only the rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pyarrow as pa
from PIL import Image

from rollkit.store.atomic import AtomicFile

from .formats import URL_PREFIXES

RESIZED_FOLDER = ".qwen_smart_resize"
FACTOR = 28  # a Qwen-VL vision token covers a 28x28 patch after its 2x2 merge
# Qwen2-VL's image processor defaults: 56*56 and 28*28*1280 pixels
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 28 * 28 * 1280
MAX_RATIO = 200  # Qwen refuses a longer side more than 200 times the shorter one
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
# what `datasets` reads to turn the struct back into a PIL image
IMAGE_FEATURE = {"_type": "Image"}


class ImageTooLong(ValueError):
    """An aspect ratio Qwen's rule refuses."""


def smart_size(height: int, width: int, min_pixels: int = DEFAULT_MIN_PIXELS,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(height, width) by Qwen's smart-resize rule: each side the nearest multiple of FACTOR, then
    both scaled by one factor (rounding down, or up) until the pixel count lies in [min, max]."""
    if max(height, width) > MAX_RATIO * min(height, width):
        raise ImageTooLong(f"{width}x{height} is more than {MAX_RATIO} times as long as wide")
    h = max(FACTOR, round(height / FACTOR) * FACTOR)
    w = max(FACTOR, round(width / FACTOR) * FACTOR)
    if h * w > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        h = max(FACTOR, math.floor(height / scale / FACTOR) * FACTOR)
        w = max(FACTOR, math.floor(width / scale / FACTOR) * FACTOR)
        # a thin image's short side held at FACTOR can leave it over the limit: the long side gives way
        # (Qwen's own rule would pass it over, and its processor resize the copy again)
        h, w = (h, min(w, max_pixels // h // FACTOR * FACTOR)) if h <= w else \
            (min(h, max_pixels // w // FACTOR * FACTOR), w)
    elif h * w < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * scale / FACTOR) * FACTOR
        w = math.ceil(width * scale / FACTOR) * FACTOR
    return h, w


@dataclass(frozen=True)
class ResizeLimits:
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS

    def check(self) -> None:
        """ValueError unless the limits leave room for at least one FACTOR x FACTOR patch."""
        if not FACTOR * FACTOR <= self.min_pixels <= self.max_pixels:
            raise ValueError(f"--min-pixels/--max-pixels want {FACTOR * FACTOR} <= MIN <= MAX; "
                             f"got {self.min_pixels} and {self.max_pixels}")


class ResizedCopies:
    """Resized copies under `out_dir/RESIZED_FOLDER`, named by the original's content and the size:
    an image shared by many rows is written once, and a rerun finds every copy already there."""

    def __init__(self, out_dir: Path, limits: ResizeLimits) -> None:
        self.out_dir, self.limits = out_dir, limits
        self.written = 0  # copies this run wrote (not found already)
        self._copy = lru_cache(maxsize=1 << 12)(self._make)  # the K rollouts of a question share it

    def copy_of(self, path: str) -> str:
        """The copy of `path` (as the row names it: relative to out_dir, or absolute), named the same way."""
        copy = self._copy(os.path.normpath(os.path.join(self.out_dir, path)))
        return str(copy) if os.path.isabs(path) else os.path.relpath(copy, self.out_dir)

    def _make(self, source: str) -> Path:
        data = Path(source).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            height, width = smart_size(image.height, image.width, self.limits.min_pixels, self.limits.max_pixels)
            jpeg = image.format == "JPEG"
            name = f"{hashlib.sha256(data).hexdigest()[:24]}-{width}x{height}.{'jpg' if jpeg else 'png'}"
            target = Path(os.path.abspath(self.out_dir)) / RESIZED_FOLDER / name
            if target.exists():
                return target
            # bicubic, as Qwen's image processor resizes
            resized = image.convert("RGB").resize((width, height), Image.Resampling.BICUBIC)
        target.parent.mkdir(parents=True, exist_ok=True)
        out = AtomicFile(target, "wb")
        resized.save(out.handle, format="JPEG" if jpeg else "PNG", quality=95)
        out.commit()
        self.written += 1
        return target


class ImageEmbedder:
    """Turns a row's `image` path (relative to out_dir) into the {bytes, path} struct `datasets`
    stores; the last image read is kept, as a question's rollouts come one after another."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._last: tuple[str, bytes] = ("", b"")

    def __call__(self, row: dict) -> dict:
        path = row.get("image")
        if path is None or path.startswith(URL_PREFIXES):
            return {**row, "image": None if path is None else {"bytes": None, "path": path}}
        full = os.path.normpath(os.path.join(self.out_dir, path))
        if self._last[0] != full:
            self._last = (full, Path(full).read_bytes())
        return {**row, "image": {"bytes": self._last[1], "path": os.path.basename(path)}}


def with_image_feature(schema: pa.Schema) -> pa.Schema:
    """`schema` with `image` as the Image struct and the metadata that names it for `datasets`
    (columns the metadata leaves out keep the types datasets infers from Arrow)."""
    at = schema.get_field_index("image")
    schema = schema.set(at, pa.field("image", IMAGE_TYPE))
    meta = {"info": {"features": {"image": IMAGE_FEATURE}}}
    return schema.with_metadata({b"huggingface": json.dumps(meta).encode()})
