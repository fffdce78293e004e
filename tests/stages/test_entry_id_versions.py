"""Entry ids across versions: one question text in two datasets stays two entries, and a run resumed
on an output keyed by version-2 ids finds its finished work instead of paying for it again."""

from __future__ import annotations

import asyncio
import json

from rollkit.content.inputs import ENTRY_ID_VERSION, InputItem, entry_id, iter_inputs
from rollkit.emulator.testing import run_emulator
from rollkit.stages.prm_conversation import prm_record_key
from rollkit.stages.runner import Outcome, StageRunner
from tests.support import read_jsonl, run_script


def sample(url, inputs, out):
    return run_script("sampling.py", "--input_file", *map(str, inputs), "--output_file", str(out), "--model_name",
                      "gen", "--answers_per_question", "2", "--base-url", f"{url}/v1", "--concurrency", "4")


def summary(out) -> dict:
    return json.loads(open(f"{out}.summary.json").read())


def test_shared_question_text_stays_apart_and_old_outputs_resume_without_new_requests(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n"
                             for i in range(3)), encoding="utf-8")
    second.write_text(json.dumps({"question": "What is 0 + 0?", "answer": "zero"}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with run_emulator("--seed", "5") as url:
        assert sample(url, [first, second], out).returncode == 0
        fresh = read_jsonl(out)
        config = json.loads(open(f"{out}.config.json").read())
        assert config["entry_id_version"] == ENTRY_ID_VERSION == 3
        assert len(fresh) == 4 and summary(out)["records"]["duplicates"] == 0  # 0 + 0 in both: two entries
        # the same output as the version-2 code wrote it: v2 ids, the config saying so (then no config at all)
        records = {entry_id(i.record): i.record for path in (first, second) for i in iter_inputs(path)}
        old = [{**r, "entry_id": entry_id(records[r["entry_id"]], 2)} for r in fresh if r["question"] != "What is 0 + 0?"
               or r["answer"] == "0"]
        for without_config in (False, True):
            out.write_text("".join(json.dumps(r) + "\n" for r in old), encoding="utf-8")
            config["entry_id_version"] = 2
            open(f"{out}.config.json", "w").write(json.dumps(config))
            if without_config:
                (tmp_path / "out.jsonl.config.json").unlink()
            resumed = sample(url, [first], out)
            assert resumed.returncode == 0, resumed.stderr
            done = summary(out)
            assert done["records"]["already_done"] == 3 and done["requests"]["sent"] == 0, done
            assert json.loads(open(f"{out}.config.json").read())["entry_id_version"] == 2
            assert read_jsonl(out) == old


def test_a_record_key_builds_on_the_entry_id_in_the_outputs_version(tmp_path):
    """prm-score keys a rollout without its own id by the entry id and a digest of what is scored: the
    entry id the runner worked out, in the version the output is keyed by, so a version-2 output resumes."""
    record = {"question": "What is 1 + 1?", "answer": "2", "response": "Step 1: 1 + 1 = 2."}
    output = tmp_path / "out.jsonl"

    async def process(item, unit):
        return Outcome(record={"prm_score": 1.0})

    runner = StageRunner("prm-score", output, concurrency=1, id_field="prm_id", record_key=prm_record_key,
                         id_version=2).open()
    try:
        asyncio.run(runner.run([InputItem("q.jsonl", 1, record)], process))
    finally:
        runner.close()
    [written] = read_jsonl(output)
    assert written["entry_id"] == entry_id(record, 2) != entry_id(record)
    assert written["prm_id"].startswith(f"{written['entry_id']}:")
