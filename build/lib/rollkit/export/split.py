"""Splits by question and exact-duplicate rows.

A question's share point is the md5 of its `entry_id` read as a fraction of 2**64, so every
rollout of a question lands in the same split on every machine and run; `--split val=0.05` sends
the questions whose point falls in [0, 0.05) to `val` and the rest to `train`.
"""

from __future__ import annotations

import hashlib

from rollkit.store.digests import DigestTable

TRAIN = "train"


def parse_splits(text: str | None) -> list[tuple[str, float]]:
    """`val=0.05,test=0.1` -> [("val", 0.05), ("test", 0.1)]; raises ValueError on bad text."""
    if not text:
        return []
    splits = []
    for part in text.split(","):
        name, sep, share = part.partition("=")
        name = name.strip()
        if not sep or not name or name == TRAIN:
            raise ValueError(f"--split wants NAME=SHARE (not {TRAIN}), e.g. val=0.05; got {part!r}")
        try:
            value = float(share)
        except ValueError:
            raise ValueError(f"--split {part!r}: the share must be a number") from None
        if not 0 < value < 1:
            raise ValueError(f"--split {part!r}: the share must be between 0 and 1")
        splits.append((name, value))
    if sum(share for _, share in splits) >= 1:
        raise ValueError("--split shares must add up to less than 1 (the rest is train)")
    if len({name for name, _ in splits}) != len(splits):
        raise ValueError("--split names must differ")
    return splits


def share_point(entry_id: str) -> float:
    return int.from_bytes(hashlib.md5(entry_id.encode("utf-8")).digest()[:8], "big") / 2**64


def split_of(entry_id: str, splits: list[tuple[str, float]]) -> str:
    point, edge = share_point(entry_id), 0.0
    for name, share in splits:
        edge += share
        if point < edge:
            return name
    return TRAIN


class SeenRows:
    """Rows already written, as 16-byte digests of their bytes: memory stays small."""

    def __init__(self) -> None:
        self._table = DigestTable()

    def first_time(self, line: bytes) -> bool:
        digest = hashlib.md5(line).digest()
        if digest in self._table:
            return False
        self._table.add(digest)
        return True
