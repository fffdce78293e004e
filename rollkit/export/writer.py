"""Writing rows as JSONL, or Parquet when the file name ends in `.parquet`.

Only rows go beside the output: what else an export writes (its summary) goes into SIDE_FOLDER, a
hidden folder that `load_dataset(export_folder)` does not read. Each file is written under a temporary name and moved into place when complete (a crashed export
leaves the previous file, never half of one). The same rows give the same bytes: JSONL keeps the
builders' key order, and Parquet gets a fixed schema and row-group size.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rollkit.store.atomic import AtomicFile
from rollkit.store.result_log import dump_line

PARQUET_BATCH_ROWS = 2048
PARQUET_IMAGE_BATCH_ROWS = 100  # rows that carry their image bytes: as `datasets` groups image rows
SIDE_FOLDER = ".rollkit"


def is_parquet(path: str | Path) -> bool:
    return str(path).endswith(".parquet")


def split_path(output: Path, split: str, splitting: bool) -> Path:
    """`out/prm.jsonl` as it is without splits; `out/prm.train.jsonl`, `out/prm.val.jsonl` with."""
    if not splitting:
        return output
    suffix = ".parquet" if is_parquet(output) else output.suffix
    stem = output.name[:-len(suffix)] if suffix else output.name
    return output.with_name(f"{stem}.{split}{suffix}")


def side_path(output: Path, suffix: str) -> Path:
    """`out/.rollkit/prm.jsonl.summary.json` for `out/prm.jsonl` and `summary.json`."""
    return output.parent / SIDE_FOLDER / f"{output.name}.{suffix}"


class RowWriter:
    """One output file; `add(row, line)` takes the row and its JSONL bytes (already made for dedupe).
    `parquet_row`, when given, turns a row into its Parquet form (e.g. an image path into the image)."""

    def __init__(self, path: Path, schema: pa.Schema, parquet_row: Callable[[dict], dict] | None = None,
                 batch_rows: int = PARQUET_BATCH_ROWS) -> None:
        self.path, self.schema = path, schema
        self.rows = 0
        self._parquet = is_parquet(path)
        self._parquet_row = parquet_row
        self._batch_rows = batch_rows
        self._batch: list[dict] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = AtomicFile(path, "wb")
        if self._parquet:  # pyarrow writes into the temporary file; it does not close it
            self._writer = pq.ParquetWriter(self._file.handle, schema, compression="zstd")

    def add(self, row: dict, line: bytes | None = None) -> None:
        self.rows += 1
        if not self._parquet:
            self._file.handle.write(line if line is not None else dump_line(row))
            return
        self._batch.append(self._parquet_row(row) if self._parquet_row else row)
        if len(self._batch) >= self._batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._writer.write_table(pa.Table.from_pylist(self._batch, schema=self.schema),
                                     row_group_size=self._batch_rows)
            self._batch = []

    def commit(self) -> None:
        """Finish the file and move it into place."""
        if self._parquet:
            self._flush()
            self._writer.close()
        self._file.commit()

    def abort(self) -> None:
        if self._parquet:
            self._writer.close()
        self._file.discard()
