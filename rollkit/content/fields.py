"""Records in the shapes datasets come in, brought to the fields rollkit reads, and the check at
start-up that no field is guessed silently.

Shapes read as they are: `{"question", "answer(s)", "image(s)"/"image_path", "options"}`;
LLaVA/ShareGPT `conversations` (`{"from", "value"}` turns, or `{"role", "content"}`); OpenAI
`messages` (`{"role", "content"}`, content a string or parts: `text`, `image_url`), turned into
`conversations` with their `image_url`s in `images`.

Other field names are mapped with `FieldMap` (`--question-field`, `--answer-field`, `--image-field`,
`--options-field`): the field's value moves to the name rollkit reads (`question`, `answer`,
`image`/`images`, `options`). `--options-field A,B,C,D` gathers one column per option.
`check_fields` reads the first record of each input and stops the run (exit 2) when a field
rollkit needs is absent while fields it does not know are present, naming them and the flag to use.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from rollkit.content.records import EmptyInput, InputItem, validate_record

KNOWN_FIELDS = {"question", "conversations", "messages", "answer", "answers", "images", "image", "image_path",
                "options", "image_root", "entry_id", "id", "uid"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")
QUESTION_HINTS = ("problem", "prompt", "query", "instruction", "input", "text", "Question")
ANSWER_HINTS = ("solution", "label", "target", "output", "gt", "ground_truth", "final_answer", "response",
                "Answer")
OPTION_HINTS = ("choices", "option", "Options", "Choices")
_LETTER = re.compile(r"^[A-Z]$")
NONE = "none"  # --image-field none: the dataset has no images, whatever its fields look like
ROLE_FROM = {"user": "human", "assistant": "gpt", "system": "system", "human": "human", "gpt": "gpt"}


class FieldError(EmptyInput):
    """A field rollkit needs is absent while others are present: bad input, exit 2."""


@dataclass(frozen=True)
class FieldMap:
    """Which of a dataset's fields hold the question, answer, image(s) and options (None: the usual name)."""

    question: str | None = None
    answer: str | None = None
    image: str | None = None
    options: tuple[str, ...] = ()

    @classmethod
    def from_flags(cls, question: str | None = None, answer: str | None = None, image: str | None = None,
                   options: str | None = None) -> FieldMap:
        columns = tuple(name.strip() for name in (options or "").split(",") if name.strip())
        return cls(question or None, answer or None, image or None, columns)


def _move(record: dict, given: str | None, name: str) -> None:
    if given and given != name and given in record:
        record[name] = record.pop(given)


def _parsed_options(value: Any) -> Any:
    # a CSV cell holds text: a JSON list or object in it is the options themselves
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _turn(turn: Any) -> Any:
    if isinstance(turn, dict) and "from" not in turn and "role" in turn:
        return {"from": ROLE_FROM.get(turn["role"], turn["role"]), "value": turn.get("content")}
    return turn


def _from_messages(record: dict) -> dict:
    """An OpenAI `messages` record as `conversations`, its image_url parts as `images`."""
    turns, images = [], []
    for message in record["messages"]:
        if not isinstance(message, dict):
            return record  # left for validate_record to name
        content = message.get("content")
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            images += [p["image_url"]["url"] if isinstance(p.get("image_url"), dict) else p.get("image_url")
                       for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
            content = "\n".join(texts)
        turns.append({"from": ROLE_FROM.get(message.get("role"), message.get("role")), "value": content})
    out = {k: v for k, v in record.items() if k != "messages"}
    out["conversations"] = turns
    if images and "images" not in out:
        out["images"] = images
    return out


def conform(record: dict, fields: FieldMap) -> dict:
    """The record with mapped fields under rollkit's names and chat shapes as `conversations`."""
    record = dict(record)
    _move(record, fields.question, "question")
    _move(record, fields.answer, "answer")
    if fields.image and fields.image in record:
        value = record.pop(fields.image)
        record["images" if isinstance(value, list) else "image"] = value
    if len(fields.options) == 1:
        _move(record, fields.options[0], "options")
    elif fields.options:
        record["options"] = {name: record.pop(name) for name in fields.options if name in record}
    if "options" in record:
        record["options"] = _parsed_options(record["options"])
    if record.get("messages") is not None and record.get("conversations") is None and isinstance(
            record["messages"], list):
        record = _from_messages(record)
    if isinstance(record.get("conversations"), list):
        record["conversations"] = [_turn(t) for t in record["conversations"]]
    return record


def options_error(options: Any) -> str | None:
    if isinstance(options, list) and options and all(isinstance(o, str | int | float) for o in options):
        return None if len(options) <= 26 else '"options" has more than 26 entries'
    if isinstance(options, dict) and options and all(isinstance(o, str | int | float) for o in options.values()):
        return None
    return '"options" must be a non-empty list of strings or an object of letter: text'


def option_letters(options: list | dict) -> list[tuple[str, str]]:
    """(letter, text) of each option: A, B, ... for a list, the keys of an object as given."""
    if isinstance(options, dict):
        return [(str(k).strip(), str(v)) for k, v in options.items()]
    return [(chr(ord("A") + i), str(text)) for i, text in enumerate(options)]


def _looks_like_image(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_looks_like_image(v) for v in value)
    return isinstance(value, str) and (value.lower().endswith(IMAGE_SUFFIXES) or value.startswith("data:image/"))


def _hint(record: dict, hints: tuple[str, ...], unknown: list[str]) -> str:
    return next((name for name in hints if name in record), unknown[0] if unknown else "NAME")


def field_problem(record: dict, fields: FieldMap = FieldMap(), *, needs_answer: bool = False,
                  needs: tuple[str, ...] = ()) -> str | None:
    """Why rollkit cannot use this (conformed) record's fields as they are named, with the flag to fix it;
    None when it can. `needs`: record fields a prompt template fills from. `--image-field none` and
    `--options-field none` say a field that looks like images or options is not one."""
    found = f"fields found: {', '.join(sorted(record))}"
    # an earlier stage's output (it carries an entry_id) was checked when its input was read
    unknown = [] if "entry_id" in record else sorted(k for k in record if k not in KNOWN_FIELDS)
    if validate_record(record) and "question" not in record and "conversations" not in record:
        name = _hint(record, QUESTION_HINTS, [k for k in unknown if isinstance(record[k], str)])
        return f"no question field ({found}); name it with --question-field {name}"
    if fields.image != NONE and not any(record.get(f) is not None for f in ("images", "image", "image_path")):
        pictures = [k for k in unknown if _looks_like_image(record[k])]
        if pictures:
            return (f'"{pictures[0]}" looks like an image but is not read as one ({found}); '
                    f"name it with --image-field {pictures[0]}")
    if "options" not in record and fields.options != (NONE,):
        letters = [k for k in unknown if _LETTER.match(k)]
        named = [k for k in unknown if k in OPTION_HINTS and isinstance(record[k], list | dict | str)]
        if named or len(letters) >= 2:
            flag = named[0] if named else ",".join(letters)
            return f"options would be left out of the prompt ({found}); name them with --options-field {flag}"
    if needs_answer and not any(record.get(f) is not None for f in ("answer", "answers")) and \
            "conversations" not in record and "entry_id" not in record:
        return f"no answer field ({found}); name it with --answer-field {_hint(record, ANSWER_HINTS, unknown)}"
    for name in needs:
        if record.get(name) is None:
            return f"the prompt template uses {{{{{name}}}}} but the record has no \"{name}\" ({found})" + (
                "; name the options field with --options-field" if name == "options" else "")
    return None


def check_item(item: InputItem, fields: FieldMap, *, needs_answer: bool = False, needs: tuple[str, ...] = ()) -> None:
    """FieldError naming the input and what to fix, when the item's record cannot be used as named."""
    if item.record is None:
        return
    problem = field_problem(item.record, fields, needs_answer=needs_answer, needs=needs)
    if problem:
        raise FieldError(f"{item.where}: {problem}")
