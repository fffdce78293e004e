"""Helpers the export tests share: the seed's real rollouts and verdicts, exporting them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import FIXTURES, read_jsonl, run_script

ROLLOUTS = FIXTURES / "rollouts_gpt-4.1.jsonl"


MERGED = FIXTURES / "rollouts_gpt-4.1_merged.jsonl"


VERDICTS = FIXTURES / "verification_o4-mini.json"


def export(*args: str) -> tuple[int, str, str]:
    done = run_script("export_dataset.py", *args)
    return done.returncode, done.stdout, done.stderr


def summary(output: Path) -> dict:
    """The export summary, in the hidden folder beside the rows that `load_dataset(folder)` skips."""
    return json.loads((output.parent / ".rollkit" / f"{output.name}.summary.json").read_text())


def _verdict(perception: int, wrong: tuple[str, int] | None) -> str:
    """A reply in the judge format, wrong at (section, 1-based index) with every later step unread."""
    parts = ["[Visual Elements]"]
    for section, count in (("perception", perception), ("reasoning", 3)):
        if section == "reasoning":
            parts.append("[Reasoning]")
        for i in range(1, count + 1):
            bad = wrong == (section, i)
            parts.append(f"<analysis_{i}>\nChecked.\nVerdict: {'incorrect' if bad else 'correct'}\n</analysis_{i}>")
    parts.append(f"<conclusion>\n{'Incorrect' if wrong else 'Correct'}\n</conclusion>")
    return "\n".join(parts)


def _verified_with_errors(tmp_path: Path) -> Path:
    """Three seed rollouts mapped onto judge replies: wrong at perception 1, at reasoning 2, none."""
    merged = read_jsonl(MERGED)
    picks = [(merged[0], 6, ("perception", 1)), (merged[1], 4, ("reasoning", 2)), (merged[6], 4, None)]
    records = [{**r, "rollout_id": f"case{k}", "image_root": str(FIXTURES)} for k, (r, _, _) in enumerate(picks)]
    verdicts = [{"custom_id": f"case{k}", "verification_response": _verdict(n, wrong)}
                for k, (_, n, wrong) in enumerate(picks)]
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "v.json").write_text(json.dumps(verdicts))
    (tmp_path / "verified").mkdir()
    done = run_script("merge_and_map_batch.py", "map", "--rollouts", str(tmp_path / "r.jsonl"), "--results",
                      str(tmp_path / "v.json"), "--output", str(tmp_path / "verified" / "v.jsonl"))
    assert done.returncode == 0, done.stderr
    return tmp_path / "verified" / "v.jsonl"
