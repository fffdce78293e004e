"""Append-only JSONL logs keyed by an id: the result log, the error log and the request journal.

One mechanism for all of them, so crash safety is written once:
- one writer: `<path>.lock` is held with flock, which the kernel drops when the holder dies
  (even by SIGKILL), so a lock is never stale;
- whole lines: each record is one `os.write` on an O_APPEND descriptor, so a line is never
  interleaved and is in the kernel at once, even if Python is killed right after; fsync runs at
  most every `fsync_interval` seconds and on close, which only matters for power loss;
- torn tails: a crash mid-write can leave a partial last line; `open()` cuts it off (keeping
  the bytes in `<path>.torn`) before anything is appended after it;
- fast resume: `open()` indexes the ids already in the file at several hundred MB/s, keeping
  16-byte digests (not records) in a compact table.

Logs are used by one process and one thread of writes (an asyncio loop); they are not
thread-safe.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Self

# also imported from here by stage.py, journal.py and batch/
from rollkit.store.atomic import atomic_write
from rollkit.store.digests import DigestTable, id_digest

log = logging.getLogger("rollkit")

_SCAN_CHUNK = 1 << 16  # small reads stay in the CPU cache: faster than big ones, and flat in memory
_TAIL_BLOCK = 1 << 16


class LogLockedError(RuntimeError):
    """Another live process holds this log."""


def acquire_lock(path: Path, label: str) -> int:
    """Hold `<path>.lock` exclusively; return its fd. Raises LogLockedError naming the holder's PID."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise
        raise LogLockedError(
            f"{label} {path} is in use by another rollkit process (pid {holder}); "
            "stop it or choose another --output") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _line_start(f, end: int) -> int:
    """Offset where the line ending just before `end` starts (0 if it is the first line)."""
    pos = end
    while pos > 0:
        step = min(_TAIL_BLOCK, pos)
        f.seek(pos - step)
        nl = f.read(step).rfind(b"\n")
        if nl != -1:
            return pos - step + nl + 1
        pos -= step
    return 0


def _is_json_line(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False
    return True


def repair_tail(path: Path) -> int:
    """Cut a partial last line (and a last line that is not JSON); return the bytes removed.

    The removed bytes are appended to `<path>.torn` for forensics.
    """
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        keep = size
        if size:
            f.seek(size - 1)
            if f.read(1) != b"\n":
                keep = _line_start(f, size)  # the partial line of a crash mid-write
            if keep:
                start = _line_start(f, keep - 1)
                f.seek(start)
                if not _is_json_line(f.read(keep - start)):
                    keep = start
        if keep == size:
            return 0
        f.seek(keep)
        torn = f.read()
        with open(f"{path}.torn", "ab") as sink:
            sink.write(torn + b"\n")
            os.fsync(sink.fileno())
        f.truncate(keep)
        os.fsync(f.fileno())
    log.warning("%s: removed a torn last line of %d bytes (a crash mid-write); kept in %s.torn",
                path, size - keep, path)
    return size - keep


def line_id(line: bytes, id_field: str) -> str | None:
    """The id of one JSONL line; None for blank lines and lines without a string id."""
    prefix = b'{"' + id_field.encode() + b'": "'
    if line.startswith(prefix):
        end = line.find(b'"', len(prefix))
        raw = line[len(prefix):end]
        if end != -1 and b"\\" not in raw:
            return raw.decode("utf-8", "surrogateescape")
    try:
        value = json.loads(line)
    except ValueError:
        return None
    found = value.get(id_field) if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def scan_ids(path: Path, id_field: str) -> Iterator[tuple[int, str]]:
    """(offset, id) of every line of the file.

    Lines written by KeyedLog start with `{"<id_field>": "`, so the id is cut out without parsing
    the line; other lines fall back to json.loads. Unreadable lines are logged and skipped.
    """
    prefix = b'{"' + id_field.encode() + b'": "'
    skip, base, carry, unreadable = len(prefix), 0, b"", 0
    with open(path, "rb", buffering=0) as f:
        # a line longer than a chunk doubles the read, so joining its pieces stays linear
        while chunk := f.read(max(_SCAN_CHUNK, len(carry))):
            block = carry + chunk
            find, starts, pos = block.find, block.startswith, 0
            while (nl := find(b"\n", pos)) != -1:
                end = find(b'"', pos + skip, nl) if starts(prefix, pos) else -1
                if end != -1 and find(b"\\", pos + skip, end) == -1:
                    yield base + pos, block[pos + skip:end].decode("utf-8", "surrogateescape")
                elif (found := line_id(block[pos:nl], id_field)) is not None:
                    yield base + pos, found
                elif nl > pos and not block[pos:nl].isspace():
                    unreadable += 1
                pos = nl + 1
            base, carry = base + pos, block[pos:]
    if unreadable:
        log.warning("%s: %d lines have no readable %r; their work will be done again", path, unreadable, id_field)


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # built once: json.dumps with options builds one per call


def dump_line(record: dict) -> bytes:
    """One JSONL line; lone surrogates (from broken model output) are escaped instead of failing."""
    try:
        return (_ENCODER.encode(record) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(record) + "\n").encode("ascii")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KeyedLog:
    """An append-only JSONL file of records keyed by `id_field`, written by one process at a time.

    `open()` (or `with`) locks, repairs a torn tail and indexes the ids already there; then
    `id in log`, `len(log)`, `append(record)`, and `close()`. See the module docstring.
    """

    label = "log"
    _keep_offsets = False

    def __init__(self, path: str | Path, id_field: str = "entry_id", fsync_interval: float = 2.0):
        self.path = Path(path)
        self.id_field = id_field
        self.fsync_interval = fsync_interval
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._size = 0
        self._last_sync = 0.0
        self._index = DigestTable(self._keep_offsets)

    def open(self) -> Self:
        """Lock, repair a torn last line, then index the ids already written. Returns self."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = acquire_lock(self.path, self.label)
        try:
            self._open_for_append()
            repair_tail(self.path)
            # a guess of ~1 KB a line; a wrong guess costs one regrowth, nothing more
            self._index = DigestTable(self._keep_offsets, expected=self.path.stat().st_size // 1024)
            self._index.update((id_digest(id_), offset) for offset, id_ in scan_ids(self.path, self.id_field))
            self._size = os.fstat(self._fd).st_size
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __contains__(self, id_: str) -> bool:
        return id_digest(id_) in self._index

    def __len__(self) -> int:
        """Distinct ids in the log."""
        return len(self._index)

    def index_bytes(self) -> int:
        """Memory held by the index of ids (not the records: those stay on disk)."""
        return self._index.memory_bytes()

    def append(self, record: dict) -> None:
        """Write one record as one whole line, its id first (the fast resume scan relies on that)."""
        id_ = record.get(self.id_field)
        if not isinstance(id_, str):
            raise ValueError(f"record to append to {self.path} has no string {self.id_field!r}")
        offset = self._write(dump_line({self.id_field: id_, **record}))
        self._index.add(id_digest(id_), offset)

    def sync(self) -> None:
        """fsync now (appends already reached the kernel; this guards against power loss)."""
        if self._fd is not None:
            os.fsync(self._fd)
            self._last_sync = time.monotonic()

    def close(self) -> None:
        """fsync and release the lock. Safe to call twice."""
        fd, self._fd = self._fd, None
        lock_fd, self._lock_fd = self._lock_fd, None
        try:
            if fd is not None:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        finally:
            if lock_fd is not None:
                with contextlib.suppress(OSError):
                    os.ftruncate(lock_fd, 0)  # no stale pid for the next reader of the lock file
                os.close(lock_fd)  # closing the descriptor releases the flock

    def iter_records(self) -> Iterator[dict]:
        """Read every record back. A partial last line (a writer mid-write) is not yielded;
        a line that is not JSON is logged and skipped, as the resume scan does."""
        with open(self.path, "rb") as f:
            for number, line in enumerate(f, 1):
                if not line.endswith(b"\n") or line.isspace():
                    continue
                try:
                    yield json.loads(line)
                except ValueError:
                    log.warning("%s:%d: not a JSON line; skipped", self.path, number)

    def drop(self, ids: Iterable[str]) -> int:
        """Remove every line with one of these ids; return how many lines went.

        The kept lines go to a new file that replaces the log with os.replace, so a crash leaves
        either the old log or the new one, never a mix.
        """
        self._require_open()
        doomed = {id_digest(i) for i in ids}
        if not any(d in self._index for d in doomed):
            return 0
        kept, removed = DigestTable(self._keep_offsets), 0
        with open(self.path, "rb") as src, atomic_write(self.path, "wb") as dst:
            for line in src:
                id_ = line_id(line, self.id_field)
                digest = id_digest(id_) if id_ is not None else None
                if digest in doomed:
                    removed += 1
                    continue
                if digest is not None:
                    kept.add(digest, dst.tell())
                dst.write(line)
        _fsync_dir(self.path)
        os.close(self._fd)
        self._open_for_append()  # the old descriptor still points at the replaced file
        self._index, self._size = kept, os.fstat(self._fd).st_size
        return removed

    def _open_for_append(self) -> None:
        # read-write so journal lookups can pread the lines this descriptor appended
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _require_open(self) -> int:
        if self._fd is None:
            raise RuntimeError(f"{self.path} is not open; call open() first")
        return self._fd

    def _write(self, data: bytes) -> int:
        """Append with one write; return the line's offset. A failed write leaves no partial line."""
        fd, start = self._require_open(), self._size
        try:
            written = os.write(fd, data)
            if written != len(data):  # only on a full disk; the tail must stay whole lines
                raise OSError(errno.ENOSPC, f"short write to {self.path} ({written} of {len(data)} bytes)")
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
        self._size = start + len(data)
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval:
            os.fsync(fd)
            self._last_sync = now
        return start

    def _read_line(self, offset: int) -> bytes:
        fd, parts = self._require_open(), []
        while True:
            block = os.pread(fd, _TAIL_BLOCK, offset)
            nl = block.find(b"\n")
            if nl != -1 or not block:
                parts.append(block[:nl] if nl != -1 else block)
                return b"".join(parts)
            parts.append(block)
            offset += len(block)


class ResultLog(KeyedLog):
    """A stage's output: one record per line, keyed by `entry_id` (or a sub-id such as `<id>:r3`)."""

    label = "output"


class ErrorLog(KeyedLog):
    """`<output>.errors.jsonl`: permanent failures with their reason, one line per entry.

    Lines are keyed by `error_key`: the entry id, or `"<source>:<line>"` for an input line that
    could not be read (it has no entry id), so a resumed run does not record it twice.
    """

    label = "error log"

    def __init__(self, path: str | Path, fsync_interval: float = 2.0):
        super().__init__(path, id_field="error_key", fsync_interval=fsync_interval)

    @staticmethod
    def key_for(entry_id: str | None, source: str, line: int) -> str:
        return entry_id if entry_id is not None else f"{source}:{line}"

    def add(self, *, entry_id: str | None, source: str, line: int, stage: str, reason: str,
            message: str, retryable: bool = False, key: str | None = None, **extra: Any) -> None:
        """Record one failure (skipped when this key already has one). `key` overrides the default
        key for a stage that fails parts of an entry on their own (one rollout of several)."""
        key = key or self.key_for(entry_id, source, line)
        if key in self:
            return
        self.append({"error_key": key, "entry_id": entry_id, "source": source, "line": line, "stage": stage,
                     "reason": reason, "message": message, "retryable": retryable, **extra})


def error_log_path(output_path: str | Path) -> Path:
    """`<output>.errors.jsonl`, next to the output."""
    return Path(f"{output_path}.errors.jsonl")


def error_log_for(output_path: str | Path, fsync_interval: float = 2.0) -> ErrorLog:
    """The (unopened) error log that goes with a stage output."""
    return ErrorLog(error_log_path(output_path), fsync_interval=fsync_interval)
