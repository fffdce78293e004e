"""Chat messages from input records: seed-004 `conversations` or `{"question", "image(s)"}`.

Images go into the first user turn as data URLs, in the order the record lists them. LLaVA-style
`<image>` placeholders are removed from the text the model sees, since the image itself is attached.
"""

from __future__ import annotations

import re

from rollkit.content.fields import option_letters
from rollkit.content.images import record_image_urls
from rollkit.content.inputs import given_answers, image_folder, question_text

__all__ = ["build_messages", "image_parts", "options_text", "prompt_question", "prompt_turns", "question_text",
           "reference_answers", "strip_image_tokens"]

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
_IMAGE_TOKEN = re.compile(r"<image>\s*")


def options_text(record: dict) -> str:
    """A multiple-choice record's options, one a line with its letter (`A. red`); "" without options."""
    options = record.get("options")
    return "\n".join(f"{letter}. {text}" for letter, text in option_letters(options)) if options else ""


def prompt_question(record: dict) -> str:
    """The question as the model sees it: with the options under it, when the record has options."""
    options = options_text(record)
    question = question_text(record)
    return f"{question}\n\nOptions:\n{options}" if options else question


def prompt_turns(record: dict) -> list[dict]:
    """The turns sent to the model: every turn up to the last one from the human."""
    if "conversations" in record:
        turns = [{"role": ROLES.get(t.get("from"), "user"), "text": str(t.get("value", ""))}
                 for t in record["conversations"]]
        while turns and turns[-1]["role"] == "assistant":
            turns.pop()
        if record.get("options") and turns:
            turns[-1]["text"] += f"\n\nOptions:\n{options_text(record)}"
        return turns
    return [{"role": "user", "text": prompt_question(record)}]


def reference_answers(record: dict) -> list[str]:
    """What the dataset records as correct: the trailing assistant turns, or `answer(s)`. With options,
    an answer given as a letter or as an option's text stands for both (`B` and `red`), so a reply
    naming either is checked right."""
    answers = given_answers(record)
    return with_option_letters(answers, record.get("options"))


def with_option_letters(answers: list[str], options) -> list[str]:
    """`answers` with each option they name given both ways: its letter and its text."""
    if not options:
        return answers
    pairs = option_letters(options)
    out: list[str] = []
    for answer in answers:
        key = answer.strip().strip("().").strip()
        named = [(letter, text) for letter, text in pairs
                 if key.upper() == letter.upper() or key.casefold() == text.strip().casefold()]
        for value in (answer, *(v for pair in named for v in pair)):
            if value not in out:
                out.append(value)
    return out


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
