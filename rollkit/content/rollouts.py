"""Rollout files as every later part reads them: each rollout with its id, and its question as a
judge (or a trained PRM, or a report) should read it."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from rollkit.content.inputs import InputItem, iter_inputs, question_text, record_id
from rollkit.store.digests import DigestTable, id_digest

_QUESTION_BLOCK = re.compile(r"<question>(.*?)</question>", re.DOTALL | re.IGNORECASE)
_IMAGE_TOKEN = re.compile(r"<image>\s*", re.IGNORECASE)


def rollout_items(paths: str | Path | Sequence[str | Path],
                  image_root: str | Path | None = None) -> Iterator[tuple[InputItem, str | None]]:
    """Every input item with its rollout id (None for unreadable items)."""
    seen = DigestTable(with_values=True)  # entry -> rollouts so far; digests, so memory stays small
    for item in iter_inputs(paths, image_root=image_root):
        record = item.record
        if record is None:
            yield item, None
            continue
        given = next((v for v in (record.get("rollout_id"), record.get("unique_id")) if isinstance(v, str) and v),
                     None)
        if given is not None:
            yield item, given
            continue
        entry = record_id(record)
        digest = id_digest(entry)
        k = seen.get(digest) or 0
        seen.add(digest, k + 1)
        yield item, f"{entry}:r{k}"


def judge_question(record: dict) -> str:
    """The question as the judge should read it.

    `original_question` when the rollout kept it; otherwise the `question`, and when that holds the
    whole rollout prompt (as the seed's rollouts do), the text of its `<question>` block.
    """
    original = record.get("original_question")
    text = original if isinstance(original, str) and original.strip() else question_text(record)
    blocks = _QUESTION_BLOCK.findall(text)
    if blocks:
        text = blocks[0]
    return _IMAGE_TOKEN.sub("", text).strip()
