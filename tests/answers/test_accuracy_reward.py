import asyncio
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import accuracy_reward
from accuracy_reward import check_answer, check_answer_async, get_mode, parse_answer, register_mode
from rollkit.answers import (
    ASYNC_MODES,
    anls_similarity,
    answer_formats,
    mathcheck,
    scoring_modes,
    set_llm_judge,
    vqa_normalize,
)
from tests.support import FIXTURES

REPO = Path(__file__).resolve().parents[2]
FIXTURE = FIXTURES / "rollouts_gpt-4.1.jsonl"
ROLLOUTS = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]

CHECKS = [
    # vqa_score: the official VQA normalisation
    ("two", "2", "vqa_score", 1),
    ("Two.", "2", "vqa_score", 1),
    ("the dog", "dog", "vqa_score", 1),
    ("an apple!", "apple", "vqa_score", 1),
    ("dont", "don't", "vqa_score", 1),
    ("1,000", "1000", "vqa_score", 1),
    ("red/white", "red white", "vqa_score", 1),
    ("2.5", "25", "vqa_score", 0),
    ("cat", ["dog", "Cat"], "vqa_score", 1),
    ("cat", ["dog", "mouse"], "vqa_score", 0),
    ("the", "a", "vqa_score", 0),  # nothing left after normalisation is not an answer
    ("yes", "no", "vqa_score", 0),
    # relaxed_accuracy (ChartQA)
    ("104", "100", "relaxed_accuracy", 1),
    ("106", "100", "relaxed_accuracy", 0),
    ("45%", "45", "relaxed_accuracy", 1),
    ("1,020", "1000", "relaxed_accuracy", 1),
    ("2019", "2020", "relaxed_accuracy", 0),  # years are labels
    ("0", "0", "relaxed_accuracy", 1),
    ("0.01", "0", "relaxed_accuracy", 0),
    ("Apple", "apple", "relaxed_accuracy", 1),
    ("nan", "nan", "relaxed_accuracy", 1),  # plain string equality, not a number
    ("inf", "100", "relaxed_accuracy", 0),
    # anls
    ("hello wrld", "hello world", "anls", 1),
    ("Hello   World", "hello world", "anls", 1),
    ("completely different", "hello world", "anls", 0),
    # mc_score
    ("(B)", "B", "mc_score", 1),
    ("B. a cat", "(B)", "mc_score", 1),
    ("The answer is C.", "C", "mc_score", 1),
    ("A dog", "A", "mc_score", 0),
    ("(B)", "C", "mc_score", 0),
    ("2", "2", "mc_score", 1),  # not a letter, but the same string: the seed's shortcut
    # math_score / latex_score via math_verify
    ("$\\frac{1}{2}$", "0.5", "math_score", 1),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", "math_score", 1),
    ("$\\boxed{3}$", "3", "math_score", 1),
    ("3", "4", "math_score", 0),
    ("\\frac{1}{2", "0.5", "math_score", 0),
    ("$\\frac{1}{2}$", "0.5", "latex_score", 1),
    ("1/2", "0.5", "latex_score", 1),
    ("0.5", "0.50", "latex_score", 0),  # no LaTeX on either side: left to the other modes
    # raven
    ("3", "3", "raven_score_integer_only", 1),
    ("9", "9", "raven_score_integer_only", 1),  # the same string counts in every mode
    ("03", "3", "raven_score_integer_only", 0),
    ("c", "C", "raven_score_alphabet_only", 1),
    ("J", "J", "raven_score_alphabet_only", 1),
    ("AB", "AB", "raven_score_alphabet_only", 1),
    ("K", "J", "raven_score_alphabet_only", 0),
    # dvqa_int_only_score
    ("-3", "- 3", "dvqa_int_only_score", 1),
    ("007", "7", "dvqa_int_only_score", 1),
    ("1_000", "1000", "dvqa_int_only_score", 0),  # Python's int() would take it; a reader would not
    ("3.0", "3", "dvqa_int_only_score", 0),
    # vqav2_num_str_only_score
    ("two", "2", "vqav2_num_str_only_score", 1),
    (" 1,000 ", "1000", "vqav2_num_str_only_score", 1),
    ("-3", "minus three", "vqav2_num_str_only_score", 1),
    ("twenty-one", "21", "vqav2_num_str_only_score", 1),
    ("-0", "0", "vqav2_num_str_only_score", 1),
    ("07", "7", "vqav2_num_str_only_score", 0),  # a jersey's "07" is not "7"
    ("1 2", "12", "vqav2_num_str_only_score", 0),
    ("AH129", "29", "vqav2_num_str_only_score", 0),
    ("two dogs", "2", "vqav2_num_str_only_score", 0),
    # types, empties and several modes
    (2, "2", "vqa_score", 1),
    ("2", 2, "vqav2_num_str_only_score", 1),
    (0.5, "$\\frac{1}{2}$", "math_score", 1),
    (None, "2", "vqa_score", 0),
    (True, "1", "vqa_score", 0),
    ({"a": 1}, "1", "vqa_score", 0),
    ("", "", "vqa_score", 0),
    ("  ", "  ", "anls", 0),
    ("", "", "mc_score", 0),
    ("2", "", "vqa_score", 0),
    ("2", None, "vqa_score", 0),
    ("2", [], "vqa_score", 0),
    ("(B)", "B", ["vqa_score", "math_score"], 1),
    ("(B)", "B", ["anls", "relaxed_accuracy"], 0),
]


@pytest.mark.parametrize(("pred", "gt", "mode", "expected"), CHECKS)
def test_check_answer(pred, gt, mode, expected):
    assert check_answer(pred, gt, mode) == expected


PARSES = [
    ("boxed", "so \\boxed{\\frac{1}{\\sqrt{2}}} then", "\\frac{1}{\\sqrt{2}}"),
    ("boxed", "\\boxed{1} and finally \\boxed{\\{1,2\\}}", "\\{1,2\\}"),
    ("boxed", "\\boxed{\\text{cat}}", "cat"),
    ("boxed", "\\boxed{1} cut off: \\boxed{\\frac{1}{2}", None),
    ("boxed", "\\boxed{}", None),
    ("boxed", "no box", None),
    ("correct_answer", "<correct_answer>\n$\\boxed{2}$\n</correct_answer>", "2"),
    ("correct_answer", "<correct_answer> red car </correct_answer>", "red car"),
    ("correct_answer", "<correct_answer> 2", None),
    ("correct_answer", "<Correct_Answer >3</correct_answer>", "3"),
    ("correct_answer", "<correct_answer>$\\boxed{2$</correct_answer>", None),  # a broken box is no answer
    ("correct_answer", "<correct_answer>1</correct_answer> no wait <correct_answer>2", None),
    ("answer_line", "work\n**Answer:** 42\n", "42"),
    ("answer_line", "Answer: 1\nthinking again\nFinal answer: 3", "3"),
    ("answer_line", "no such line", None),
    ("mc_letter", "(B)", "B"),
    ("mc_letter", "B.", "B"),
    ("mc_letter", "B) a cat", "B"),
    ("mc_letter", "b", "B"),
    ("mc_letter", "Answer: D", "D"),
    ("mc_letter", "so the answer is E.", "E"),
    ("mc_letter", "The correct option is (C), because", "C"),
    ("mc_letter", "$\\boxed{\\text{F}}$", "F"),
    ("mc_letter", "the answer is A bird", None),
    ("mc_letter", "A dog runs", None),
    ("dvqa_v1_int_only", "<correct_answer>$\\boxed{-12}$</correct_answer>", "-12"),
    ("raven_v1", "<correct_answer>Panel (3)</correct_answer>", "3"),
    ("raven_v1", "<correct_answer>$\\boxed{5}$</correct_answer>", "5"),
    ("raven_v1", "<correct_answer>$\\boxed{12}$</correct_answer>", None),
    ("raven_v1", "<correct_answer>none</correct_answer>", None),
    ("raven_v2", "<correct_answer>$\\boxed{c}$</correct_answer>", "C"),
    ("raven_v2", "<correct_answer>$\\boxed{(D)}$</correct_answer>", "D"),
    ("raven_v2", "<correct_answer>a cat</correct_answer>", None),
    ("raven_v2", "<correct_answer>$\\boxed{J}$</correct_answer>", None),
    ("auto", "<correct_answer>7</correct_answer> \\boxed{8}", "7"),
    ("auto", "so \\boxed{8}\nAnswer: 9", "8"),
    ("auto", "thinking\nAnswer: 9\nDone", "9"),
    ("auto", "a long explanation\n\n  42  \n", "42"),
    ("auto", "x" * 300, None),
    ("auto", "", None),
    ("auto", None, None),
    ("boxed", 12, None),
]


@pytest.mark.parametrize(("fmt", "response", "expected"), PARSES)
def test_parse_answer(fmt, response, expected):
    assert parse_answer(response, fmt) == expected


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown answer format"):
        parse_answer("x", "nope")
    with pytest.raises(ValueError, match="unknown scoring mode"):
        check_answer("x", "x", "nope")


def test_anls_is_a_similarity_not_a_distance():
    # The seed scored the raw edit distance, so a totally wrong answer earned full marks.
    assert anls_similarity("zzzzzzzzzzz", "hello world") == 0.0
    assert check_answer("zzzzzzzzzzz", "hello world", "anls") == 0
    assert anls_similarity("hello world", "hello world") == 1.0
    assert check_answer("hello world", "hello world", "anls") == 1
    assert anls_similarity("hello wrld", "hello world") == pytest.approx(10 / 11)
    assert check_answer("hello wrld", "hello world", "anls") == 1
    assert anls_similarity("abcd", "abxy") == 0.5
    assert anls_similarity("abcd", "axyz") == 0.0  # 0.25, below the 0.5 cut-off


def test_vqa_normalisation_rules():
    assert vqa_normalize("Don't know.") == "don't know"
    assert vqa_normalize("3.") == "3"
    assert vqa_normalize("3.14") == "3.14"
    assert vqa_normalize("The TWO\tcats") == "2 cats"


@pytest.mark.parametrize("record", ROLLOUTS, ids=lambda r: r["uid"][:8])
def test_fixture_rollouts_parse_and_check(record):
    pred = parse_answer(record["response"], "correct_answer")
    boxed = record["response"].rsplit("\\boxed{", 1)[1].split("}", 1)[0]
    assert pred == boxed
    expected = int(pred == record["answer"])
    assert check_answer(pred, record["answer"], "vqav2_num_str_only_score") == expected
    assert check_answer(pred, record["answer"], get_mode("vqav2_seed")) == expected


def test_math_score_works_inside_worker_threads():
    pairs = [("$\\frac{1}{2}$", "0.5", 1), ("3", "4", 0)] * 4
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda p: check_answer(p[0], p[1], "math_score"), pairs))
    assert results == [expected for _, _, expected in pairs]


def test_a_stuck_math_worker_is_killed_and_replaced(monkeypatch):
    monkeypatch.setattr(mathcheck, "_MATH_DEADLINE_S", 0.5)
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        assert pool.submit(check_answer, "$9^{9^{9^{9}}}$", "$2$", "math_score").result() == 0
        assert time.monotonic() - started < 2.5
        assert pool.submit(check_answer, "$2$", "2", "math_score").result() == 1


def test_overlong_math_input_is_not_attempted():
    assert check_answer("1+" * 600 + "1", "601", "math_score") == 0
    assert check_answer("1+" * 60 + "1", "61", "math_score") == 1


@pytest.mark.parametrize(
    ("name", "modes"),
    [
        ("vqav2_4k", ["vqav2_num_str_only_score", "vqa_score"]),
        ("ChartQA_test", ["relaxed_accuracy"]),
        ("docvqa_val", ["anls"]),
        ("infovqa_run1", ["anls"]),
        ("dvqa_int", ["dvqa_int_only_score"]),
        ("raven_v2", ["raven_score_integer_only", "raven_score_alphabet_only"]),
        ("CLEVR_math", ["relaxed_accuracy", "vqa_score", "mc_score"]),
        ("geometry3k", ["math_score", "mc_score"]),
        ("okvqa", ["vqa_score"]),
    ],
)
def test_get_mode(name, modes):
    assert get_mode(name) == modes


def test_a_new_mode_is_one_registered_function():
    @register_mode("test_reversed")
    def reversed_match(pred: str, gt: str) -> int:
        return int(pred == gt[::-1])

    assert check_answer("cba", "abc", "test_reversed") == 1
    assert check_answer("abc", "abd", ["test_reversed"]) == 0


@pytest.fixture
def judge_calls():
    calls = []

    async def judge(pred, gt, question):
        calls.append((pred, gt, question))
        await asyncio.sleep(0.01)
        return 1 if "puppy" in pred and gt == "dog" else 0

    set_llm_judge(judge)
    yield calls
    set_llm_judge(None)


def test_llm_judge_needs_the_async_entry_point(judge_calls):
    with pytest.raises(ValueError, match="check_answer_async"):
        check_answer("puppy", "dog", "llm_judge")


def test_llm_judge_calls_are_cached_and_shared(judge_calls):
    async def run():
        first = await asyncio.gather(
            *(check_answer_async("a puppy", "dog", "llm_judge", question="q") for _ in range(5))
        )
        again = await check_answer_async("a puppy", "dog", "llm_judge", question="q")
        other_question = await check_answer_async("a puppy", "dog", "llm_judge", question="q2")
        return first, again, other_question

    first, again, other_question = asyncio.run(run())
    assert first == [1] * 5 and again == 1 and other_question == 1
    assert judge_calls == [("a puppy", "dog", "q"), ("a puppy", "dog", "q2")]


def test_llm_judge_is_only_asked_when_cheaper_modes_fail(judge_calls):
    async def run():
        return [
            await check_answer_async("Dog", "dog", ["vqa_score", "llm_judge"]),
            await check_answer_async("DOG", "dog", "llm_judge"),
            await check_answer_async("", "dog", "llm_judge"),
            await check_answer_async("cat", ["mouse", "dog"], "llm_judge"),
            await check_answer_async("two", "2", "vqa_score"),
        ]

    assert asyncio.run(run()) == [1, 1, 0, 0, 1]
    assert judge_calls == [("cat", "mouse", None), ("cat", "dog", None)]


def test_llm_judge_without_a_judge_is_a_clear_error():
    set_llm_judge(None)
    with pytest.raises(RuntimeError, match="set_llm_judge"):
        asyncio.run(check_answer_async("puppy", "dog", "llm_judge"))


def test_script_reexports_the_api():
    for name in ("parse_answer", "check_answer", "get_mode", "register_mode"):
        assert callable(getattr(accuracy_reward, name))


def test_cli_prints_parsed_answer_and_result():
    result = subprocess.run(
        [
            sys.executable,
            "accuracy_reward.py",
            "--pred",
            "<correct_answer>$\\boxed{two}$</correct_answer>",
            "--gt",
            "2",
            "--mode",
            "vqa_score,mc_score",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == {"parsed": "two", "modes": ["vqa_score", "mc_score"], "correct": 1}


@pytest.mark.parametrize("alias", ["en", "zh", "en_v2", "zh_v2", "en_r1", "zh_r1"])
def test_seed_prompt_format_versions_are_aliases(alias):
    response = "<think>maybe <correct_answer>3</correct_answer>?</think>\n<correct_answer>$\\boxed{2}$</correct_answer>"
    expected = "2"
    assert parse_answer(response, alias) == expected
    assert alias in answer_formats()
    assert parse_answer("<correct_answer>$\\boxed{7}$</correct_answer>", alias) == "7"


@pytest.mark.parametrize("mode", sorted(set(scoring_modes()) - ASYNC_MODES))
def test_the_same_string_counts_in_every_mode(mode):
    for same in ("9", "a red bus", "Z"):  # 9 and Z are outside RAVEN's answer range; still the same
        assert check_answer(f" {same} ", same, mode) == 1


def test_the_seeds_open_answer_mode_is_the_llm_judge():
    import asyncio

    from rollkit.answers import check_answer_async, set_llm_judge

    asked = []

    async def judge(pred, gt, question):
        asked.append((pred, gt))
        return 1

    set_llm_judge(judge)
    try:
        assert asyncio.run(check_answer_async("a tall tree", "tree", "ai2d_open_answer_score")) == 1
    finally:
        set_llm_judge(None)
    assert asked == [("a tall tree", "tree")]
