"""prm-score then evaluate against the emulator's PRM, on solutions whose figures are known by
construction (tests/support/prm): the PRM's bad steps score 0.02-0.30 and good ones 0.60 or more."""

from __future__ import annotations

import json
import random

import pytest

from rollkit.emulator.testing import run_emulator
from rollkit.evaluation.bestofn import Question, curves, pick_majority
from rollkit.evaluation.processbench import metrics
from tests.support import read_jsonl, run_script
from tests.support.prm import render, rollout_record, solution, write_jsonl

# right (answer 4, all steps good) or wrong (answer 5, first error at the given step) per candidate
QUESTIONS = [[1, None, 2, 3], [None, None, 0, 1], [2, 1, 3, 0], [3, 2, 1, None]]
# (true first error, Monte-Carlo's first error): MC is late once and wrong about a sound rollout once
ROLLOUTS = [(None, None), (None, None), (0, 0), (2, 2), (3, 3), (1, 2), (None, 2)]


def candidates(rng):
    records = []
    for q, errors in enumerate(QUESTIONS):
        texts = [render(solution(rng, e, "5" if e is not None else "4"), "5" if e is not None else "4")
                 for e in errors]
        records.append({"question": f"How many cups? ({q})", "answer": "4", "generated_answers": texts,
                        "generated_scores": [10, 5, 5, 5]})
    return records


def rollouts(rng):
    records = []
    for i, (truth, mc) in enumerate(ROLLOUTS):
        record = rollout_record(f"Count the boats ({i})", "4", solution(rng, truth, "4"), truth is None, f"r{i}")
        for j, step in enumerate(record["steps_with_score"]):
            step["score"] = 0.0 if mc is not None and j >= mc else 1.0
        records.append(record)
    return records


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evaluate")
    rng = random.Random(11)
    write_jsonl(tmp / "candidates.jsonl", candidates(rng))
    write_jsonl(tmp / "rollouts.jsonl", rollouts(rng))
    with run_emulator("--seed", "4", "--no-auth") as url:
        for name in ("candidates", "rollouts"):
            done = run_script("rollkit/cli/prm_score.py", "--input", str(tmp / f"{name}.jsonl"), "--output",
                              str(tmp / f"{name}.scored.jsonl"), "--model", "emu-prm", "--base-url", url + "/v1",
                              "--text-only")
            assert done.returncode == 0, done.stderr
    outputs = {}
    for name in ("candidates", "rollouts"):
        done = run_script("rollkit/cli/evaluate.py", str(tmp / f"{name}.scored.jsonl"), "--out", str(tmp / name))
        assert done.returncode == 0, done.stderr
        outputs[name] = json.loads((tmp / name / "evaluation.json").read_text())
    return tmp, outputs


def test_best_of_n_is_what_the_construction_says(evaluated):
    tmp, outputs = evaluated
    scored = read_jsonl(tmp / "candidates.scored.jsonl")
    assert all(len(r["prm_step_scores"]) == 4 and len(r["prm_score"]) == 4 for r in scored)
    c = outputs["candidates"]["best_of_n"]
    assert c["n"] == [1, 2, 4] and c["questions"] == 4
    assert c["oracle"] == pytest.approx([0.25, 0.5, 0.75])
    # min and last: a wrong candidate has a bad step (its conclusion among them), a right one none
    assert c["prm_min"] == c["oracle"] and c["prm_last"] == c["oracle"]
    assert c["random"] == pytest.approx([0.25, (0.5 + 1) / 4, (0.25 + 0.5 + 0.25) / 4])
    assert c["majority"] == pytest.approx([0.25, 0.25, 0.25])  # Q2: 4 against 5 ties, 4 came first
    assert c["judge"] == pytest.approx([0.25, 0.25, 0.25])  # it always takes candidate 0
    assert (tmp / "candidates" / "prm_accuracy_vs_n.png").stat().st_size > 1000


def test_step_level_in_processbench_form(evaluated):
    tmp, outputs = evaluated
    steps = outputs["rollouts"]["step_level"]
    assert steps["reference"] == "mc" and steps["solutions"] == len(ROLLOUTS)
    prm = steps["scorers"]["prm@0.5"]
    # MC's references: erroneous [0, 2, 3, 2, 2]; the PRM finds [0, 2, 3, 1, -1]; both sound ones -1
    assert prm == {"erroneous_accuracy": 0.6, "correct_accuracy": 1.0, "f1": pytest.approx(0.75),
                   "erroneous": 5, "correct": 2}
    assert "mc" not in steps["scorers"]  # the reference itself is no scorer
    page = (tmp / "rollouts" / "evaluation.html").read_text()
    assert "prm@0.5" in page and "prm_step_level.png" in page


def test_metrics_and_ties_by_hand():
    assert metrics([(-1, -1), (2, 2), (2, 1), (0, -1)]) == {
        "erroneous_accuracy": 1 / 3, "correct_accuracy": 1.0, "f1": 0.5, "erroneous": 3, "correct": 1}
    assert metrics([(1, 1)])["f1"] is None  # no correct solution: F1 is undefined, not 0
    q = Question(right=[False, True, True], answers=["5", "4", "4"], steps=[None] * 3, judge=[None] * 3)
    assert pick_majority(q, 2) == 0 and pick_majority(q, 3) == 1
    assert curves([q])["prm_min"] == [0.0, 0.0, 0.0]  # no PRM scores: never a pick


def test_bad_input_names_the_file_and_line(tmp_path):
    bad = tmp_path / "scored.jsonl"
    bad.write_text('{"question": "q"}\nnot json\n')
    done = run_script("rollkit/cli/evaluate.py", str(bad), "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and f"{bad}:2: not JSON" in done.stderr


def test_report_page_shows_the_evaluation_written_into_its_folder(evaluated):
    tmp, _ = evaluated
    done = run_script("report.py", str(tmp / "rollouts.scored.jsonl"), "--out", str(tmp / "rollouts"))
    assert done.returncode == 0, done.stderr
    page = (tmp / "rollouts" / "index.html").read_text()
    assert "PRM: best-of-N accuracy against N" in page and "prm_accuracy_vs_n.png" in page


def test_the_demo_rollouts_with_their_images_through_prm_score_and_evaluate(tmp_path):
    """rollout.py's own output (4 rollouts a question, images attached) is what prm-score reads: the
    emulator's PRM then finds the planted first errors its policy wrote, and best-of-N by the
    weakest step is the oracle."""
    questions = "input_data_files/VQAv2/questions.jsonl"
    with run_emulator("--seed", "7", "--no-auth", "--answer-key", questions) as url:
        done = run_script("rollout.py", "--input", questions, "--output", str(tmp_path / "rollouts.jsonl"),
                          "--base-url", url + "/v1", "--model_name", "demo-policy", "--dataset-name", "vqav2",
                          "--num-rollouts", "4", "--num-mc", "2", "--end", "4")
        assert done.returncode == 0, done.stderr
        done = run_script("rollkit/cli/prm_score.py", "--input", str(tmp_path / "rollouts.jsonl"), "--output",
                          str(tmp_path / "prm.jsonl"), "--model", "demo-prm", "--base-url", url + "/v1")
        assert done.returncode == 0, done.stderr
    scored = read_jsonl(tmp_path / "prm.jsonl")
    assert len(scored) == 16 and {r["prm_mode"] for r in scored} == {"one-request"}
    done = run_script("rollkit/cli/evaluate.py", str(tmp_path / "prm.jsonl"), "--out", str(tmp_path / "report"),
                      "--dataset-name", "vqav2")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    curves = result["best_of_n"]
    assert curves["questions"] == 4 and curves["n"] == [1, 2, 4]
    assert curves["prm_min"] == curves["oracle"]
    assert curves["oracle"][-1] > curves["random"][-1]  # the emulator's policy is right 60% of the time
