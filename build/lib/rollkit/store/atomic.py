"""Files that are whole or absent: written under a temporary name, synced, then renamed over the
target, so a crash at any moment leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class AtomicFile:
    """`handle` writes to `<path>.tmp`; `commit()` makes it `path` (or another name, chosen once
    the content is known), `discard()` throws it away."""

    def __init__(self, path: str | Path, mode: str = "w") -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.handle: IO[Any] = open(self.tmp, mode, encoding=None if "b" in mode else "utf-8")

    def commit(self, path: str | Path | None = None) -> Path:
        target = Path(path) if path is not None else self.path
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, target)
        return target

    def discard(self) -> None:
        self.handle.close()
        self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """`with atomic_write(path) as out: out.write(...)`: `path` appears whole when the block ends."""
    target = AtomicFile(path, mode)
    try:
        yield target.handle
    except BaseException:
        target.discard()
        raise
    target.commit()


def write_json(path: str | Path, data: Any, indent: int = 2) -> None:
    with atomic_write(path) as out:
        json.dump(data, out, indent=indent, sort_keys=True)
        out.write("\n")
