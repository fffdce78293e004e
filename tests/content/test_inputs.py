"""Input reading, entry ids, and the append-only result log (resume, torn tails, the lock)."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonlines
import pytest

from rollkit.content import inputs, jsonlist
from rollkit.content.inputs import (
    InputError,
    entry_id,
    image_folder,
    image_refs,
    image_root_field,
    iter_inputs,
    question_text,
    resolve_image_path,
)
from rollkit.store.result_log import ErrorLog, LogLockedError, ResultLog, error_log_for

REPO = Path(__file__).resolve().parents[2]
CATS = {"question": "How many cats are on the sofa?", "image": "images/cats.jpg", "answer": "2"}
SEED_004 = {"conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}],
            "images": ["/path/to/image.jpg"]}


def write_jsonl(path: Path, rows: list) -> Path:
    with jsonlines.open(path, "w") as writer:
        writer.write_all(rows)
    return path


def questions(n: int, start: int = 0) -> list[dict]:
    return [{"question": f"What is {i} + {i}?", "image": f"img/{i % 3}.jpg", "answer": str(2 * i)}
            for i in range(start, start + n)]


# ---- entry ids ---------------------------------------------------------------------------

def test_entry_id_known_values_never_change():
    # version 2: md5 of {"images":["images/cats.jpg"],"question":"How many cats are on the sofa?"}
    assert inputs.ENTRY_ID_VERSION == 3  # 3: the answers and options take part when the record has them
    assert entry_id(CATS, 2) == "17de450c92f4e7de8c844709cc02d5d4"
    assert entry_id(SEED_004, 2) == "5f21d7a73662eeed216366e946fe8387"
    # version 3: md5 of {"answers":["2"],"images":["images/cats.jpg"],"question":"How many cats are on the sofa?"}
    assert entry_id(CATS) == "896d0588ea58ede37a85f362eebf1b68"
    assert entry_id(SEED_004) == "fb6eb90e9048e547952942d6452b8480"
    no_answer = {k: v for k, v in CATS.items() if k != "answer"}
    assert entry_id(no_answer) == entry_id(no_answer, 2) == entry_id(CATS, 2)  # nothing to add: the old id


def test_entry_id_depends_on_images_answers_and_options_not_on_other_fields_or_key_order():
    assert entry_id({**CATS, "image": "images/dogs.jpg"}) != entry_id(CATS)
    assert entry_id(dict(reversed(list(CATS.items())))) == entry_id(CATS)
    assert entry_id({**CATS, "uid": "x", "source": "y"}) == entry_id(CATS)
    assert entry_id({**CATS, "image": None, "images": ["images/cats.jpg"]}) == entry_id(CATS)
    assert entry_id({"question": CATS["question"]}) != entry_id(CATS)
    # one question text in two datasets with different answers (or options): two entries
    assert entry_id({**CATS, "answer": "3"}) != entry_id(CATS) == entry_id({**CATS, "answer": 2})
    assert entry_id({**CATS, "options": ["1", "2"]}) != entry_id({**CATS, "options": ["2", "3"]})
    assert entry_id({**CATS, "answer": "3"}, 2) == entry_id(CATS, 2)


def test_entry_id_of_conversations_uses_human_turns_and_the_answer():
    other_answer = {**SEED_004, "conversations": [SEED_004["conversations"][0], {"from": "gpt", "value": "5"}]}
    assert entry_id(other_answer, 2) == entry_id(SEED_004, 2) and entry_id(other_answer) != entry_id(SEED_004)
    turns = [{"value": "What is 2+2?", "from": "user"}]
    assert entry_id({"images": ["/path/to/image.jpg"], "conversations": turns}) == entry_id(SEED_004, 2)
    assert entry_id({**SEED_004, "images": []}) != entry_id(SEED_004)


def test_question_and_image_helpers():
    assert question_text(SEED_004) == "What is 2+2?"
    assert question_text(CATS) == CATS["question"]
    assert image_refs(CATS) == ["images/cats.jpg"]
    assert image_refs({"question": "q"}) == []
    assert resolve_image_path("a/b.jpg", image_folder({}, "/data/in/q.jsonl")) == Path("/data/in/a/b.jpg")
    assert resolve_image_path("/abs/b.jpg", "/data/in") == Path("/abs/b.jpg")
    moved = {"image": "a/b.jpg", "image_root": "/data/in"}
    assert resolve_image_path("a/b.jpg", image_folder(moved, "/out/sampled.jsonl")) == Path("/data/in/a/b.jpg")
    assert image_root_field({"image": "a/b.jpg"}, "/data/in/q.jsonl") == {"image_root": "/data/in"}
    assert image_root_field({"image": "/abs/b.jpg"}, "/data/in/q.jsonl") == {}


def test_json_list_and_jsonl_give_the_same_ids(tmp_path):
    rows = questions(5) + [SEED_004]
    (tmp_path / "q.json").write_text(json.dumps(rows, indent=2))
    write_jsonl(tmp_path / "q.jsonl", rows)
    from_list = [entry_id(i.record) for i in iter_inputs(tmp_path / "q.json")]
    from_lines = [entry_id(i.record) for i in iter_inputs(tmp_path / "q.jsonl")]
    assert from_list == from_lines and len(set(from_list)) == 6


# ---- iter_inputs -------------------------------------------------------------------------

def test_bad_lines_yield_errors_with_location_and_the_rest_continues(tmp_path):
    path = tmp_path / "q.jsonl"
    lines = [json.dumps(CATS), '{"question": "broken", ', "[1, 2]", '{"answer": "3"}',
             '{"question": "q", "images": "a.jpg"}', '{"question": 7}', "", json.dumps(SEED_004)]
    path.write_text("\n".join(lines) + "\n")
    items = list(iter_inputs(str(path)))
    assert [i.line for i in items] == [1, 2, 3, 4, 5, 6, 8]
    assert [i.record is not None for i in items] == [True, False, False, False, False, False, True]
    errors = [i.error for i in items if i.error]
    assert errors[0].startswith(f"{path}:2: invalid JSON (")
    assert errors[1] == f"{path}:3: record is a list, expected an object"
    assert errors[2] == f'{path}:4: no question: expected "conversations" with a human turn or a "question" string'
    assert errors[3] == f'{path}:5: "images" must be a list of strings'
    assert errors[4].startswith(f'{path}:6: "question" must be a string')
    assert items[1].location == f"{path}:2"


@pytest.mark.parametrize("chunk,ensure_ascii", [(1, True), (7, False), (64, True)])
def test_json_list_input_streams_in_small_chunks(tmp_path, monkeypatch, chunk, ensure_ascii):
    rng = random.Random(chunk)
    rows = [{"question": "q\u00e9\U0001f600\"\\" * rng.randint(0, 5) + str(i), "images": [f"{i}.png"],
             "n": rng.random() * 10 ** rng.randint(0, 12), "flag": rng.choice([True, False, None])}
            for i in range(200)]
    path = tmp_path / "q.json"
    text = json.dumps(rows, ensure_ascii=ensure_ascii, indent=rng.choice([None, 1]))
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(jsonlist, "CHUNK_CHARS", chunk)
    items = list(iter_inputs(path))
    assert [i.record for i in items] == rows
    assert items[2].in_list and items[2].line == 3 and items[2].where == f"{path} item 3"


def test_json_list_errors_name_the_item(tmp_path):
    path = tmp_path / "q.json"
    path.write_text('[\n {"question": "a"},\n {"answer": 1},\n {"question": "c"} {"question": "d"}\n]')
    items = list(iter_inputs(path))
    assert items[0].record == {"question": "a"}
    assert items[1].error.startswith(f"{path} item 2: no question")
    assert items[2].record == {"question": "c"}
    assert items[3].error.startswith(f"{path} item 4: invalid JSON (expected ',' or ']' after item 3")
    path.write_text('[{"question": "a"}, {"question": "b" "x"}]')
    items = list(iter_inputs(path))
    assert items[1].error.startswith(f"{path} item 2: invalid JSON (Expecting ',' delimiter at line 1")
    path.write_text(" [ ] ")
    assert list(iter_inputs(path)) == []


def test_folder_glob_bom_and_slicing(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "b.jsonl", questions(3, 3))
    (folder / "a.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(questions(3)).encode())
    (folder / "c.jsonl").write_bytes(b"\xef\xbb\xbf" + b"\n\n".join(json.dumps(q).encode() for q in questions(2, 6)))
    write_jsonl(folder / "c.jsonl.errors.jsonl", [{"error_key": "x"}])  # a side file, not input
    (folder / "notes.txt").write_text("not input")
    every = [i.record["question"] for i in iter_inputs(folder)]
    assert every == [q["question"] for q in questions(8)]
    assert [i.line for i in iter_inputs(folder / "c.jsonl")] == [1, 3]
    assert [i.record["question"] for i in iter_inputs(str(folder / "*.jsonl"))] == every[3:]
    parts = [list(iter_inputs(folder, start=s, end=e)) for s, e in ((0, 3), (3, 5), (5, None))]
    assert [i.record["question"] for part in parts for i in part] == every
    assert [i.line for i in parts[1]] == [1, 2]


def test_unreadable_inputs_are_fatal(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        iter_inputs(tmp_path / "missing.jsonl")
    with pytest.raises(InputError, match="no input found there"):
        iter_inputs(str(tmp_path / "*.jsonl"))


# ---- result log --------------------------------------------------------------------------

def test_append_reopen_and_skip(tmp_path):
    path = tmp_path / "out" / "out.jsonl"
    rows = [{"question": q["question"], "entry_id": entry_id(q), "response": "é" * i} for i, q in enumerate(questions(5))]
    with ResultLog(path) as out:
        for row in rows[:3]:
            out.append(row)
        out.append({"entry_id": "a" * 32 + ":r1", "response": "sub-id"})
        assert rows[0]["entry_id"] in out and rows[3]["entry_id"] not in out
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith('{"entry_id": "' + rows[0]["entry_id"] + '", "question"')
    with ResultLog(path) as out:
        assert len(out) == 4 and "a" * 32 + ":r1" in out and "a" * 32 not in out
        todo = [r for r in rows if r["entry_id"] not in out]
        assert todo == rows[3:]
        for row in todo:
            out.append(row)
    assert [r["entry_id"] for r in ResultLog(path).iter_records()][-2:] == [rows[3]["entry_id"], rows[4]["entry_id"]]


def test_ids_written_by_other_tools_are_found_by_the_slow_path(tmp_path):
    path = write_jsonl(tmp_path / "seed.jsonl", [{"response": "x", "entry_id": "abc"}, {"entry_id": 'q"uote'},
                                                 {"no_id": 1}])
    with ResultLog(path) as out:
        assert "abc" in out and 'q"uote' in out and len(out) == 2


def test_torn_tail_is_repaired(tmp_path, caplog):
    path = tmp_path / "out.jsonl"
    with ResultLog(path) as out:
        out.append({"entry_id": "one", "n": 1})
        out.append({"entry_id": "two", "n": 2})
    with open(path, "ab") as f:
        f.write(b'{"entry_id": "three", "n": 3, "respo')
    with ResultLog(path) as out:
        assert len(out) == 2 and "three" not in out
        out.append({"entry_id": "three", "n": 3})
    assert [r["n"] for r in ResultLog(path).iter_records()] == [1, 2, 3]
    assert Path(f"{path}.torn").read_bytes() == b'{"entry_id": "three", "n": 3, "respo\n'
    assert "torn last line" in caplog.text
    with open(path, "ab") as f:  # a whole last line that is not JSON is cut the same way
        f.write(b'{"entry_id": "four", "n": \n')
    with ResultLog(path) as out:
        assert len(out) == 3 and path.read_bytes().endswith(b'"n": 3}\n')


def test_drop_removes_ids_atomically(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResultLog(path) as out:
        for i in range(10):
            out.append({"entry_id": f"id{i}", "n": i})
        assert out.drop(["id3", "id7", "unknown"]) == 2
        assert "id3" not in out and "id4" in out and len(out) == 8
        out.append({"entry_id": "id3", "n": 33})
    assert [r["n"] for r in ResultLog(path).iter_records()] == [0, 1, 2, 4, 5, 6, 8, 9, 33]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.jsonl.lock"]


def test_error_log_keys_bad_lines_by_location(tmp_path):
    errors = error_log_for(tmp_path / "out.jsonl")
    assert errors.path == tmp_path / "out.jsonl.errors.jsonl"
    with errors:
        errors.add(entry_id=None, source="q.jsonl", line=17, stage="sampling", reason="bad_input", message="m")
        errors.add(entry_id=None, source="q.jsonl", line=17, stage="sampling", reason="bad_input", message="m")
        errors.add(entry_id="e1", source="q.jsonl", line=18, stage="sampling", reason="content_filter",
                   message="refused", retryable=False)
    with ErrorLog(errors.path) as again:
        assert len(again) == 2 and "q.jsonl:17" in again and "e1" in again
        assert [r["reason"] for r in again.iter_records()] == ["bad_input", "content_filter"]


# ---- crashes and the lock, with real processes ------------------------------------------

def python(code: str, *args: str, pipe: bool = True) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.PIPE if pipe else None
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, text=True, stdout=out, stderr=out)


def hold_log(path: Path) -> subprocess.Popen:
    child = python(f"import time; from rollkit.store.result_log import ResultLog\n"
                   f"log = ResultLog({str(path)!r}).open(); print('ready', flush=True); time.sleep(60)")
    assert child.stdout.readline().strip() == "ready"
    return child


def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResultLog(path):
        child = python(f"from rollkit.store.result_log import ResultLog, LogLockedError\n"
                       f"try:\n    ResultLog({str(path)!r}).open()\nexcept LogLockedError as e:\n    print(e)")
        out, _ = child.communicate(timeout=30)
    assert f"output {path} is in use by another rollkit process (pid {os.getpid()})" in out
    assert "choose another --output" in out
    with ResultLog(path):  # released on close
        pass


def test_lock_is_released_when_the_holder_is_killed(tmp_path):
    path = tmp_path / "out.jsonl"
    child = hold_log(path)
    try:
        with pytest.raises(LogLockedError, match=f"pid {child.pid}"):
            ResultLog(path).open()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with ResultLog(path) as out:
        out.append({"entry_id": "after", "n": 1})


APPENDER = """
import sys, hashlib, time
from rollkit.store.result_log import ResultLog
with ResultLog(sys.argv[1], fsync_interval=60) as out:
    for i in range(int(sys.argv[2])):
        eid = hashlib.md5(str(i).encode()).hexdigest()
        if eid not in out:
            out.append({"entry_id": eid, "i": i, "response": "x" * (i % 5000)})
    if sys.argv[3] == "hold":  # done before the kill came (a resumed run has little left): wait for it
        time.sleep(600)
"""


def test_killed_appender_leaves_whole_lines_and_resumes_without_duplicates(tmp_path):
    path, total = tmp_path / "out.jsonl", 20000
    rng = random.Random()
    for kill in range(3):
        before = path.stat().st_size if path.exists() else 0
        child = python(APPENDER, str(path), str(total), "hold", pipe=False)
        deadline = time.monotonic() + 20
        while not path.exists() or path.stat().st_size <= before:  # killed while appending
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        child.kill()
        assert child.wait(timeout=30) == -signal.SIGKILL
        with ResultLog(path) as out:  # only whole lines, each id once
            rows = list(out.iter_records())
            assert len(out) == len(rows) == len({r["entry_id"] for r in rows}) > 0
            assert kill > 0 or len(rows) < total  # the first kill, at least, landed mid-run
    assert python(APPENDER, str(path), str(total), "end", pipe=False).wait(timeout=60) == 0
    rows = [json.loads(line) for line in path.read_bytes().splitlines()]
    assert sorted(r["i"] for r in rows) == list(range(total))
