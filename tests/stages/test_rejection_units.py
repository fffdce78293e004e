"""Rejection sampling's choices, unit by unit: the best answer and the SFT record it makes."""

from __future__ import annotations

from rollkit.stages.rejection import select_best, sft_record


def test_selection_is_deterministic_and_respects_min_score():
    assert select_best(["a", "b", "c"], [5, 8, 8], None)["best_index"] == 1
    assert select_best(["a", "b"], [None, 3], 5)["selected"] is False
    assert select_best(["a", "b"], [None, None], None)["best_index"] is None


def test_sft_record_keeps_human_turns_and_images():
    record = {"entry_id": "e", "selected": True, "best_answer": "2", "images": ["x.jpg"],
              "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "old"}]}
    assert sft_record(record)["conversations"] == [{"from": "human", "value": "q"}, {"from": "gpt", "value": "2"}]
    assert sft_record({**record, "selected": False}) is None
