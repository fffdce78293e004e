import json
from pathlib import Path

import pytest

from rollkit.content.steps import Solution, parse_solution, render_solution, step_prefix, text_prefix

FIXTURE = (
    Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "vqav2_seed" / "rollouts_gpt-4.1.jsonl"
)
ROLLOUTS = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]

GOOD = (
    "[Visual Elements]\n<step_1>\nA red bus.\n</step_1>\n<step_2>\nA blue bus.\n</step_2>\n\n"
    "[Reasoning]\n<step_1>\nCount the buses.\n</step_1>\n\n"
    "<correct_answer>\n$\\boxed{2}$\n</correct_answer>"
)


@pytest.mark.parametrize("record", ROLLOUTS, ids=lambda r: r["uid"][:8])
def test_fixture_rollouts_parse_to_their_scored_steps(record):
    solution = parse_solution(record["response"])
    assert solution.parsed, solution.reason
    assert solution.steps == [s["step"] for s in record["steps_with_score"]]
    assert solution.answer.startswith("$\\boxed{")


@pytest.mark.parametrize("record", ROLLOUTS, ids=lambda r: r["uid"][:8])
def test_fixture_rollouts_render_back_byte_for_byte(record):
    assert render_solution(parse_solution(record["response"])) == record["response"]


def test_sections_and_answer():
    solution = parse_solution(GOOD)
    assert solution == Solution(
        ["A red bus.", "A blue bus."], ["Count the buses."], "$\\boxed{2}$", True, None
    )
    assert solution.steps == ["A red bus.", "A blue bus.", "Count the buses."]


@pytest.mark.parametrize(
    "text",
    [
        GOOD.replace("\n", "\r\n"),
        f"```\n{GOOD}\n```",
        f"```text\n{GOOD}```\n",
        "Here is my solution.\n\n"
        + GOOD.replace("\n<step_", "\n   <step_").replace("[Reasoning]", "**[ reasoning ]**"),
        GOOD.replace("<step_1>\nA red bus.\n</step_1>", "<step_1>   A red bus.   </step_1>"),
    ],
    ids=["crlf", "fence", "fence-lang", "decorated-headers", "inline-step"],
)
def test_tolerated_variations_parse_the_same(text):
    assert parse_solution(text) == parse_solution(GOOD)


def test_missing_visual_header_keeps_leading_steps_as_perception():
    solution = parse_solution(GOOD.replace("[Visual Elements]\n", ""))
    assert solution.parsed
    assert solution.perception_steps == ["A red bus.", "A blue bus."]
    assert solution.reasoning_steps == ["Count the buses."]


def test_no_headers_means_all_reasoning():
    solution = parse_solution("<step_1>a</step_1>\n<step_2>b</step_2>\n<correct_answer>3</correct_answer>")
    assert (solution.parsed, solution.perception_steps, solution.reasoning_steps) == (True, [], ["a", "b"])


def test_only_visual_header_means_no_reasoning():
    solution = parse_solution(GOOD.replace("[Reasoning]\n<step_1>\nCount the buses.\n</step_1>\n", ""))
    assert solution.parsed and solution.reasoning_steps == [] and len(solution.perception_steps) == 2


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "empty"),
        ("", "empty"),
        ("   \n", "empty"),
        (42, "not a string"),
        ("[Visual Elements]\n[Reasoning]\n<correct_answer>2</correct_answer>", "no steps"),
        (GOOD.replace("</step_2>", ""), "unclosed"),
        (GOOD.replace("<step_2>", ""), "mismatched"),
        (GOOD.replace("<step_2>", "<step_3>").replace("</step_2>", "</step_3>"), "step_3 where step_2"),
        (GOOD.replace("</correct_answer>", ""), "unclosed"),
        (GOOD.replace("<correct_answer>\n$\\boxed{2}$\n</correct_answer>", ""), "no closed <correct_answer>"),
        (GOOD + "\n<correct_answer>3</correct_answer>", "more than one"),
        (GOOD + "\n<step_2>late</step_2>", "after <correct_answer>"),
        (GOOD.replace("A blue bus.", ""), "empty step_2"),
        (GOOD.replace("A blue bus.", "<step_9>x</step_9>"), "nested"),
        (GOOD.replace("[Reasoning]", "[Visual Elements]"), "twice"),
        (
            "[Reasoning]\n<step_1>a</step_1>\n[Visual Elements]\n<step_1>b</step_1>\n<correct_answer>2</correct_answer>",
            "before [Visual Elements]",
        ),
        (
            "<step_1>a</step_1>\n[Visual Elements]\n<step_1>b</step_1>\n<correct_answer>2</correct_answer>",
            "steps before",
        ),
        (GOOD.replace("$\\boxed{2}$", " "), "empty <correct_answer>"),
    ],
)
def test_malformed_text_is_refused_with_a_reason(text, reason):
    solution = parse_solution(text)
    assert not solution.parsed
    assert solution.steps == [] and solution.answer is None
    assert reason in solution.reason


def test_step_prefix_stops_after_the_last_included_step():
    solution = parse_solution(GOOD)
    assert step_prefix(solution, 0) == ""
    assert step_prefix(solution, 1) == "[Visual Elements]\n<step_1>\nA red bus.\n</step_1>\n"
    assert step_prefix(solution, 2).endswith("<step_2>\nA blue bus.\n</step_2>\n")
    assert step_prefix(solution, 3) == GOOD.split("\n<correct_answer>")[0]
    assert step_prefix(solution, 3).endswith("[Reasoning]\n<step_1>\nCount the buses.\n</step_1>\n")


@pytest.mark.parametrize("record", ROLLOUTS[:3], ids=lambda r: r["uid"][:8])
def test_every_fixture_prefix_is_a_prefix_of_the_response(record):
    solution = parse_solution(record["response"])
    for upto in range(len(solution.steps) + 1):
        prefix = step_prefix(solution, upto)
        assert record["response"].startswith(prefix)
        reparsed = parse_solution(prefix + "<correct_answer>x</correct_answer>") if upto else None
        if reparsed:
            assert reparsed.steps == solution.steps[:upto]


def test_prefix_of_reasoning_only_solution_starts_with_reasoning_header():
    solution = parse_solution("<step_1>a</step_1><correct_answer>1</correct_answer>")
    assert step_prefix(solution, 1) == "[Reasoning]\n<step_1>\na\n</step_1>\n"


def test_step_prefix_rejects_bad_arguments():
    with pytest.raises(ValueError):
        step_prefix(parse_solution(GOOD), 4)
    with pytest.raises(ValueError):
        step_prefix(parse_solution(GOOD), -1)
    with pytest.raises(ValueError):
        step_prefix(parse_solution(""), 0)


def test_text_prefix_is_the_models_own_bytes():
    text = ("Sure.\n[Visual Elements]\n<step_1>  A bus. </step_1>\n<step_2>\nB\n</step_2>\n\n[Reasoning]\n"
            "<step_1>C</step_1><correct_answer>\n$\\boxed{2}$\n</correct_answer>")
    solution = parse_solution(text)
    prefixes = [text_prefix(solution, upto) for upto in range(4)]
    assert prefixes[0] == "" and prefixes[1] == "Sure.\n[Visual Elements]\n<step_1>  A bus. </step_1>\n"
    assert prefixes[3] == text.split("<correct_answer>")[0]  # no newline after the step: none added
    assert all(text.startswith(p) and prefixes[i + 1].startswith(p) for i, p in enumerate(prefixes[:-1]))
    assert [parse_solution(p + "<correct_answer>x</correct_answer>").steps for p in prefixes[1:]] == [
        solution.steps[:upto] for upto in (1, 2, 3)]
    crlf = parse_solution(text.replace("\n", "\r\n"))
    assert text_prefix(crlf, 2) == prefixes[2]  # read as LF, like every other part of the solution
    assert text_prefix(Solution(["a"], [], "1", parsed=True), 1) == "[Visual Elements]\n<step_1>\na\n</step_1>\n"
    with pytest.raises(ValueError):
        text_prefix(solution, 4)
