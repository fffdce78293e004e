"""Rollouts waiting for a partner of the other kind (`pairs`), kept on disk.

A question whose rollouts are all right (or all wrong) never pairs, and input files need not keep
a question's rollouts together, so what waits can grow with the input. It waits in a private
temporary SQLite database (deleted when closed), not in memory: memory stays flat."""

from __future__ import annotations

import json
import sqlite3

SIDES = ("chosen", "rejected")


class WaitingRoom:
    def __init__(self) -> None:
        self._db = sqlite3.connect("")  # "": a private temporary on-disk database
        self._db.execute("CREATE TABLE waiting (id INTEGER PRIMARY KEY, entry TEXT, side TEXT, rollout TEXT)")
        self._db.execute("CREATE INDEX by_entry ON waiting (entry, side, id)")

    def pop_partner(self, entry: str, side: str) -> dict | None:
        """The earliest waiting rollout of `entry` on the other side than `side`, taken out."""
        other = SIDES[1 - SIDES.index(side)]
        row = self._db.execute("SELECT id, rollout FROM waiting WHERE entry = ? AND side = ? ORDER BY id LIMIT 1",
                               (entry, other)).fetchone()
        if row is None:
            return None
        self._db.execute("DELETE FROM waiting WHERE id = ?", (row[0],))
        return json.loads(row[1])

    def wait(self, entry: str, side: str, rollout: dict) -> None:
        self._db.execute("INSERT INTO waiting (entry, side, rollout) VALUES (?, ?, ?)",
                         (entry, side, json.dumps(rollout, ensure_ascii=False)))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM waiting").fetchone()[0]

    def close(self) -> None:
        self._db.close()
