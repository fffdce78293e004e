"""Answer checking chosen openly: money, units and percentages by value; the modes a dataset name picks
and why; a user's own checker as `module:function` or an entry point, through rollout.py end to end."""

from __future__ import annotations

import json
import textwrap

import pytest

from rollkit.answers import CheckerError, check_answer, choose_modes, math_score, resolve_modes
from rollkit.answers.quantities import quantity
from rollkit.emulator.testing import run_emulator
from tests.support import ROOT, read_jsonl, run_script, script_env

EXAMPLE = ROOT / "input_data_files" / "VQAv2" / "questions.jsonl"


@pytest.mark.parametrize(("pred", "gt", "right"), [
    ("$34.00", "34", 1), ("34 dollars", "34", 1), ("\\$34", "34", 1), ("1,200", "1200", 1), ("12.5%", "12.5", 1),
    ("12.5 per cent", "12.5%", 1), ("5 km", "5", 1), ("3 hours", "3 hour.", 1), ("-3", "−3", 1),
    ("5 km", "5 m", 0), ("$35", "34", 0), ("2 or 3", "2", 0), ("\\frac{1}{2}", "0.5", 1), ("72", "#### 72", 1),
])
def test_math_score_compares_written_quantities_by_value(pred, gt, right):
    assert math_score(pred, gt) == right


def test_a_quantity_is_one_number_with_at_most_a_currency_and_a_unit():
    assert quantity("$1,234.50") == (1234.5, "")
    assert quantity("40 km/h") == (40.0, "km/h")
    assert quantity("x + 1") is None and quantity("3/4") is None and quantity("1 2") is None


def test_the_modes_a_dataset_name_picks_say_why():
    assert choose_modes("gsm8k_test") == (["math_score"], "--dataset-name 'gsm8k_test' contains 'gsm8k'")
    assert choose_modes("mmbench")[0] == ["mc_score", "vqa_score"]
    modes, why = choose_modes("my_new_set")
    assert modes == ["vqa_score"] and "matches no known dataset" in why
    assert resolve_modes("math_score, mc_score", "vqav2") == (["math_score", "mc_score"], "--scoring-mode")


def write_module(folder, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def test_a_function_named_as_module_colon_function_is_a_mode(tmp_path, monkeypatch):
    write_module(tmp_path, "my_checks_a", """
        def same_initial(prediction, reference):
            return prediction[0].lower() == reference[0].lower()
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert check_answer("Paris", "pomme", "my_checks_a:same_initial") == 1
    assert check_answer("Lyon", "pomme", ["vqa_score", "my_checks_a:same_initial"]) == 0
    modes, why = resolve_modes(None, "gsm8k", ["my_checks_a:same_initial"])
    assert modes == ["math_score", "my_checks_a:same_initial"] and why.endswith("plus --answer-checker")


def test_an_installed_entry_point_is_a_mode(tmp_path, monkeypatch):
    write_module(tmp_path, "my_checks_b", """
        def always(prediction, reference):
            return True
    """)
    dist = tmp_path / "my_checks_b-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-checks-b\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rollkit.answer_checkers]\nalways_right = my_checks_b:always\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert check_answer("anything", "else", "always_right") == 1


def test_a_checker_that_does_not_load_says_what_was_looked_for(tmp_path, monkeypatch):
    write_module(tmp_path, "my_checks_c", "x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(CheckerError, match="cannot import 'no_such_module_here'"):
        check_answer("a", "b", "no_such_module_here:f")
    with pytest.raises(CheckerError, match="my_checks_c has no function 'f'"):
        resolve_modes("my_checks_c:f")
    with pytest.raises(ValueError, match="unknown scoring mode nonsense_mode"):
        resolve_modes("nonsense_mode")


def test_rollout_checks_answers_with_a_users_checker_and_records_the_modes(tmp_path):
    write_module(tmp_path, "my_checks_d", """
        def contains_digit(prediction, reference):
            return any(ch.isdigit() for ch in prediction)
    """)
    out = tmp_path / "rollouts.jsonl"
    env = script_env(PYTHONPATH=f"{ROOT}:{tmp_path}")
    with run_emulator("--seed", "3") as url:
        done = run_script("rollout.py", "--input", str(EXAMPLE), "--output", str(out), "--base-url", f"{url}/v1",
                          "--model_name", "policy", "--num-rollouts", "1", "--num-mc", "2",
                          "--answer-format", "correct_answer", "--dataset-name", "gsm8k",
                          "--answer-checker", "my_checks_d:contains_digit", "--request-timeout", "5", env=env)
        bad = run_script("rollout.py", "--input", str(EXAMPLE), "--output", str(tmp_path / "bad.jsonl"),
                         "--base-url", f"{url}/v1", "--model_name", "policy", "--answer-checker", "my_checks_d:nope",
                         env=env)
    assert done.returncode == 0, done.stderr
    assert ("checked by math_score,my_checks_d:contains_digit (--dataset-name 'gsm8k' contains 'gsm8k' plus "
            "--answer-checker)") in done.stderr
    config = json.loads((tmp_path / "rollouts.jsonl.config.json").read_text())
    assert config["scoring_mode"] == "math_score,my_checks_d:contains_digit"
    with_digit = [r for r in read_jsonl(out) if any(ch.isdigit() for ch in r["predicted_answer"] or "")]
    assert with_digit and all(r["is_correct"] for r in with_digit)  # the checker's yes is enough
    assert bad.returncode == 2 and "my_checks_d has no function 'nope'" in bad.stderr
    assert not (tmp_path / "bad.jsonl").exists()


def readme_rows(heading: str) -> list[list[str]]:
    """The table rows of the README's answer-checking section whose first cell starts with `heading`'s kind."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### Answer checking"):text.index("## Records")]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row] for row in rows if len(row) == (4 if heading == "format" else 3)]


def code(cell: str) -> str:
    return cell.split("`")[1] if "`" in cell else ""


def test_every_format_and_mode_in_the_readme_does_what_its_example_says():
    from rollkit.answers import answer_formats, parse_answer, scoring_modes

    formats = readme_rows("format")
    for name_cell, _, reply, expected in formats:
        if reply:
            assert parse_answer(code(reply), code(name_cell)) == code(expected), name_cell
    modes = [row for row in readme_rows("mode") if " / " in row[2]]
    for name_cell, _, example in modes:
        pred, gt = (code(part) for part in example.split(";")[0].split(" / "))
        if code(name_cell) != "llm_judge":
            assert check_answer(pred, gt, code(name_cell)) == 1, name_cell
    named = {name.strip("`") for row in formats + modes for name in row[0].replace(",", " ").split() if "`" in name}
    assert set(answer_formats()) <= named | {"en", "zh", "en_v2", "zh_v2", "en_r1", "zh_r1"}
    built_in = {mode for mode in scoring_modes() if not mode.startswith("test_")}  # other tests register some
    assert built_in <= named | {"ai2d_open_answer_score"}
