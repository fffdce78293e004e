"""One input record: the item a reader yields for it, the checks it must pass, its id, and where its
images are.

Readers (`rollkit.content.readers`) turn every file format into `InputItem`s; everything here is
about one record whatever file it came from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rollkit.store.digests import canonical_json

# Bump only together with a migration note: every existing output is keyed by these ids.
# 2: a record with neither `images` nor `image` is identified by its `image_path` (under 1 it was
# identified without its image, and sent without it); every other record keeps its version-1 id.
# 3: the reference answers and the options take part, when the record has them; an output started
# under version 2 keeps version 2 for as long as it is resumed (its .config.json records it).
ENTRY_ID_VERSION = 3

# Where a record's images may be named, in the order they are tried when reading the image: the
# seed's prepared inputs carry a dataset-relative `image` that is not on disk and the file itself in
# `image_path`. Ids are taken from `images`, else `image`, else `image_path` (ID_IMAGE_FIELDS), so
# the ids of records that worked before `image_path` was read stay what they were.
IMAGE_FIELDS = ("images", "image_path", "image")
ID_IMAGE_FIELDS = ("images", "image", "image_path")

HUMAN_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant")
NO_QUESTION = 'no question: expected "conversations" with a human turn or a "question" string'

class InputError(Exception):
    """An input path that cannot be read at all: fatal for a run."""


class EmptyInput(InputError):
    """An input with no records, or a range that selects none of them: bad input (exit 2)."""


def one_based_range(start: int | None, end: int | None, total: int, what: str,
                    flags: tuple[str, str] = ("--start", "--end")) -> slice:
    """The 0-based slice of the seed's 1-based, inclusive range `start..end` over `total` things
    (missing ends: the first, the last). EmptyInput, saying what exists, when it selects nothing."""
    first, last = 1 if start is None else start, total if end is None else end
    if total == 0:
        raise EmptyInput(f"{what}: there is nothing there")
    if first < 1 or last < first or first > total:
        given = " ".join(f"{flag} {value}" for flag, value in zip(flags, (start, end), strict=True)
                         if value is not None)
        raise EmptyInput(f"{what}: {total} in all, numbered 1 to {total}; {given} selects none")
    return slice(first - 1, min(last, total))


@dataclass(frozen=True)
class InputItem:
    """One record of the input, or the reason it could not be read.

    `line` is the 1-based line number in a JSONL or CSV file, or the 1-based index of the element
    in a JSON list file or the row of a table (`unit` is then "item" or "row", and messages say
    `file.json item 3`, `file.parquet row 3`).
    """

    source: str
    line: int
    record: dict | None
    error: str | None = None
    unit: str = "line"

    @property
    def in_list(self) -> bool:
        return self.unit != "line"

    @property
    def location(self) -> str:
        """Stable `path:line` key of this item (also used to key errors of unreadable lines)."""
        return f"{self.source}:{self.line}"

    @property
    def where(self) -> str:
        """Human wording: `path:17` for lines, `path item 3` / `path row 3` for list elements and table rows."""
        return f"{self.source} {self.unit} {self.line}" if self.in_list else self.location


def human_turns(record: dict) -> list[str]:
    """Values of the human/user turns of a `conversations` record, in order."""
    return [t["value"] for t in record["conversations"] if t.get("from") in HUMAN_ROLES]


def question_text(record: dict) -> str:
    """The question to ask: the `question` string, or the human turns joined by a blank line."""
    if record.get("conversations") is not None:
        turns = human_turns(record)
        if not turns:
            raise ValueError(NO_QUESTION)
        return "\n\n".join(turns)
    question = record.get("question")
    if not isinstance(question, str):
        raise ValueError(NO_QUESTION)
    return question


def field_refs(record: dict, name: str) -> list[str]:
    """The references of one image field: a string is one, a list is many, absent is none."""
    value = record.get(name)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def image_refs(record: dict) -> list[str]:
    """Image references as given, for ids: `images`, else `image`, else `image_path`, else `[]`."""
    for name in ID_IMAGE_FIELDS:
        if record.get(name) is not None:
            return field_refs(record, name)
    return []


def is_url(ref: str) -> bool:
    return ref.startswith(("http://", "https://", "data:"))


def given_answers(record: dict) -> list[str]:
    """The reference answers as the record gives them: its trailing assistant turns, or `answers`
    (a list, or one value), or `answer`; `[]` when it has none."""
    if isinstance(record.get("conversations"), list):
        answers: list[str] = []
        for turn in reversed(record["conversations"]):
            if not isinstance(turn, dict) or turn.get("from") not in ASSISTANT_ROLES:
                break
            answers.insert(0, str(turn.get("value", "")))
        return answers
    answer = record.get("answers", record.get("answer"))
    if answer is None:
        return []
    return [str(a) for a in answer] if isinstance(answer, list) else [str(answer)]


def entry_id(record: dict, version: int = ENTRY_ID_VERSION) -> str:
    """The id of an input record (ENTRY_ID_VERSION 3). A file-format promise: never change it silently.

    entry_id = md5 hex of canonical_json(P), where canonical_json is `json.dumps(obj, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)` encoded as UTF-8, and P = {"question": Q, "images": I}
    with, from version 3, "answers": A when the record has a reference answer and "options": O when
    it has options:
    - Q: if the record has `conversations` (a list of {"from", "value"}), the list of the `value`s
      of its turns whose `from` is "human" or "user", in order; otherwise the `question` string.
    - I: the `images` list as given; else `[image]` when `image` is a string (or `image` itself
      when it is a list); else the same of `image_path` (version 2); else `[]`.
      References are not normalised: "a.jpg" and "./a.jpg" differ.
    - A (version 3): `given_answers`, each as text: the trailing assistant turns, or `answers`, or
      `[answer]`. So one question text in two datasets with different answers is two entries.
    - O (version 3): `options` as given (a list or an object).
    Other fields (uids, ...) do not take part; key order never changes an id. A record with neither
    an answer nor options keeps its version-2 id. `version=2` gives the id an older output is keyed
    by (a resumed run keeps it: see `id_version_for`).
    """
    if record.get("conversations") is not None:
        question: str | list[str] = human_turns(record)
    else:
        question = question_text(record)
    payload: dict[str, Any] = {"question": question, "images": image_refs(record)}
    if version >= 3:
        answers = given_answers(record)
        if answers:
            payload["answers"] = answers
        if record.get("options") is not None:
            payload["options"] = record["options"]
    return hashlib.md5(canonical_json(payload)).hexdigest()


def record_id(record: dict, version: int = ENTRY_ID_VERSION) -> str:
    """Records that already carry an id (outputs of an earlier stage) keep it."""
    existing = record.get("entry_id")
    return existing if isinstance(existing, str) and existing else entry_id(record, version)


def id_version_for(output: str | Path) -> int:
    """The entry-id version an output is keyed by, so a resumed run finds its finished work: the one
    its `.config.json` records; 2 for an output (or errors file) without one; the current version
    for a new output."""
    config = Path(f"{output}.config.json")
    try:
        recorded = json.loads(config.read_text(encoding="utf-8")).get("entry_id_version")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if isinstance(recorded, int) and 1 <= recorded <= ENTRY_ID_VERSION:
        return recorded
    started = any(Path(p).is_file() and Path(p).stat().st_size for p in (output, f"{output}.errors.jsonl"))
    return 2 if started else ENTRY_ID_VERSION


def _kind(value: Any) -> str:
    names = {list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _conversation_error(turns: Any) -> str | None:
    if not isinstance(turns, list) or not all(isinstance(t, dict) for t in turns):
        return '"conversations" must be a list of {"from", "value"} objects'
    for n, turn in enumerate(turns, 1):
        if turn.get("from") in HUMAN_ROLES and not isinstance(turn.get("value"), str):
            return f'"conversations" turn {n}: "value" must be a string'
    return None if human_turns({"conversations": turns}) else NO_QUESTION


def validate_record(record: Any) -> str | None:
    """Why this parsed JSON value is not a usable input record, or None when it is."""
    if not isinstance(record, dict):
        return f"record is {_kind(record)}, expected an object"
    if record.get("conversations") is not None:
        problem = _conversation_error(record["conversations"])
        if problem:
            return problem
    elif "question" not in record:
        return NO_QUESTION
    elif not isinstance(record["question"], str):
        return f'"question" must be a string, not {_kind(record["question"])}'
    elif not record["question"].strip():
        return '"question" is empty'
    if record.get("images") is not None and not _is_str_list(record["images"]):
        return '"images" must be a list of strings'
    for name in ("image", "image_path"):
        value = record.get(name)
        if value is not None and not (isinstance(value, str) or _is_str_list(value)):
            return f'"{name}" must be a string or a list of strings'
    return None


def image_folder(record: dict, source_file: str | Path) -> Path:
    """The folder relative image references point into: `image_root` when an earlier stage recorded it
    (its output usually lives elsewhere), else the folder of the file the record was read from."""
    root = record.get("image_root")
    return Path(root) if isinstance(root, str) and root else _folder_of(str(source_file))


@lru_cache(maxsize=256)
def _folder_of(source_file: str) -> Path:
    # resolve() touches the file system; a run reads few files and asks for every record.
    return Path(source_file).resolve().parent


def image_root_field(record: dict, source_file: str | Path) -> dict:
    """`{"image_root": folder}` for an output record whose images are relative paths, so the next
    stage finds them wherever the output is written; `{}` when nothing needs it."""
    relative = any(not is_url(ref) and not Path(ref).expanduser().is_absolute()
                   for name in IMAGE_FIELDS for ref in field_refs(record, name))
    return {"image_root": str(image_folder(record, source_file))} if relative else {}


def resolve_image_path(ref: str, folder: str | Path) -> Path:
    """Where an image reference points: absolute paths as they are, others from `folder`
    (see `image_folder`). `~` is expanded. URLs and data URLs are not paths; callers check first."""
    path = Path(ref).expanduser()
    return path if path.is_absolute() else Path(folder) / path


class RecordError(ValueError):
    """A record that cannot be made into a request, e.g. it lacks a field the prompt template fills
    from: written to the errors file as `bad_input`, never a traceback."""
