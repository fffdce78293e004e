"""The batch ledger: an append-only record of everything done with one packed file.

`<batch_dir>/ledger/<file stem>.jsonl` holds one event per line (a KeyedLog keyed by `event_id`,
fsynced at every event). Events are folded into a FileState; nothing is ever rewritten. The lock
of a file's ledger is the right to drive that file, so several processor sessions (the seed ran
one per index range) can share a batch folder without touching each other's files.

Events, in the order a file goes through them:

    submit         an attempt: which lines (its submission file, sha256, lines, tokens), which endpoint
    upload_intent  written *before* files.create; `uploaded` after, with the file id
    create_intent  written *before* batches.create; `created` after, with the batch id,
                   or `refused` (token_limit_exceeded, input_file_not_found, ...) with the reason
    status         each change of the batch's status or request counts seen by a poll
    cancel         a stalled batch is being cancelled (written before the call)
    downloaded     output and error files saved under results/, with counts by outcome
    file_done      every line has a final result (or the file gave up), with counts

An intent without its result means the process died during the call: on restart, the processor
asks the service (files.list / batches.list) whether the call took effect before calling again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rollkit.store.result_log import KeyedLog, log

TERMINAL = ("completed", "failed", "expired", "cancelled")
RUNNING = ("validating", "in_progress", "finalizing", "cancelling")


@dataclass
class Attempt:
    """One submission of some lines of a file to one endpoint."""

    id: str  # "<file>#<number>"
    number: int
    endpoint: str
    path: str  # the submission file, relative to the batch dir (the packed file when nothing had to change)
    sha256: str
    filename: str  # the name given to the service on upload; found again by files.list
    lines: int
    tokens: int
    bytes: int
    submitted_at: float
    input_file_id: str | None = None
    upload_pending: bool = False
    create_pending: bool = False
    batch_id: str | None = None
    status: str = "submitted"
    completed: int = 0
    failed: int = 0
    changed_at: float = 0.0  # last change of status or counts: the stall clock
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[str] = field(default_factory=list)  # batch-level error codes
    refused: str | None = None  # why the service would not take it (not counted as a try)
    cancel_reason: str | None = None
    downloaded: dict | None = None  # counts by outcome once results are saved

    @property
    def live(self) -> bool:
        return self.refused is None and self.downloaded is None

    @property
    def ran(self) -> bool:
        """A try that counts against --max-attempts: the service took it and it was not a quota refusal."""
        return self.refused is None and self.batch_id is not None


@dataclass
class FileState:
    name: str
    attempts: list[Attempt] = field(default_factory=list)
    uploads: dict[tuple[str, str], str] = field(default_factory=dict)  # (endpoint, sha256) -> file id
    done: dict | None = None
    events: int = 0

    @property
    def current(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def attempt(self, attempt_id: str) -> Attempt:
        for attempt in reversed(self.attempts):
            if attempt.id == attempt_id:
                return attempt
        raise KeyError(attempt_id)

    def apply(self, event: dict) -> None:
        self.events += 1
        kind = event.get("kind")
        if kind == "submit":
            fields = {k: event[k] for k in ("number", "endpoint", "path", "sha256", "filename", "lines",
                                            "tokens", "bytes")}
            self.attempts.append(Attempt(event["attempt"], submitted_at=event["at"], changed_at=event["at"],
                                         **fields))
            return
        if kind == "file_done":
            self.done = event
            return
        handler = _HANDLERS.get(kind)
        if handler is None:
            log.warning("ledger of %s: unknown event kind %r ignored", self.name, kind)
            return
        handler(self, self.attempt(event["attempt"]), event)


def _upload_intent(state: FileState, a: Attempt, e: dict) -> None:
    a.upload_pending = True


def _uploaded(state: FileState, a: Attempt, e: dict) -> None:
    a.upload_pending, a.input_file_id = False, e["file_id"]
    state.uploads[(a.endpoint, a.sha256)] = e["file_id"]


def _create_intent(state: FileState, a: Attempt, e: dict) -> None:
    a.create_pending, a.input_file_id = True, e["input_file_id"]


def _created(state: FileState, a: Attempt, e: dict) -> None:
    a.create_pending, a.batch_id, a.status, a.changed_at = False, e["batch_id"], e["status"], e["at"]


def _refused(state: FileState, a: Attempt, e: dict) -> None:
    a.create_pending, a.refused, a.status = False, e["reason"], "refused"
    if e["reason"] == "input_file_not_found":  # that upload cannot be used again
        state.uploads.pop((a.endpoint, a.sha256), None)


def _status(state: FileState, a: Attempt, e: dict) -> None:
    a.status, a.completed, a.failed, a.changed_at = e["status"], e["completed"], e["failed"], e["at"]
    a.output_file_id, a.error_file_id = e.get("output_file_id"), e.get("error_file_id")
    a.errors = e.get("errors") or []


def _cancel(state: FileState, a: Attempt, e: dict) -> None:
    a.cancel_reason = e["reason"]


def _downloaded(state: FileState, a: Attempt, e: dict) -> None:
    a.downloaded = e["counts"]
    if e.get("quota_refusal"):  # failed in validation for the quota: the lines never ran
        a.refused = "token_limit_exceeded"


_HANDLERS = {"upload_intent": _upload_intent, "uploaded": _uploaded, "create_intent": _create_intent,
             "created": _created, "refused": _refused, "status": _status, "cancel": _cancel,
             "downloaded": _downloaded}


def read_state(path: Path, name: str) -> FileState:
    """Fold a ledger without taking its lock (for --status, and before deciding to drive a file).
    A partial last line (a writer mid-write) is left out."""
    state = FileState(name)
    if not path.exists():
        return state
    with open(path, "rb") as handle:
        for line in handle:
            if line.endswith(b"\n") and line.strip():
                try:
                    state.apply(json.loads(line))
                except (ValueError, KeyError) as exc:
                    log.warning("%s: unreadable ledger line skipped (%s)", path, exc)
    return state


class FileLedger:
    """The open, locked ledger of one file, and its folded state."""

    def __init__(self, path: Path, name: str):
        self.log = KeyedLog(path, id_field="event_id", fsync_interval=0.0)
        self.log.label = "batch ledger"
        self.name = name
        self.state = FileState(name)

    def open(self) -> FileLedger:
        """Lock (LogLockedError if another process drives this file), repair, fold."""
        self.log.open()
        self.state = FileState(self.name)
        for event in self.log.iter_records():
            self.state.apply(event)
        return self

    def record(self, kind: str, **fields: object) -> dict:
        """Apply one event to the state, then append it (one whole line, fsynced). In that order: a
        Ctrl-C landing between the two must not leave a batch on disk that the state (and so the
        "batches keep running" message) does not know; one the disk misses is reconciled on resume."""
        event = {"event_id": f"{self.name}:{self.state.events:06d}", "kind": kind, "at": time.time(), **fields}
        self.state.apply(event)
        self.log.append(event)
        return event

    def close(self) -> None:
        self.log.close()
