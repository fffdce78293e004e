"""Rows of columnar inputs: Parquet files, Arrow IPC stream files, and Hugging Face dataset folders
written by `Dataset.save_to_disk` (a `state.json` naming its `data-*.arrow` files).

All of them are read a batch at a time (pyarrow: `ParquetFile.iter_batches`, `ipc.open_stream` over a
memory map), so a dataset of any size streams. Values become plain Python values; an image column
(`{"bytes", "path"}` as Hugging Face stores it) stays as it is here and is turned into a file by
`rollkit.content.embedded`. `datasets` itself is never imported.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rollkit.content.records import InputError

if TYPE_CHECKING:
    import pyarrow as pa


def _pyarrow():
    """pyarrow and its parquet module, imported on the first table read: with numpy they add a
    quarter second to the start of every process, and most runs read JSON."""
    import pyarrow
    import pyarrow.ipc
    import pyarrow.parquet
    return pyarrow, pyarrow.parquet

# rows converted to Python objects at a time: image datasets hold a picture per row
ROWS_PER_SLICE = 64


def is_dataset_folder(folder: Path) -> bool:
    """A folder `Dataset.save_to_disk` wrote: `state.json` and its Arrow files."""
    return (folder / "state.json").is_file() and any(folder.glob("*.arrow"))


def dataset_folder_files(folder: Path) -> list[Path]:
    """The Arrow files of a save_to_disk folder, in the order its `state.json` lists them."""
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        names = [entry["filename"] for entry in state.get("_data_files", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{folder / 'state.json'}: not a dataset state file ({exc})") from exc
    files = [folder / name for name in names] or sorted(folder.glob("data-*.arrow"))
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f"{folder}: state.json names Arrow files that are not there: {', '.join(missing)}")
    return files


def plain(value: Any) -> Any:
    """A value JSON can hold: dates as ISO text, decimals as text; bytes are left for the image step."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | datetime.timedelta):
        return str(value)
    return value


def _batch_rows(batch: pa.RecordBatch) -> Iterator[dict]:
    for offset in range(0, batch.num_rows, ROWS_PER_SLICE):
        for row in batch.slice(offset, ROWS_PER_SLICE).to_pylist():
            yield {k: plain(v) for k, v in row.items() if v is not None}


def parquet_rows(path: Path, source: str) -> Iterator[tuple[str, int, dict, str]]:
    pa, pq = _pyarrow()
    try:
        table = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{source}: not a readable Parquet file ({exc})") from exc
    number = 0
    with table:
        for batch in table.iter_batches(batch_size=ROWS_PER_SLICE):
            for row in _batch_rows(batch):
                number += 1
                yield source, number, row, "row"


def _arrow_batches(path: Path) -> Iterator[pa.RecordBatch]:
    pa, _ = _pyarrow()
    try:
        with pa.memory_map(str(path)) as mapped:
            yield from pa.ipc.open_stream(mapped)
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}: not an Arrow stream file ({exc})") from exc


def arrow_rows(files: list[Path], source: str) -> Iterator[tuple[str, int, dict, str]]:
    """Rows of Arrow IPC stream files, numbered from 1 over all of them (one dataset)."""
    number = 0
    for path in files:
        for batch in _arrow_batches(path):
            for row in _batch_rows(batch):
                number += 1
                yield source, number, row, "row"


def table_row_count(path: Path, kind: str) -> int:
    """Rows of a table input from its metadata, without reading its values."""
    if kind == "parquet":
        with _pyarrow()[1].ParquetFile(path) as table:
            return table.metadata.num_rows
    files = [path] if kind == "arrow" else dataset_folder_files(path)
    return sum(batch.num_rows for f in files for batch in _arrow_batches(f))
