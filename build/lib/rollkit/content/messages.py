"""Chat messages from input records: seed-004 `conversations` or `{"question", "image(s)"}`.

Images go into the first user turn as data URLs, in the order the record lists them. LLaVA-style
`<image>` placeholders are removed from the text the model sees, since the image itself is attached.
"""

from __future__ import annotations

import re

from rollkit.content.images import record_image_urls
from rollkit.content.inputs import image_folder, question_text

__all__ = ["build_messages", "image_parts", "prompt_turns", "question_text", "reference_answers",
           "strip_image_tokens"]

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_IMAGE_TOKEN = re.compile(r"<image>\s*")


def prompt_turns(record: dict) -> list[dict]:
    """The turns sent to the model: every turn up to the last one from the human."""
    if "conversations" in record:
        turns = [{"role": ROLES.get(t.get("from"), "user"), "text": str(t.get("value", ""))}
                 for t in record["conversations"]]
        while turns and turns[-1]["role"] == "assistant":
            turns.pop()
        return turns
    return [{"role": "user", "text": str(record["question"])}]


def reference_answers(record: dict) -> list[str]:
    """What the dataset records as correct: the trailing assistant turns, or `answer(s)`."""
    if "conversations" in record:
        answers = []
        for turn in reversed(record["conversations"]):
            if ROLES.get(turn.get("from")) != "assistant":
                break
            answers.insert(0, str(turn.get("value", "")))
        return answers
    answer = record.get("answers", record.get("answer"))
    if answer is None:
        return []
    return [str(a) for a in answer] if isinstance(answer, list) else [str(answer)]


def strip_image_tokens(text: str) -> str:
    return _IMAGE_TOKEN.sub("", text).strip()


def image_parts(record: dict, source: str, max_side: int | None) -> list[dict]:
    """Raises ImageError naming the fields tried when an image is missing or unreadable."""
    urls = record_image_urls(record, image_folder(record, source), max_side)
    return [{"type": "image_url", "image_url": {"url": url}} for url in urls]


def build_messages(record: dict, source: str, max_side: int | None = None) -> list[dict]:
    images = image_parts(record, source, max_side)
    messages = []
    for turn in prompt_turns(record):
        text = strip_image_tokens(turn["text"])
        if images and turn["role"] == "user":
            messages.append({"role": "user", "content": [{"type": "text", "text": text}, *images]})
            images = []
        else:
            messages.append({"role": turn["role"], "content": text})
    return messages
