"""Reading input datasets and the ids that tie every output line back to its input.

Inputs are JSONL files, JSON files holding a top-level list, folders of those, or glob patterns.
They are streamed: memory does not grow with the size of the dataset. A malformed record never
stops a run; it comes out as an `InputItem` whose `error` names the file and line.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from rollkit.content.jsonlist import ListSyntaxError, list_elements
from rollkit.store.digests import canonical_json

# Bump only together with a migration note: every existing output is keyed by these ids.
# 2: a record with neither `images` nor `image` is identified by its `image_path` (under 1 it was
# identified without its image, and sent without it); every other record keeps its version-1 id.
ENTRY_ID_VERSION = 2

# Where a record's images may be named, in the order they are tried when reading the image: the
# seed's prepared inputs carry a dataset-relative `image` that is not on disk and the file itself in
# `image_path`. Ids are taken from `images`, else `image`, else `image_path` (ID_IMAGE_FIELDS), so
# the ids of records that worked before `image_path` was read stay what they were.
IMAGE_FIELDS = ("images", "image_path", "image")
ID_IMAGE_FIELDS = ("images", "image", "image_path")

HUMAN_ROLES = ("human", "user")
NO_QUESTION = 'no question: expected "conversations" with a human turn or a "question" string'

# files rollkit writes next to an output (<output>.errors.jsonl, ...): skipped when reading a folder
SIDE_FILE_SUFFIXES = (".errors.jsonl", ".journal.jsonl", ".config.json", ".summary.json")

_BOM = b"\xef\xbb\xbf"


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

    `line` is the 1-based line number in a JSONL file, or the 1-based index of the element
    in a JSON list file (`in_list` is then True and messages say `file.json item 3`).
    """

    source: str
    line: int
    record: dict | None
    error: str | None = None
    in_list: bool = False

    @property
    def location(self) -> str:
        """Stable `path:line` key of this item (also used to key errors of unreadable lines)."""
        return f"{self.source}:{self.line}"

    @property
    def where(self) -> str:
        """Human wording: `path:17` for JSONL lines, `path item 3` for JSON list elements."""
        return f"{self.source} item {self.line}" if self.in_list else self.location


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


def entry_id(record: dict) -> str:
    """The id of an input record (ENTRY_ID_VERSION 2). A file-format promise: never change it silently.

    entry_id = md5 hex of canonical_json({"question": Q, "images": I}), where canonical_json is
    `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` encoded as UTF-8, and
    - Q: if the record has `conversations` (a list of {"from", "value"}), the list of the `value`s
      of its turns whose `from` is "human" or "user", in order (assistant/gpt turns, such as the
      final answer, are left out); otherwise the `question` string.
    - I: the `images` list as given; else `[image]` when `image` is a string (or `image` itself
      when it is a list); else the same of `image_path` (ENTRY_ID_VERSION 2); else `[]`.
      References are not normalised: "a.jpg" and "./a.jpg" differ.
    Other fields (answers, uids, ...) do not take part, so the same question about a different
    image is a different entry, and key order or extra fields never change an id.
    """
    if record.get("conversations") is not None:
        question: str | list[str] = human_turns(record)
    else:
        question = question_text(record)
    payload = {"question": question, "images": image_refs(record)}
    return hashlib.md5(canonical_json(payload)).hexdigest()


def record_id(record: dict) -> str:
    """Records that already carry an id (outputs of an earlier stage) keep it."""
    existing = record.get("entry_id")
    return existing if isinstance(existing, str) and existing else entry_id(record)

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


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _folder_files(folder: Path) -> list[Path]:
    # a folder of outputs used as the next stage's input must not read their side files as data
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix in (".json", ".jsonl") and not p.name.endswith(SIDE_FILE_SUFFIXES)
    )


def expand_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Files named by paths, folders (their *.json/*.jsonl, sorted) and glob patterns, in order.

    Folders and patterns leave out rollkit's side files (SIDE_FILE_SUFFIXES); a file named
    explicitly is always read.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = _folder_files(path)
        elif path.is_file():
            found = [path]
        elif _has_magic(str(given)):
            matches = sorted(m for m in glob.glob(str(given), recursive=True) if not m.endswith(SIDE_FILE_SUFFIXES))
            found = [f for match in matches for f in expand_paths(match)]
        else:
            raise InputError(f"{given}: no such file or folder")
        if not found:
            raise InputError(f"{given}: no .json or .jsonl input found there")
        files.extend(found)
    return files


def _parse_line(source: str, number: int, line: bytes) -> InputItem:
    where = f"{source}:{number}"
    try:
        value = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        return InputItem(source, number, None, f"{where}: invalid UTF-8 at byte {e.start + 1}")
    except json.JSONDecodeError as e:
        return InputItem(source, number, None, f"{where}: invalid JSON ({e.msg} at column {e.colno})")
    problem = validate_record(value)
    if problem:
        return InputItem(source, number, None, f"{where}: {problem}")
    return InputItem(source, number, value)


def _jsonl_lines(handle, source: str) -> Iterator[tuple[str, int, bytes]]:
    for number, line in enumerate(handle, 1):
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if line and not line.isspace():
            yield source, number, line


def _list_items(handle: TextIO, source: str) -> Iterator[InputItem | tuple[str, int, Any]]:
    try:
        for index, value in list_elements(handle):
            yield source, index, value
    except ListSyntaxError as e:
        yield _list_error(source, e.index, e.problem)


def _list_error(source: str, index: int, problem: str) -> InputItem:
    # one syntax error makes the rest of a JSON list unreadable: there is no next line to resync on
    message = f"{source} item {index}: invalid JSON ({problem}); the rest of the file is skipped"
    return InputItem(source, index, None, message, in_list=True)


def count_inputs(paths: str | Path | Sequence[str | Path], *, start: int | None = None,
                 end: int | None = None) -> int | None:
    """How many records `iter_inputs` will yield, for a progress bar's total: non-blank lines of
    JSONL files (about 1 GB/s); None when a JSON list is among the inputs (counting means parsing)."""
    total = 0
    for path in expand_paths(paths):
        if _first_char(path) == "[":
            return None
        with open(path, "rb") as handle:
            total += sum(1 for line in handle if line.strip())
    return len(range(total)[start:end])


def check_not_empty(paths: str | Path | Sequence[str | Path], *, start: int | None = None,
                    end: int | None = None) -> None:
    """EmptyInput when the input has no record, or the range (0-based start, exclusive end, as
    `iter_inputs` takes it) selects none; the message says how many records there are. Reads only
    up to the first record of the range when there is one."""
    files = expand_paths(paths)
    first = start or 0
    if (end is None or end > first) and next(islice(_raw_items(files), first, None), None) is not None:
        return
    total = sum(1 for _ in _raw_items(files))
    names = ", ".join(str(f) for f in files[:3]) + (" ..." if len(files) > 3 else "")
    if total == 0:
        raise EmptyInput(f"{names}: no input records")
    shown = f"--start {first + 1}" + ("" if end is None else f" --end {end}")
    raise EmptyInput(f"{names}: {total} records (1 to {total}); {shown} selects none")


def _first_char(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(4096).removeprefix(_BOM)
        while head:
            stripped = head.lstrip()
            if stripped:
                return chr(stripped[0])
            head = handle.read(1 << 16)
    return ""


def _raw_items(files: list[Path]) -> Iterator[InputItem | tuple[str, int, Any]]:
    """Every non-blank line or list element, unparsed where parsing can wait (JSONL)."""
    for path in files:
        source = str(path)
        try:
            if _first_char(path) == "[":
                with open(path, encoding="utf-8-sig") as handle:
                    yield from _list_items(handle, source)
            else:
                with open(path, "rb") as handle:
                    yield from _jsonl_lines(handle, source)
        except UnicodeDecodeError as e:
            yield InputItem(source, 0, None, f"{source}: invalid UTF-8 ({e.reason}); the rest of the file is skipped")
        except OSError as e:
            raise InputError(f"{source}: cannot read ({e.strerror or e})") from e


def _to_item(raw: InputItem | tuple[str, int, Any]) -> InputItem:
    if isinstance(raw, InputItem):
        return raw
    source, number, value = raw
    if isinstance(value, bytes):  # a JSONL line, parsed only now that it is inside start/end
        return _parse_line(source, number, value)
    problem = validate_record(value)
    if problem:
        return InputItem(source, number, None, f"{source} item {number}: {problem}", in_list=True)
    return InputItem(source, number, value, in_list=True)


def _with_image_root(root: str, item: InputItem) -> InputItem:
    # recorded like an earlier stage's `image_root`, so outputs carry it on to the next stage
    if item.record is None:
        return item
    return InputItem(item.source, item.line, {**item.record, "image_root": root}, item.error, item.in_list)


def iter_inputs(
    paths: str | Path | Sequence[str | Path], *, start: int | None = None, end: int | None = None,
    image_root: str | Path | None = None,
) -> Iterator[InputItem]:
    """Stream the input records of files, folders and glob patterns, in order.

    JSON list or JSONL is told by the first non-space character (`[` means a list). Blank lines
    are skipped. `start`/`end` (0-based, end exclusive) slice the sequence of records over all
    files, counting malformed lines too, so machines that split one dataset agree on the split;
    lines before `start` are not parsed. Missing or unreadable paths raise InputError at once.
    `image_root` (`--image-root DIR`): relative image paths resolve against DIR instead of the
    input file's folder (or an `image_root` an earlier stage recorded).
    """
    if (start or 0) < 0 or (end or 0) < 0:
        raise ValueError("start and end must be >= 0")
    for path in (files := expand_paths(paths)):
        try:
            open(path, "rb").close()
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
    items = map(_to_item, islice(_raw_items(files), start, end))
    if image_root is None:
        return items
    root = str(Path(image_root).expanduser().resolve())
    return (_with_image_root(root, item) for item in items)
