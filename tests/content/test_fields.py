"""Field mapping and the start-up check: no field guessed silently; multiple-choice options rendered
with their letters and checked by letter or text; a template placeholder a record cannot fill."""

from __future__ import annotations

import json

import pytest

from rollkit.content.fields import FieldError, FieldMap
from rollkit.content.inputs import check_fields, entry_id, iter_inputs
from rollkit.content.messages import build_messages, prompt_question, reference_answers
from rollkit.content.records import RecordError
from rollkit.stages.montecarlo import RolloutParams
from rollkit.stages.rollout_prompts import record_fields, rollout_prompt


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_an_image_under_another_name_stops_the_run_naming_it(tmp_path):
    # today: sent text-only, and the two questions collapsed into one as duplicates
    path = write(tmp_path / "q.jsonl", [{"question": "What is it?", "img": "a.jpg", "answer": "cat"},
                                        {"question": "What is it?", "img": "b.jpg", "answer": "dog"}])
    with pytest.raises(FieldError) as caught:
        check_fields(path)
    assert str(caught.value) == (f'{path}:1: "img" looks like an image but is not read as one '
                                 "(fields found: answer, img, question); name it with --image-field img")
    fields = FieldMap.from_flags(image="img")
    check_fields(path, fields)
    first, second = (i.record for i in iter_inputs(path, fields=fields))
    assert first["image"] == "a.jpg" and "img" not in first and entry_id(first) != entry_id(second)
    check_fields(path, FieldMap.from_flags(image="none"))  # said on purpose: the run may go on


def test_math_style_rows_name_the_question_and_answer_flags(tmp_path):
    path = write(tmp_path / "math.jsonl", [{"problem": "What is $1/2 + 1/4$?", "solution": r"It is $\boxed{3/4}$.",
                                            "level": "Level 1"}])
    with pytest.raises(FieldError, match="no question field .*name it with --question-field problem"):
        check_fields(path, needs_answer=True)
    with pytest.raises(FieldError, match="no answer field .*name it with --answer-field solution"):
        check_fields(path, FieldMap.from_flags(question="problem"), needs_answer=True)
    fields = FieldMap.from_flags(question="problem", answer="solution")
    check_fields(path, fields, needs_answer=True)
    (item,) = iter_inputs(path, fields=fields)
    assert item.record["question"].startswith("What is") and reference_answers(item.record)


def test_options_list_dict_and_columns_are_lettered_and_checked_both_ways(tmp_path):
    rows = [{"question": "Sky colour?", "options": ["red", "blue"], "answer": "blue"},
            {"question": "Grass colour?", "options": {"A": "green", "B": "pink"}, "answer": "A"}]
    items = list(iter_inputs(write(tmp_path / "mc.jsonl", rows)))
    assert prompt_question(items[0].record) == "Sky colour?\n\nOptions:\nA. red\nB. blue"
    assert build_messages(items[1].record, items[1].source)[0]["content"].endswith("A. green\nB. pink")
    assert reference_answers(items[0].record) == ["blue", "B"]
    assert reference_answers(items[1].record) == ["A", "green"]
    csv = tmp_path / "mc.csv"
    csv.write_text('question,A,B,C,answer\nPick one,x,y,z,C\n', encoding="utf-8")
    with pytest.raises(FieldError, match="options would be left out .*--options-field A,B,C"):
        check_fields(csv)
    (row,) = iter_inputs(csv, fields=FieldMap.from_flags(options="A,B,C"))
    assert row.record["options"] == {"A": "x", "B": "y", "C": "z"} and reference_answers(row.record) == ["C", "z"]
    choices = write(tmp_path / "choices.jsonl", [{"question": "q?", "choices": ["a", "b"], "answer": "a"}])
    with pytest.raises(FieldError, match="--options-field choices"):
        check_fields(choices)
    bad = list(iter_inputs(write(tmp_path / "bad.jsonl", [{"question": "q?", "options": 3}])))
    assert bad[0].error == f"{tmp_path / 'bad.jsonl'}:1: \"options\" must be a non-empty list of strings or an object " \
                           "of letter: text"


def test_a_placeholder_the_record_cannot_fill_is_one_error_at_start(tmp_path):
    template = tmp_path / "mine.txt"
    template.write_text("Q: {{question}}\nChoose from:\n{{options}}\nHint: {{hint}}", encoding="utf-8")
    params = RolloutParams("m", templates=(("rollout", template.read_text(), str(template)),))
    assert record_fields(params) == ("hint", "options")
    path = write(tmp_path / "q.jsonl", [{"question": "Which?", "answer": "A"}])
    with pytest.raises(FieldError, match=r"uses \{\{hint\}\} but the record has no \"hint\""):
        check_fields(path, needs=record_fields(params))
    record = {"question": "Which?", "options": ["x", "y"], "hint": "the first", "answer": "A"}
    assert rollout_prompt(record, params) == "Q: Which?\nChoose from:\nA. x\nB. y\nHint: the first"
    with pytest.raises(RecordError, match=r"\{\{hint\}\}"):
        rollout_prompt({"question": "Which?", "options": ["x"]}, params)


def test_text_only_questions_get_the_text_template():
    params = RolloutParams("m")
    text_only = rollout_prompt({"question": "What is 6 * 7?"}, params)
    with_image = rollout_prompt({"question": "What is 6 * 7?", "image": "a.jpg"}, params)
    assert "[Visual Elements]" not in text_only and "[Reasoning]" in text_only and "What is 6 * 7?" in text_only
    assert "[Visual Elements]" in with_image
