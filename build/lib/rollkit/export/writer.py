"""Writing rows as JSONL, or Parquet when the file name ends in `.parquet`.

Each file is written under a temporary name and moved into place when complete (a crashed export
leaves the previous file, never half of one). The same rows give the same bytes: JSONL keeps the
builders' key order, and Parquet gets a fixed schema and row-group size.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from rollkit.store.atomic import AtomicFile
from rollkit.store.result_log import dump_line

PARQUET_BATCH_ROWS = 2048


def is_parquet(path: str | Path) -> bool:
    return str(path).endswith(".parquet")


def split_path(output: Path, split: str, splitting: bool) -> Path:
    """`out/prm.jsonl` as it is without splits; `out/prm.train.jsonl`, `out/prm.val.jsonl` with."""
    if not splitting:
        return output
    suffix = ".parquet" if is_parquet(output) else output.suffix
    stem = output.name[:-len(suffix)] if suffix else output.name
    return output.with_name(f"{stem}.{split}{suffix}")


class RowWriter:
    """One output file; `add(row, line)` takes the row and its JSONL bytes (already made for dedupe)."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path, self.schema = path, schema
        self.rows = 0
        self._parquet = is_parquet(path)
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
        self._batch.append(row)
        if len(self._batch) >= PARQUET_BATCH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._writer.write_table(pa.Table.from_pylist(self._batch, schema=self.schema),
                                     row_group_size=PARQUET_BATCH_ROWS)
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
