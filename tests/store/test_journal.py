"""The request journal: paid responses survive restarts, are found by key, and nothing else is stored."""

import json
import random
from pathlib import Path

import pytest

from rollkit.store.journal import RequestJournal, request_key
from rollkit.store.result_log import DigestTable, LogLockedError, id_digest

BODY = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "What is 2+2?"}], "temperature": 1.0}
RESPONSE = {"id": "chatcmpl-1", "choices": [{"index": 0, "message": {"role": "assistant", "content": "4 ü"}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1}}


def test_request_key_is_canonical_and_depends_on_the_sample_index():
    reordered = {"temperature": 1.0, "messages": BODY["messages"], "model": "gpt-4.1"}
    assert request_key(BODY) == request_key(reordered) == request_key(BODY, 0)
    assert request_key(BODY, 1) != request_key(BODY, 0)
    assert request_key({**BODY, "temperature": 0.7}) != request_key(BODY)
    assert len(request_key(BODY)) == 64


def test_put_get_and_reopen(tmp_path):
    path = tmp_path / "out.jsonl.journal.jsonl"
    keys = [request_key(BODY, i) for i in range(5)]
    with RequestJournal(path) as journal:
        assert journal.get(keys[0]) is None
        for i, key in enumerate(keys):
            journal.put(key, {**RESPONSE, "id": f"chatcmpl-{i}"})
        assert journal.get(keys[3])["id"] == "chatcmpl-3" and len(journal) == 5
    with RequestJournal(path) as journal:
        assert len(journal) == 5 and keys[4] in journal and request_key(BODY, 9) not in journal
        assert journal.get(keys[0]) == {**RESPONSE, "id": "chatcmpl-0"}
        assert [journal.get(k)["id"] for k in keys] == [f"chatcmpl-{i}" for i in range(5)]


def test_the_file_holds_exactly_what_was_put(tmp_path):
    path = tmp_path / "journal.jsonl"
    key = request_key(BODY)
    with RequestJournal(path) as journal:
        journal.put(key, RESPONSE)
        journal.put(request_key(BODY, 1), RESPONSE, request=BODY)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [{"key": key, "response": RESPONSE},
                     {"key": request_key(BODY, 1), "response": RESPONSE, "request": BODY}]


def test_a_key_put_twice_returns_the_latest(tmp_path):
    path, key = tmp_path / "journal.jsonl", request_key(BODY)
    with RequestJournal(path) as journal:
        journal.put(key, {"n": 1})
        journal.put(key, {"n": 2})
        assert journal.get(key) == {"n": 2} and len(journal) == 1
    with RequestJournal(path) as journal:
        assert journal.get(key) == {"n": 2}


def test_torn_tail_is_repaired_and_lookups_still_work(tmp_path):
    path = tmp_path / "journal.jsonl"
    keys = [request_key(BODY, i) for i in range(3)]
    with RequestJournal(path) as journal:
        journal.put(keys[0], {"n": 0, "big": "x" * 100_000})  # longer than one read block
        journal.put(keys[1], {"n": 1})
    with open(path, "ab") as f:
        f.write(b'{"key": "' + keys[2].encode() + b'", "response": {"n"')
    with RequestJournal(path) as journal:
        assert keys[2] not in journal and len(journal) == 2
        assert journal.get(keys[0])["big"] == "x" * 100_000
        journal.put(keys[2], {"n": 2})
    with RequestJournal(path) as journal:
        assert [journal.get(k)["n"] for k in keys] == [0, 1, 2]
    assert Path(f"{path}.torn").exists()


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "journal.jsonl"
    with RequestJournal(path), pytest.raises(LogLockedError, match="request journal .* is in use"):
        RequestJournal(path).open()


def test_digest_table_grows_and_keeps_values(monkeypatch):
    monkeypatch.setattr(DigestTable, "_GROW_AT", 2)  # regrow the buckets twice on the way
    table = DigestTable(with_values=True)
    digests = [id_digest(f"id-{i}") for i in range(20_000)]
    for i, digest in enumerate(digests):
        table.add(digest, i)
    table.add(digests[5], 123)
    assert len(table) == 20_000 and table._bits == 16
    assert [table.get(d) for d in digests[:7]] == [0, 1, 2, 3, 4, 123, 6]
    assert all(d in table for d in digests) and id_digest("other") not in table
    assert id_digest("a" * 32) == bytes.fromhex("a" * 32) and id_digest("A" * 32) != id_digest("a" * 32)


def test_offsets_are_right_across_read_chunks(tmp_path):
    rng, path = random.Random(3), tmp_path / "journal.jsonl"
    sizes = [rng.choice([0, 10, 1000, 70_000, 200_000]) for _ in range(120)]
    with RequestJournal(path) as journal:
        for i, size in enumerate(sizes):
            journal.put(request_key(BODY, i), {"i": i, "text": "é" * size})
    with RequestJournal(path) as journal:
        assert all(journal.get(request_key(BODY, i)) == {"i": i, "text": "é" * size} for i, size in enumerate(sizes))
