"""Reading input datasets: every record of files, folders and glob patterns, in order, streamed.

Formats are read as they are (see `readers`: JSON/JSONL, CSV/TSV, Parquet, Arrow, Hugging Face
dataset folders), embedded images become files (`embedded`), and chat shapes and mapped field
names are brought to the fields rollkit reads (`fields`). Memory does not grow with the size of the
dataset. A malformed record never stops a run; it comes out as an `InputItem` whose `error` names
the file and line (or row).

The record itself (ids, checks, image references) is `records`; its names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from rollkit.content.embedded import EmbeddedImageError, image_cache, unpack_images
from rollkit.content.fields import FieldMap, check_item, conform, options_error
from rollkit.content.readers import (
    SIDE_FILE_SUFFIXES,
    Raw,
    expand_paths,
    parse_json_line,
    raw_rows,
    row_count,
)
from rollkit.content.records import (
    ENTRY_ID_VERSION,
    HUMAN_ROLES,
    ID_IMAGE_FIELDS,
    IMAGE_FIELDS,
    NO_QUESTION,
    EmptyInput,
    InputError,
    InputItem,
    RecordError,
    entry_id,
    field_refs,
    given_answers,
    human_turns,
    id_version_for,
    image_folder,
    image_refs,
    image_root_field,
    is_url,
    one_based_range,
    question_text,
    record_id,
    resolve_image_path,
    validate_record,
)

__all__ = [
    "ENTRY_ID_VERSION", "HUMAN_ROLES", "ID_IMAGE_FIELDS", "IMAGE_FIELDS", "NO_QUESTION", "SIDE_FILE_SUFFIXES",
    "EmptyInput", "FieldMap", "InputError", "InputItem", "RecordError", "check_fields", "check_not_empty",
    "count_inputs", "entry_id", "expand_paths", "field_refs", "given_answers", "human_turns", "id_version_for", "image_folder", "image_refs",
    "image_root_field", "is_url", "iter_inputs", "one_based_range", "question_text", "record_id",
    "resolve_image_path", "validate_record",
]

NO_FIELDS = FieldMap()
PathsArg = str | Path | Sequence[str | Path]


def count_inputs(paths: PathsArg, *, start: int | None = None, end: int | None = None) -> int | None:
    """How many records `iter_inputs` will yield, for a progress bar's total; None when that means
    parsing (a JSON list or a CSV file among the inputs)."""
    total = 0
    for path in expand_paths(paths):
        count = row_count(path)
        if count is None:
            return None
        total += count
    return len(range(total)[start:end])


def check_not_empty(paths: PathsArg, *, start: int | None = None, end: int | None = None) -> None:
    """EmptyInput when the input has no record, or the range (0-based start, exclusive end, as
    `iter_inputs` takes it) selects none; the message says how many records there are. Reads only
    up to the first record of the range when there is one."""
    files = expand_paths(paths)
    first = start or 0
    if (end is None or end > first) and next(islice(raw_rows(files), first, None), None) is not None:
        return
    total = sum(1 for _ in raw_rows(files))
    names = ", ".join(str(f) for f in files[:3]) + (" ..." if len(files) > 3 else "")
    if total == 0:
        raise EmptyInput(f"{names}: no input records")
    shown = f"--start {first + 1}" + ("" if end is None else f" --end {end}")
    raise EmptyInput(f"{names}: {total} records (1 to {total}); {shown} selects none")


def _record_of(raw: Raw, fields: FieldMap) -> InputItem:
    """The item of one raw row, its record in rollkit's fields but not yet validated."""
    if isinstance(raw, InputItem):
        return raw
    source, number, value, unit = raw
    if isinstance(value, bytes):  # a JSONL line, parsed only now that it is inside start/end
        value = parse_json_line(source, number, value)
        if isinstance(value, InputItem):
            return value
    if isinstance(value, dict):
        try:
            value = conform(unpack_images(value), fields)
        except EmbeddedImageError as exc:
            return _bad(source, number, unit, str(exc))
    return InputItem(source, number, value, unit=unit)


def _bad(source: str, number: int, unit: str, problem: str) -> InputItem:
    where = f"{source}:{number}" if unit == "line" else f"{source} {unit} {number}"
    return InputItem(source, number, None, f"{where}: {problem}", unit=unit)


def _to_item(raw: Raw, fields: FieldMap, image_root: str | None) -> InputItem:
    item = _record_of(raw, fields)
    if item.error:
        return item
    record: Any = item.record
    problem = validate_record(record)
    if problem is None and record.get("options") is not None:
        problem = options_error(record["options"])
    if problem:
        return _bad(item.source, item.line, item.unit, problem)
    if image_root is not None and record.get("image_root") != str(image_cache().resolve()):
        # recorded like an earlier stage's `image_root`, so outputs carry it on to the next stage;
        # images unpacked from the table stay in the cache, wherever --image-root points
        record = {**record, "image_root": image_root}
    return InputItem(item.source, item.line, record, unit=item.unit)


def iter_inputs(paths: PathsArg, *, start: int | None = None, end: int | None = None,
                image_root: str | Path | None = None, fields: FieldMap = NO_FIELDS) -> Iterator[InputItem]:
    """Stream the input records of files, folders and glob patterns, in order.

    Blank lines are skipped. `start`/`end` (0-based, end exclusive) slice the sequence of records
    over all files, counting malformed lines too, so machines that split one dataset agree on the
    split; lines before `start` are not parsed. Missing or unreadable paths raise InputError at once.
    `image_root` (`--image-root DIR`): relative image paths resolve against DIR instead of the
    input file's folder (or an `image_root` an earlier stage recorded). `fields` maps the dataset's
    field names to rollkit's (see `fields.FieldMap`).
    """
    if (start or 0) < 0 or (end or 0) < 0:
        raise ValueError("start and end must be >= 0")
    files = _readable(paths)
    root = None if image_root is None else str(Path(image_root).expanduser().resolve())
    return (_to_item(raw, fields, root) for raw in islice(raw_rows(files), start, end))


def _readable(paths: PathsArg) -> list[Path]:
    files = expand_paths(paths)
    for path in files:
        try:
            if path.is_file():
                open(path, "rb").close()
        except OSError as e:
            raise InputError(f"{path}: cannot read ({e.strerror or e})") from e
    return files


def check_fields(paths: PathsArg, fields: FieldMap = NO_FIELDS, *, needs_answer: bool = False,
                 needs: tuple[str, ...] = ()) -> None:
    """Read the first readable record of each input and raise FieldError (exit 2) when a field rollkit
    needs is absent while others are present, naming the input, the fields and the flag to map them.
    `needs`: record fields a prompt template fills from (e.g. `options`)."""
    for path in _readable(paths):
        for raw in raw_rows([path]):
            item = _record_of(raw, fields)
            if item.record is not None and isinstance(item.record, dict):
                check_item(item, fields, needs_answer=needs_answer, needs=needs)
                break
