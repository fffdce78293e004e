"""The request journal: every paid API response, appended before it is used.

A restarted stage asks the journal first and replays what is there instead of paying again.
The file is JSONL of `{"key": <request_key>, "response": {...}}` (plus `"request"` when the
caller passes it). It holds exactly what the caller passes and nothing else: callers must not
pass headers or keys. In memory only `key -> byte offset` is kept (about 25-32 bytes an entry), so
a journal of millions of responses stays small; `get` reads the one line it needs.

One process and one thread of writes (an asyncio loop) at a time: the lock refuses a second
process, and the class is not thread-safe.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rollkit.store.digests import canonical_json
from rollkit.store.result_log import KeyedLog, id_digest, log


def request_key(body: dict, sample_index: int = 0) -> str:
    """sha256 hex of canonical_json({"body": body, "sample": sample_index}).

    The body is the whole request (model, messages, temperature, ...), so any change to what is
    asked makes a new key; the sample index tells apart the N samples of one identical request.
    """
    return hashlib.sha256(canonical_json({"body": body, "sample": sample_index})).hexdigest()


class RequestJournal(KeyedLog):
    """Append-only `key -> response` store; `with RequestJournal(path) as journal: ...`."""

    label = "request journal"
    _keep_offsets = True

    def __init__(self, path: str | Path, fsync_interval: float = 2.0):
        super().__init__(path, id_field="key", fsync_interval=fsync_interval)

    def get(self, key: str) -> dict | None:
        """The stored response for this key (the latest if it was put twice), or None."""
        offset = self._index.get(id_digest(key))
        if offset is None:
            return None
        entry = json.loads(self._read_line(offset))
        if entry.get("key") != key:  # would take a 128-bit digest collision; never trust it
            log.error("%s: line at offset %d has key %s, expected %s", self.path, offset, entry.get("key"), key)
            return None
        return entry["response"]

    def put(self, key: str, response: dict, request: dict | None = None) -> None:
        """Append one response (one whole line) and make it the one `get` returns."""
        entry: dict = {"key": key, "response": response}
        if request is not None:
            entry["request"] = request
        self.append(entry)
