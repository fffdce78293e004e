"""Which files an input names, and their rows, whatever the file format.

Formats, told by the file's extension (and, for other names, by its first bytes):
- `.jsonl`/`.json`/`.ndjson`: JSON lines, or one top-level JSON list (the first non-space character is `[`);
- `.csv`/`.tsv`: a header row, then one record per row (`csv` module; values are strings);
- `.parquet`: read in batches (pyarrow), so memory stays flat for any size;
- `.arrow` and a Hugging Face dataset folder written by `save_to_disk` (`state.json` beside
  `data-*.arrow`): Arrow IPC streams, read batch by batch.

Rows come out raw (`Raw`): JSONL lines stay bytes until they are inside --start/--end, so a range
deep into a big file costs no parsing; a row that cannot be read comes out as an `InputItem` error
naming the file and line (or row), and the run goes on with the next one.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rollkit.content.jsonlist import ListSyntaxError, list_elements
from rollkit.content.records import InputError, InputItem
from rollkit.content.tables import (
    arrow_rows,
    dataset_folder_files,
    is_dataset_folder,
    parquet_rows,
    table_row_count,
)

# files rollkit writes next to an output (<output>.errors.jsonl, ...): skipped when reading a folder
SIDE_FILE_SUFFIXES = (".errors.jsonl", ".journal.jsonl", ".config.json", ".summary.json")
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv", ".tsv")
TABLE_SUFFIXES = (".parquet", ".arrow")
DATA_SUFFIXES = (*JSON_SUFFIXES, *CSV_SUFFIXES, *TABLE_SUFFIXES)

_BOM = b"\xef\xbb\xbf"
_PARQUET_MAGIC = b"PAR1"

# (source, number, value, unit): value is a JSONL line's bytes, or a parsed value
Raw = InputItem | tuple[str, int, Any, str]


def _has_magic(text: str) -> bool:
    return any(c in text for c in "*?[")


def _folder_files(folder: Path) -> list[Path]:
    # a folder of outputs used as the next stage's input must not read their side files as data
    if is_dataset_folder(folder):
        return [folder]
    if (folder / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in folder.iterdir() if p.is_dir())
        raise InputError(f"{folder}: a Hugging Face DatasetDict; name one split's folder, e.g. "
                         f"{folder / (splits[0] if splits else 'train')}")
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix in DATA_SUFFIXES and not p.name.endswith(SIDE_FILE_SUFFIXES)
    )


def expand_paths(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Files named by paths, folders (their data files, sorted; a dataset folder is one input) and glob
    patterns, in order.

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
            raise InputError(f"{given}: no input found there ({', '.join(DATA_SUFFIXES)} files or a dataset folder)")
        files.extend(found)
    return files


def file_format(path: Path) -> str:
    """"dataset" (a save_to_disk folder), "parquet", "arrow", "csv", "tsv", "list" or "jsonl"."""
    if path.is_dir():
        return "dataset"
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".arrow"):
        return suffix[1:]
    if suffix in CSV_SUFFIXES:
        return suffix[1:]
    with open(path, "rb") as handle:
        if suffix not in JSON_SUFFIXES and handle.read(4) == _PARQUET_MAGIC:
            return "parquet"
    return "list" if _first_char(path) == "[" else "jsonl"


def _first_char(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(4096).removeprefix(_BOM)
        while head:
            stripped = head.lstrip()
            if stripped:
                return chr(stripped[0])
            head = handle.read(1 << 16)
    return ""


def row_count(path: Path) -> int | None:
    """Records in one input, when that is cheap to know: non-blank JSONL lines (about 1 GB/s), a
    table's row count from its metadata; None for JSON lists and CSV (counting means parsing)."""
    kind = file_format(path)
    if kind == "jsonl":
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    if kind in ("parquet", "arrow", "dataset"):
        return table_row_count(path, kind)
    return None


def raw_rows(files: list[Path]) -> Iterator[Raw]:
    """Every non-blank line, list element or table row, unparsed where parsing can wait (JSONL)."""
    for path in files:
        source = str(path)
        try:
            yield from _rows_of(path, source)
        except UnicodeDecodeError as e:
            yield InputItem(source, 0, None, f"{source}: invalid UTF-8 ({e.reason}); the rest of the file is skipped")
        except OSError as e:
            raise InputError(f"{source}: cannot read ({e.strerror or e})") from e


def _rows_of(path: Path, source: str) -> Iterator[Raw]:
    kind = file_format(path)
    if kind == "list":
        with open(path, encoding="utf-8-sig") as handle:
            yield from _list_items(handle, source)
    elif kind in ("csv", "tsv"):
        with open(path, encoding="utf-8-sig", newline="") as handle:
            yield from csv_rows(handle, source, "\t" if kind == "tsv" else ",")
    elif kind == "parquet":
        yield from parquet_rows(path, source)
    elif kind == "arrow":
        yield from arrow_rows([path], source)
    elif kind == "dataset":
        yield from arrow_rows(dataset_folder_files(path), source)
    else:
        with open(path, "rb") as handle:
            yield from _jsonl_lines(handle, source)


def _jsonl_lines(handle, source: str) -> Iterator[Raw]:
    for number, line in enumerate(handle, 1):
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if line and not line.isspace():
            yield source, number, line, "line"


def _list_items(handle, source: str) -> Iterator[Raw]:
    try:
        for index, value in list_elements(handle):
            yield source, index, value, "item"
    except ListSyntaxError as e:
        # one syntax error makes the rest of a JSON list unreadable: there is no next line to resync on
        message = f"{source} item {e.index}: invalid JSON ({e.problem}); the rest of the file is skipped"
        yield InputItem(source, e.index, None, message, unit="item")


def csv_rows(handle, source: str, delimiter: str = ",") -> Iterator[Raw]:
    """One record per row, keyed by the header; empty cells are left out (absent, not ""). A row
    with more cells than the header is an error naming its line."""
    reader = csv.reader(handle, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    header = [name.strip() for name in header]
    line = reader.line_num + 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                if len(cells) > len(header):
                    yield InputItem(source, line, None, f"{source}:{line}: {len(cells)} cells for a header of "
                                                        f"{len(header)} columns")
                else:
                    yield source, line, {k: v for k, v in zip(header, cells, strict=False) if v != ""}, "line"
            line = reader.line_num + 1
    except csv.Error as e:
        yield InputItem(source, line, None, f"{source}:{line}: invalid CSV ({e}); the rest of the file is skipped")


def parse_json_line(source: str, number: int, line: bytes) -> Any | InputItem:
    """The JSON value of a JSONL line, or an InputItem error naming the line."""
    where = f"{source}:{number}"
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as e:
        return InputItem(source, number, None, f"{where}: invalid UTF-8 at byte {e.start + 1}")
    except json.JSONDecodeError as e:
        return InputItem(source, number, None, f"{where}: invalid JSON ({e.msg} at column {e.colno})")
