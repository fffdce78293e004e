"""Compact sets of ids: ``id_digest`` turns an id into 16 bytes, ``DigestTable`` holds millions of them.

The resume index of every keyed log (and the batch request tables) keeps these digests instead of
the ids or the records, so memory stays flat for journals of tens of millions of lines.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from typing import Any


def id_digest(id_: str) -> bytes:
    """16 bytes standing for an id: an md5 hex id's own bytes, else the md5 of the id."""
    if len(id_) == 32:
        try:
            digest = bytes.fromhex(id_)
        except ValueError:
            pass
        else:
            if digest.hex() == id_:  # only canonical lowercase hex, so "ABC.." and "abc.." stay distinct
                return digest
    return hashlib.md5(id_.encode("utf-8", "surrogatepass")).digest()


class DigestTable:
    """A set of 16-byte digests, each optionally mapped to an int, at about 17-22 bytes an entry
    (25-32 with values).

    Entries are packed into bytearray buckets chosen by the leading bits of the digest (digests
    are uniform); buckets are searched with bytes.find. A Python set of bytes would cost ~100 bytes
    an entry, which matters for journals of tens of millions of responses.
    """

    # average entries per bucket before the bucket count grows 16-fold: buckets of a few KB are
    # still searched in well under a microsecond, and fragment the heap less than many tiny ones
    _GROW_AT = 256

    def __init__(self, with_values: bool = False, expected: int = 0):
        self._width = 24 if with_values else 16
        self._bits = max(8, (expected // self._GROW_AT).bit_length())  # sized ahead: no regrowth
        self._buckets: list[bytearray | None] = [None] * (1 << self._bits)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def memory_bytes(self) -> int:
        """Bytes held by the table (buckets and their list), for reports."""
        return sys.getsizeof(self._buckets) + sum(sys.getsizeof(b) for b in self._buckets if b is not None)

    def __contains__(self, digest: bytes) -> bool:
        bucket = self._buckets[self._index(digest)]
        return bucket is not None and self._locate(bucket, digest) != -1

    def get(self, digest: bytes) -> int | None:
        bucket = self._buckets[self._index(digest)]
        at = -1 if bucket is None else self._locate(bucket, digest)
        return None if at == -1 else int.from_bytes(bucket[at + 16:at + 24], "little")

    def add(self, digest: bytes, value: int = 0) -> None:
        """Insert, or replace the value of an existing digest (last write wins)."""
        self.update(((digest, value),))

    def update(self, entries: Iterable[tuple[bytes, int]]) -> None:
        """add() for many (digest, value) pairs: resume scans insert millions, so the loop is inlined."""
        width, with_values, locate = self._width, self._width == 24, self._locate
        buckets, shift, limit = self._buckets, 32 - self._bits, self._GROW_AT << self._bits
        for digest, value in entries:
            entry = digest + value.to_bytes(8, "little") if with_values else digest
            index = int.from_bytes(digest[:4], "big") >> shift
            bucket = buckets[index]
            if bucket is None:
                buckets[index] = bytearray(entry)
            elif (at := locate(bucket, digest)) != -1:
                bucket[at:at + width] = entry
                continue
            else:
                bucket += entry
            self._count += 1
            if self._count > limit:
                self._grow()
                buckets, shift, limit = self._buckets, 32 - self._bits, self._GROW_AT << self._bits

    def _index(self, digest: bytes) -> int:
        return int.from_bytes(digest[:4], "big") >> (32 - self._bits)

    def _locate(self, bucket: bytearray, digest: bytes) -> int:
        at = bucket.find(digest)
        while at % self._width and at != -1:  # a match straddling two entries is not an entry
            at = bucket.find(digest, at + 1)
        return at

    def _grow(self) -> None:
        old, width = self._buckets, self._width
        self._bits += 4
        self._buckets = [None] * (1 << self._bits)
        for bucket in filter(None, old):
            for at in range(0, len(bucket), width):
                entry = bytes(bucket[at:at + width])
                index = self._index(entry)
                self._buckets[index] = (self._buckets[index] or bytearray()) + entry


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes that ids and request keys hash.

    Exactly `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
    """
    text = _CANONICAL.encode(obj)
    # surrogatepass only matters for lone surrogates, which strict UTF-8 would refuse to encode
    return text.encode("utf-8", "surrogatepass")
