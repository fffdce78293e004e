"""The visualprm export in exactly the shape the seed's two PRM trainers read, on the seed's real rollouts:

- `--chat-schema messages` for its TRL SFTTrainer script: `messages` and `image` per row, the image put
  into the first user turn's `{"type": "image", "text": "<image>"}` item, one "+"/"-" assistant turn per
  step; in Parquet the image itself, which `load_dataset(folder)` gives back as a PIL image.
- `--chat-schema conversations` for its Qwen-VL data module with its default IMAGE_SIZE=smart-resize:
  `image_qwen_smart_resize`, a copy resized by Qwen's rule, relative to the export folder; `<image>` once.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import datasets
import pytest
from PIL import Image

from rollkit.export.images import ImageTooLong, smart_size
from tests.support import FIXTURES, read_jsonl
from tests.support.export import ROLLOUTS, export

SEED = read_jsonl(ROLLOUTS)  # every rollout becomes a row, in order
QWEN_MIN, QWEN_MAX = 56 * 56, 28 * 28 * 1280  # Qwen2-VL's image processor defaults


def steps_of(record: dict) -> list[bool]:
    return [s["score"] > 0 for s in record["steps_with_score"]]


def original(record: dict) -> Path:
    return (FIXTURES / record["image"]).resolve()


def run(out: Path, *args: str) -> str:
    code, stdout, stderr = export("--rollouts", str(ROLLOUTS), "--format", "visualprm", "--labels", "mc-hard",
                                  "--output", str(out), *args)
    assert code == 0, stderr
    return stdout


def load_folder(folder: Path, tmp_path: Path) -> datasets.Dataset:
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["train"]
    return loaded["train"]


@pytest.mark.parametrize("suffix", ["jsonl", "parquet"])
def test_messages_rows_are_what_the_seeds_sft_script_reads(tmp_path, suffix):
    out = tmp_path / "export" / f"prm.{suffix}"
    run(out, "--chat-schema", "messages")
    rows = load_folder(out.parent, tmp_path)
    assert rows.num_rows == len(SEED) == 12
    for row, record in zip(rows, SEED, strict=True):
        messages = row["messages"]
        assert {"messages", "image"} <= set(row)
        marks = steps_of(record)
        assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * len(marks)
        # the item the seed's collator puts the row's image into: the first user turn's image item
        items = [(n, item) for n, m in enumerate(messages) for item in m["content"] if item["type"] == "image"]
        assert items == [(1, {"type": "image", "text": "<image>"})]
        assert all(len(m["content"]) == 1 and m["content"][0]["type"] == "text" for m in messages[2:])
        assert [m["content"][0]["text"] for m in messages[2::2]] == ["+" if good else "-" for good in marks]
        if suffix == "parquet":  # the image itself: trains from any folder or a dataset repository
            assert isinstance(row["image"], Image.Image)
            with Image.open(original(record)) as source:
                assert row["image"].size == source.size and row["image"].tobytes() == source.tobytes()
        else:  # a path relative to the export
            assert (out.parent / row["image"]).resolve() == original(record)
            with Image.open(out.parent / row["image"]) as image:
                image.load()


def test_conversations_rows_are_what_the_seeds_qwen_data_module_reads_by_default(tmp_path):
    out = tmp_path / "export" / "prm.jsonl"
    stdout = run(out)
    rows = read_jsonl(out)
    assert len(rows) == 12 and rows == list(load_folder(out.parent, tmp_path))
    for row, record in zip(rows, SEED, strict=True):
        turns = row["conversations"]
        marks = steps_of(record)
        assert {"conversations", "image", "image_qwen_smart_resize"} <= set(row)
        assert [t["from"] for t in turns] == ["system"] + ["human", "gpt"] * len(marks)
        assert sum(t["value"].count("<image>") for t in turns) == 1 and turns[1]["value"].startswith("<image>\n")
        assert [t["value"] for t in turns[2::2]] == ["+" if good else "-" for good in marks]
        assert (out.parent / row["image"]).resolve() == original(record)  # `image` keeps the original
        copy = out.parent / row["image_qwen_smart_resize"]
        assert not Path(row["image_qwen_smart_resize"]).is_absolute() and copy.parent.name == ".qwen_smart_resize"
        with Image.open(copy) as resized, Image.open(original(record)) as source:
            width, height = resized.size
            assert width % 28 == 0 and height % 28 == 0 and QWEN_MIN <= width * height <= QWEN_MAX
            # the shape kept: each side within a patch of the original scaled by one factor
            scale = math.sqrt(width * height / (source.width * source.height))
            assert abs(width - source.width * scale) < 28 and abs(height - source.height * scale) < 28
    # written once per image, and a rerun writes nothing new
    copies = sorted((out.parent / ".qwen_smart_resize").iterdir())
    assert len(copies) == len({r["image"] for r in rows}) == 6 and "resized   6 new copies" in stdout
    times = [c.stat().st_mtime_ns for c in copies]
    before = out.read_bytes()
    assert "resized   0 new copies" in run(out)
    assert [c.stat().st_mtime_ns for c in sorted((out.parent / ".qwen_smart_resize").iterdir())] == times
    assert out.read_bytes() == before


def test_pixel_limits_follow_the_trainers_settings(tmp_path):
    # the seed's sweep trains with --min_pixels 12544 --max_pixels 200704
    out = tmp_path / "export" / "prm.jsonl"
    run(out, "--min-pixels", "12544", "--max-pixels", "200704")
    for row in read_jsonl(out):
        with Image.open(out.parent / row["image_qwen_smart_resize"]) as resized:
            assert 12544 <= resized.width * resized.height <= 200704
            assert resized.width % 28 == 0 and resized.height % 28 == 0
    for args in (["--min-pixels", "5000", "--max-pixels", "4000"], ["--max-pixels", "100"],
                 ["--chat-schema", "messages", "--max-pixels", "200704"]):
        code, _, stderr = export("--rollouts", str(ROLLOUTS), "--format", "visualprm", *args,
                                 "--output", str(tmp_path / "x.jsonl"))
        assert code == 2 and "pixels" in stderr


@pytest.mark.parametrize("limits", [(QWEN_MIN, QWEN_MAX), (12544, 200704), (784, 50176)])
def test_the_smart_resize_rule(limits):
    low, high = limits
    for height, width in itertools.product([1, 13, 27, 28, 50, 333, 480, 640, 1001, 3000, 8000], repeat=2):
        if max(height, width) > 200 * min(height, width):  # Qwen refuses such images
            with pytest.raises(ImageTooLong):
                smart_size(height, width, low, high)
            continue
        h, w = smart_size(height, width, low, high)
        assert h % 28 == 0 and w % 28 == 0 and low <= h * w <= high, (height, width, h, w)
        # one scale for both sides, each side within a patch of it (a side held at 28 aside)
        lowest = max((h - 28) / height if h > 28 else 0, (w - 28) / width if w > 28 else 0)
        assert lowest <= min((h + 28) / height, (w + 28) / width), (height, width, h, w)
    assert smart_size(480, 640) == (476, 644)  # in range: each side to its nearest multiple of 28
