"""The seed's image fields: `images`, then `image_path`, then `image`, whichever names a file that
exists; `--image-root`; a record whose image cannot be opened is never sent, in any stage."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from rollkit.content.images import ImageError, record_image_paths
from rollkit.content.inputs import entry_id, given_answers
from rollkit.store.digests import canonical_json
from tests.support import FIXTURES, read_jsonl, run_script
from tests.support.batch import FAST, process_batches

pytestmark = pytest.mark.timeout(120)

SEED_QUESTIONS = FIXTURES / "questions.jsonl"


def seed_shaped(tmp_path: Path) -> list[dict]:
    """The fixture's questions as the seed prepared them: `image` a dataset-relative name that is
    not on disk, `image_path` the file."""
    shutil.copytree(FIXTURES / "images", tmp_path / "images")
    rows = read_jsonl(SEED_QUESTIONS)
    for row in rows:
        row["image"] = "MMPR-v1.2-prompts/vqav2/" + Path(row["image_path"]).name
    return rows


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_image_path_is_read_and_ids_of_working_records_stay(tmp_path):
    row = seed_shaped(tmp_path)[0]
    field, paths = record_image_paths(row, tmp_path)
    assert field == "image_path" and paths == [str(tmp_path / row["image_path"])]
    # the id is still taken from `image`, as version 1 took it: outputs made before keep resuming
    v1 = {"question": row["question"], "images": [row["image"]]}
    assert entry_id(row, 2) == hashlib.md5(canonical_json(v1)).hexdigest()
    assert entry_id(row) == hashlib.md5(canonical_json({**v1, "answers": given_answers(row)})).hexdigest()
    only_path = {"question": row["question"], "image_path": row["image_path"]}
    assert entry_id(only_path) != entry_id({"question": row["question"]})
    assert record_image_paths({"question": "q", "images": [row["image_path"]], "image": "x.jpg"}, tmp_path)[0] == \
        "images"


def test_an_image_that_is_nowhere_names_every_field_tried(tmp_path):
    with pytest.raises(ImageError) as caught:
        record_image_paths({"question": "q", "image": "a/x.jpg", "image_path": "b/x.jpg"}, tmp_path)
    assert "image_path='b/x.jpg'" in str(caught.value) and "image='a/x.jpg'" in str(caught.value)
    assert record_image_paths({"question": "q"}, tmp_path) == (None, [])


def test_no_vision_request_goes_out_without_its_image(tmp_path, reject_args):
    from rollkit.emulator.testing import get_stats, run_emulator
    rows = seed_shaped(tmp_path)[:4]
    rows.append({"question": rows[0]["question"] + " (only image_path)", "answer": "1",
                 "image_path": rows[1]["image_path"]})
    rows.append({"question": "Which one is gone?", "answer": "1", "image": "gone/a.jpg", "image_path": "gone/b.jpg"})
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not an image")
    rows.append({"question": "Which one is broken?", "answer": "1", "image_path": "images/broken.jpg"})
    questions = write(tmp_path / "q.jsonl", rows)
    out = tmp_path / "out" / "sampled.jsonl"
    with run_emulator() as url:
        done = run_script("sampling.py", "--input_file", str(questions), "--output_file", str(out),
                          "--model_name", "gen", "--base-url", f"{url}/v1", "--answers_per_question", "2")
        stats = get_stats(url, with_keys=False)
    assert done.returncode == 0, done.stderr
    assert len(read_jsonl(out)) == 5
    assert stats["requests_by_image_parts"] == {"1": 5}  # one request per record (n=2), each with its image
    errors = {e["line"]: e for e in read_jsonl(f"{out}.errors.jsonl")}
    assert set(errors) == {6, 7} and {e["reason"] for e in errors.values()} == {"bad_image"}
    assert "image_path='gone/b.jpg'" in errors[6]["message"] and "image='gone/a.jpg'" in errors[6]["message"]
    assert "unreadable" in errors[7]["message"] and "image_path" in errors[7]["message"]


def test_image_root_and_pack_refuse_a_rollout_without_its_image(tmp_path):
    from rollkit.emulator.testing import get_stats, run_emulator
    rollouts = read_jsonl(FIXTURES / "rollouts_gpt-4.1.jsonl")[:3]
    for row in rollouts:
        row["image"] = "MMPR-v1.2-prompts/" + Path(row["image_path"]).name
    rollouts[2]["image_path"] = "images/missing.jpg"
    path = write(tmp_path / "rollouts" / "r.jsonl", rollouts)  # images are not beside it: --image-root
    batch_dir = tmp_path / "batches"
    args = ["pack", "--rollouts", str(path), "--out-dir", str(batch_dir), "--model", "dep", "--target", "openai"]
    without = run_script("merge_and_map_batch.py", *args)
    assert without.returncode == 0 and "packed 0 requests" in without.stdout, without.stdout + without.stderr
    shutil.rmtree(batch_dir)
    done = run_script("merge_and_map_batch.py", *args, "--image-root", str(FIXTURES))
    assert done.returncode == 0 and "packed 2 requests" in done.stdout, done.stdout + done.stderr
    errors = read_jsonl(batch_dir / "pack.errors.jsonl")
    assert [e["reason"] for e in errors] == ["bad_image"] and "images/missing.jpg" in errors[0]["message"]
    with run_emulator(*FAST) as url:
        ran = process_batches(batch_dir, url, "dep")
        stats = get_stats(url, with_keys=False)["batch"]
    assert ran.returncode == 0, ran.stderr
    assert stats["lines_by_image_parts"] == {"1": 2}


def test_sft_image_paths_open_from_the_sft_files_folder(tmp_path):
    from rollkit.stages.rejection import write_sft
    rows = seed_shaped(tmp_path / "data")
    output = tmp_path / "work" / "final.jsonl"  # outputs elsewhere: the records carry image_root
    output.parent.mkdir()
    kept = [{**row, "entry_id": f"e{i}", "original_question": row["question"], "best_answer": "2",
             "selected": True, "image_root": str(tmp_path / "data")} for i, row in enumerate(rows[:3])]
    kept.append({"question": "A picture on the web?", "entry_id": "e9", "original_question": "q", "best_answer": "1",
                 "selected": True, "image": "https://example.com/a.jpg"})
    output.write_text("".join(json.dumps(r) + "\n" for r in kept))
    sft = tmp_path / "elsewhere" / "deeper" / "sft.jsonl"
    sft.parent.mkdir(parents=True)
    assert write_sft(output, sft) == 4
    pairs = read_jsonl(sft)
    for pair, row in zip(pairs[:3], rows, strict=False):
        (path,) = pair["images"]
        assert not Path(path).is_absolute() and (sft.parent / path).resolve() == (tmp_path / "data" / row["image_path"])
        assert (sft.parent / path).read_bytes()[:2] == b"\xff\xd8"  # a JPEG: it opens from there
    assert pairs[3]["images"] == ["https://example.com/a.jpg"]


def test_a_dry_run_reports_a_record_whose_image_is_nowhere(tmp_path):
    rows = seed_shaped(tmp_path)[:2]
    rows.append({"question": "Gone?", "answer": "1", "image": "gone/a.jpg", "image_path": "gone/b.jpg"})
    questions = write(tmp_path / "q.jsonl", rows)
    done = run_script("sampling.py", "--input_file", str(questions), "--output_file", str(tmp_path / "o.jsonl"),
                      "--model_name", "gpt-4.1", "--base-url", "http://127.0.0.1:9/v1", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "2 records (1 bad), 2 requests" in done.stdout
    assert "q.jsonl:3: image not found" in done.stderr and "image_path='gone/b.jpg'" in done.stderr
