"""Inputs read as they come: CSV, Parquet (with Hugging Face's embedded images), Arrow and dataset
folders written by `datasets`, OpenAI `messages` and ShareGPT `conversations`; a bad row names its
file and row, and the rows after it are still read."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from rollkit.content.embedded import IMAGE_CACHE_ENV
from rollkit.content.images import record_image_urls
from rollkit.content.inputs import InputError, count_inputs, entry_id, image_folder, iter_inputs


def png(color: str, size=(8, 6)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def image_cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(IMAGE_CACHE_ENV, str(folder))
    return folder


def test_csv_rows_keyed_by_header_with_a_bad_row_named(tmp_path):
    Image.open(io.BytesIO(png("red"))).save(tmp_path / "a.png")
    path = tmp_path / "q.csv"
    path.write_text('question,answer,image_path\n"How many, in all?",2,a.png\nbad,row,x.png,extra\n'
                    '"two\nlines",3,\n', encoding="utf-8")
    items = list(iter_inputs(path))
    assert [i.record for i in items if i.record] == [
        {"question": "How many, in all?", "answer": "2", "image_path": "a.png"},
        {"question": "two\nlines", "answer": "3"}]
    assert items[1].error == f"{path}:3: 4 cells for a header of 3 columns"
    assert items[2].line == 4 and items[0].line == 2
    urls = record_image_urls(items[0].record, image_folder(items[0].record, items[0].source))
    assert urls[0].startswith("data:image/png;base64,")
    assert count_inputs(path) is None


def test_parquet_with_embedded_images_streams_and_keeps_each_picture_once(tmp_path, image_cache):
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({
        "question": ["Which colour?", "Which colour?", "Which colour?", None],
        "answer": ["red", "blue", "red", "x"],
        "image": pa.array([{"bytes": png("red"), "path": "r.png"}, {"bytes": png("blue"), "path": None},
                           {"bytes": png("red"), "path": "again.png"}, {"bytes": b"not a picture", "path": None}],
                          type=image_type)})
    path = tmp_path / "train.parquet"
    pq.write_table(table, path, row_group_size=2)
    items = list(iter_inputs(path))
    assert [i.where for i in items] == [f"{path} row {n}" for n in (1, 2, 3, 4)]
    assert "image" in items[3].error and "not an image" in items[3].error
    first, second, third = (i.record for i in items[:3])
    assert first["image"] == third["image"] != second["image"] and first["image"].endswith(".png")
    assert sorted(p.name for p in image_cache.iterdir()) == sorted({first["image"], second["image"]})
    assert entry_id(first) == entry_id(third) != entry_id(second)  # the id follows the picture's bytes
    url = record_image_urls(first, image_folder(first, str(path)))[0]
    assert url == "data:image/png;base64," + __import__("base64").b64encode(png("red")).decode()
    assert count_inputs(path) == 4 and count_inputs(path, start=1) == 3
    assert [i.line for i in iter_inputs(path, start=2)] == [3, 4]


def test_hugging_face_dataset_parquet_and_save_to_disk(tmp_path):
    features = datasets.Features({"question": datasets.Value("string"), "answer": datasets.Value("string"),
                                  "image": datasets.Image()})
    rows = {"question": ["What is it?", "What colour?"], "answer": ["a square", "green"],
            "image": [Image.open(io.BytesIO(png("white"))), Image.open(io.BytesIO(png("green")))]}
    dataset = datasets.Dataset.from_dict(rows, features=features)
    dataset.to_parquet(tmp_path / "hf.parquet")
    dataset.save_to_disk(tmp_path / "saved")
    datasets.DatasetDict({"train": dataset}).save_to_disk(tmp_path / "dict")
    from_parquet, from_folder = list(iter_inputs(tmp_path / "hf.parquet")), list(iter_inputs(tmp_path / "saved"))
    assert [i.record for i in from_parquet] == [i.record for i in from_folder]
    assert [i.record["answer"] for i in from_folder] == ["a square", "green"]
    assert from_folder[1].where == f"{tmp_path / 'saved'} row 2"
    assert count_inputs(tmp_path / "saved") == 2
    for item in from_folder:
        assert record_image_urls(item.record, image_folder(item.record, item.source))[0].startswith("data:image/")
    with pytest.raises(InputError, match=r"DatasetDict; name one split's folder, e\.g\. .*dict/train"):
        iter_inputs(tmp_path / "dict")


def test_openai_messages_and_role_content_conversations(tmp_path):
    rows = [
        {"messages": [{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": [{"type": "text", "text": "What is shown?"},
                                                   {"type": "image_url", "image_url": {"url": "https://x/a.jpg"}}]},
                      {"role": "assistant", "content": "a cat"}]},
        {"conversations": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]},
        {"messages": [{"role": "assistant", "content": "no question here"}]},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    first, second, third = iter_inputs(path)
    assert first.record["conversations"] == [{"from": "system", "value": "Be brief."},
                                             {"from": "human", "value": "What is shown?"},
                                             {"from": "gpt", "value": "a cat"}]
    assert first.record["images"] == ["https://x/a.jpg"] and "messages" not in first.record
    assert second.record["conversations"][1] == {"from": "gpt", "value": "4"}
    assert third.record is None and third.error.startswith(f"{path}:3: no question")
