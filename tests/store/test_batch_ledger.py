"""The batch ledger's state and its file agree even when Ctrl-C lands inside a record."""

from __future__ import annotations

import pytest

from rollkit.store.batch_ledger import FileLedger, read_state

SUBMIT = {"attempt": "f#1", "number": 1, "endpoint": "e", "path": "f.jsonl", "sha256": "s", "filename": "f",
          "lines": 2, "tokens": 10, "bytes": 100}


def test_a_ctrl_c_while_a_created_event_is_written_leaves_the_batch_known(tmp_path):
    """The "batches keep running" message reads the state: a batch the service created must be in it
    whether or not its line reached the disk (a missing line is reconciled on resume)."""
    ledger = FileLedger(tmp_path / "f.ledger.jsonl", "f").open()
    ledger.record("submit", **SUBMIT)
    written = ledger.log.append

    def interrupted(event: dict) -> None:  # the signal arrives as the line is written
        written(event)
        raise KeyboardInterrupt

    ledger.log.append = interrupted
    with pytest.raises(KeyboardInterrupt):
        ledger.record("created", attempt="f#1", batch_id="batch_1", status="validating")
    ledger.close()
    assert ledger.state.current.batch_id == "batch_1" and ledger.state.current.live
    assert read_state(tmp_path / "f.ledger.jsonl", "f").current.batch_id == "batch_1"  # the file agrees
