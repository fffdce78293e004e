"""`batch_processor.py --status`: one row per packed file, read from the ledgers (no API call, no
lock, so it works while a processor is running)."""

from __future__ import annotations

import time
from pathlib import Path

from rollkit.batch.pack import load_manifest
from rollkit.batch.processor import ledger_path
from rollkit.store.batch_ledger import FileState, read_state

# done: lines with a good reply (of the current batch while it runs); refused: content filter;
# failed: permanent failures and lines given up on (of the current batch: its failed count so far)
COLUMNS = ("file", "lines", "endpoint", "batch", "state", "done", "refused", "failed", "tries", "age")


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def file_row(entry: dict, state: FileState, now: float) -> tuple[str, ...]:
    current = state.current
    tries = str(len(state.attempts))
    if state.done is not None:
        done = state.done
        label = "done" if not done["gave_up"] else f"done ({done['reason']})"
        endpoint = current.endpoint if current else "-"
        batch = (current.batch_id or "-") if current else "-"
        return (entry["name"], str(entry["lines"]), endpoint, batch, label, str(done["ok"]), str(done["refused"]),
                str(done["failed"] + done["gave_up"]), tries, _age(now - done["at"]))
    if current is None:
        return (entry["name"], str(entry["lines"]), "-", "-", "not submitted", "0", "0", "0", tries, "-")
    state_label = current.status if current.live else f"{current.status}, next try pending"
    return (entry["name"], str(entry["lines"]), current.endpoint, current.batch_id or "-", state_label,
            f"{current.completed}/{current.lines}", "-", str(current.failed), tries, _age(now - current.submitted_at))


def status_table(batch_dir: Path) -> str:
    manifest = load_manifest(batch_dir)
    if manifest is None:
        return f"{batch_dir}: no manifest.json (nothing packed yet)"
    now = time.time()
    rows = [COLUMNS]
    for entry in manifest["files"]:
        state = read_state(ledger_path(batch_dir, entry["name"]), entry["name"])
        rows.append(file_row(entry, state, now))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
