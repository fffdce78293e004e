"""The Python API: the README's example runs as written, configs are checked against the verbs' own
parsers, failures carry the command line's exit status, and `import rollkit` stays light."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys

import pytest

import rollkit
from rollkit.content.inputs import InputError
from tests.support import ROOT


def readme_example() -> str:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Python API\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_runs_as_written():
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(readme_example(), "README.md (Python API)", "exec"), {"__name__": "readme_example"})
    lines = printed.getvalue().splitlines()
    assert "4 rollouts, " in printed.getvalue()  # 2 questions x 2 rollouts, every one written
    assert any(line.endswith(":r0 " + line.split(" ", 1)[1]) and "[" in line for line in lines)
    assert "export trl-prm, labels mc-hard" in lines


def test_a_config_key_the_verb_does_not_have_is_refused_before_anything_runs(tmp_path):
    config = rollkit.RolloutConfig(input=tmp_path / "q.jsonl", output=tmp_path / "r.jsonl", model="m",
                                   flags={"num-rolouts": 3})
    with pytest.raises(ValueError, match="RolloutConfig: rollkit rollout has no flag --num-rolouts"):
        rollkit.run(config)
    assert not (tmp_path / "r.jsonl").exists()


def test_config_fields_become_the_verbs_flags(tmp_path):
    config = rollkit.ExportConfig(rollouts=[tmp_path / "a.jsonl", "b.jsonl"], format="sft", output="o.jsonl",
                                  flags={"balance": False, "absolute-images": True})
    assert config.argv() == ["--rollouts", str(tmp_path / "a.jsonl"), "b.jsonl", "--format", "sft",
                             "--output", "o.jsonl", "--absolute-images"]
    assert rollkit.ReportConfig(paths=["x", "y"], out="r").argv() == ["x", "y", "--out", "r"]


def test_a_failing_stage_raises_with_its_exit_status(tmp_path, capsys):
    config = rollkit.SampleConfig(input=tmp_path / "missing.jsonl", output=tmp_path / "s.jsonl", model="m",
                                  base_url="http://127.0.0.1:9/v1")
    with pytest.raises(rollkit.StageError) as failed:
        rollkit.run(config)
    assert failed.value.exit_code == 1 and "missing.jsonl" in capsys.readouterr().err
    assert rollkit.run(config, check=False).exit_code == 1
    usage = rollkit.run(rollkit.ExportConfig(rollouts="r.jsonl", format="nope", output="o"), check=False)
    assert usage.exit_code == 2  # argparse's bad usage, as on the command line


def test_records_round_trip_and_a_bad_line_names_its_place(tmp_path):
    records = [{"id": 1, "text": "caf\u00e9"}, {"id": 2, "nested": {"a": [1, 2]}}]
    path = rollkit.write_records(tmp_path / "out.jsonl", records)
    assert rollkit.read_records(path) == records
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(InputError, match=r"out.jsonl:3"):
        rollkit.read_records(path)


def test_import_rollkit_loads_no_engine():
    code = "import rollkit, sys; print(sorted(m for m in sys.modules if m.startswith('rollkit')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.strip() == "['rollkit']"


def test_a_stage_runs_from_inside_a_running_event_loop_as_in_a_notebook(tmp_path):
    config = rollkit.SampleConfig(input=tmp_path / "missing.jsonl", output=tmp_path / "s.jsonl", model="m",
                                  base_url="http://127.0.0.1:9/v1")

    async def notebook_cell():
        return rollkit.run(config, check=False)

    assert asyncio.run(notebook_cell()).exit_code == 1  # the stage's own asyncio.run got a thread of its own
