"""report.py: the page and its figures from real stage outputs, what it counts, and a screenshot."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from rollkit.emulator.testing import run_emulator
from rollkit.net.pricing import model_price
from rollkit.report.collect import Collector
from tests.support import FIXTURES, ROOT, chromium, read_jsonl, run_script

QUESTIONS = ROOT / "input_data_files" / "VQAv2" / "questions.jsonl"
FIGURES = ("step_scores.png", "right_answers.png", "agreement.png", "policies.png", "requests.png")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A rollout.py run (its output, summary and config) beside the seed's verified rollouts."""
    folder = tmp_path_factory.mktemp("run")
    with run_emulator("--seed", "5", "--answer-key", str(QUESTIONS)) as url:
        done = run_script("rollout.py", "--input", str(QUESTIONS), "--output", str(folder / "rollouts.jsonl"),
                          "--base-url", f"{url}/v1", "--model_name", "gpt-4.1-mini", "--dataset-name", "vqav2",
                          "--num-rollouts", "2", "--num-mc", "2")
    assert done.returncode == 0, done.stderr
    seed = folder / "seed"
    seed.mkdir()
    rollouts = [{**r, "rollout_id": r["unique_id"], "image_root": str(FIXTURES)}
                for r in read_jsonl(FIXTURES / "rollouts_gpt-4.1_merged.jsonl")]
    (seed / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rollouts))
    assert run_script("merge_and_map_batch.py", "map", "--rollouts", str(seed / "rollouts.jsonl"), "--results",
                      str(FIXTURES / "verification_o4-mini.json"), "--output",
                      str(seed / "vqav2_seed.jsonl")).returncode == 0
    (folder / "broken.jsonl").write_text('{"steps_with_score": []}\n{oops\n')
    return folder


def test_bare_rollouts_have_no_agreement_to_show():
    tallies = Collector().read([FIXTURES / "rollouts_gpt-4.1.jsonl"])
    assert tallies.records["rollouts"] == 12 and not tallies.agreement  # no verdicts in this file
    assert tallies.rollouts == {"rollouts_gpt-4.1": 12}


def test_the_page_states_what_it_read_and_draws_every_figure(tmp_path, run_dir):
    out = tmp_path / "report"
    done = run_script("report.py", str(run_dir), "--out", str(out), "--dataset-name", "vqav2")
    assert done.returncode == 0, done.stderr
    page = (out / "index.html").read_text()
    for name in FIGURES:
        assert f"src='{name}'" in page
        with Image.open(out / name) as image:
            image.verify()
    total_rollouts = len(read_jsonl(run_dir / "rollouts.jsonl"))
    assert f"<td>rollouts</td><td>{total_rollouts}</td>" in page
    # seed/ holds the 12 rollouts bare and verified: counted once, verified
    assert "<td>verified rollouts</td><td>12</td>" in page and "(counted once)</td><td>12</td>" in page
    assert f"{run_dir / 'broken.jsonl'}:2: invalid JSON" in page and "<td>unreadable lines</td><td>2</td>" in page
    summary = json.loads((run_dir / "rollouts.jsonl.summary.json").read_text())["requests"]
    price_in, price_out = model_price("gpt-4.1-mini")
    cost = (summary["prompt_tokens"] * price_in + summary["completion_tokens"] * price_out) / 1e6
    assert f"<td>{summary['sent']}</td>" in page and f"${cost:,.2f}" in page


def test_consensus_and_agreement_counted_from_the_real_verdicts(run_dir):
    tallies = Collector().read([run_dir / "seed"])
    # 7056ee67 and eeb7c051: Monte-Carlo zero from step 1, judge Correct; 63f5366b, 1c280e40: both sound
    assert tallies.agreement == {("1", "Correct"): 2, ("none", "Correct"): 2}
    assert tallies.kept["consensus"] == {"kept": 2, "disagree_mc_error_judge_correct": 2, "no_verdict": 8}
    assert tallies.kept["mc-hard"] == {"kept": 12}


def test_nothing_readable_is_bad_input(tmp_path):
    done = run_script("report.py", str(tmp_path / "missing"), "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and "not found" in done.stderr


def test_the_page_renders_in_a_headless_browser(tmp_path, run_dir):
    out = tmp_path / "report"
    assert run_script("report.py", str(run_dir), "--out", str(out)).returncode == 0
    shot = chromium.screenshot(out / "index.html", tmp_path / "shot.png", tmp_path / "profile")
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50  # figures drawn, not a blank or broken-image page
    assert re.search(r"rollkit run report", (out / "index.html").read_text())


def test_exports_in_the_folder_are_named_not_counted_as_unreadable(tmp_path, run_dir):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "rollouts.jsonl").write_text((run_dir / "rollouts.jsonl").read_text())
    for fmt in ("trl-prm", "sft", "visualprm"):
        done = run_script("export_dataset.py", "--rollouts", str(folder / "rollouts.jsonl"), "--format", fmt,
                          "--fill-unmeasured", "--dataset-name", "vqav2", "--output", str(folder / f"{fmt}.jsonl"))
        assert done.returncode == 0, done.stderr
    tallies = Collector().read([folder])
    assert tallies.bad_lines == 0 and tallies.records["rollouts"] == len(read_jsonl(folder / "rollouts.jsonl"))
    named = [line for line in tallies.unusable if "training rows of an export" in line]
    assert sorted(Path(line.split(":")[0]).name for line in named) == ["sft.jsonl", "trl-prm.jsonl", "visualprm.jsonl"]
    assert not any(".rollkit" in s.source for s in tallies.stages)  # an export's summary is not a stage
