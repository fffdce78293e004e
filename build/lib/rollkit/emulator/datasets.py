"""Synthetic question sets for tests and benchmarks: any size, optionally with small images.

The emulator knows the truth for these questions without an answer key (`truth_for_question`), so
a test can check what a stage made of them.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from rollkit.emulator.answers import truth_for_question


def write_images(folder: Path, count: int, size: tuple[int, int] = (64, 48)) -> list[str]:
    """`count` small distinct PNGs; returns their names relative to `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"img_{index:05d}.png"
        Image.new("RGB", size, ((index * 37) % 256, (index * 91) % 256, (index * 13) % 256)).save(folder / name)
        names.append(name)
    return names


def question_record(index: int, shape: str, image: str | None) -> dict:
    question = f"How many objects are in picture number {index}? Answer with a number."
    answer = truth_for_question(question)
    images = [image] if image else []
    if shape == "question":
        return {"uid": f"q{index}", "question": question, "answer": answer, **({"image": image} if image else {})}
    return {"id": f"q{index}", "conversations": [{"from": "human", "value": question},
                                                 {"from": "gpt", "value": answer}], "images": images}


def write_questions(path: Path, count: int, *, images: int = 0, shape: str = "conversations") -> Path:
    """A JSONL of `count` questions; with `images` > 0 they cycle over that many image files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = write_images(path.parent / "images", images) if images else []
    with open(path, "w", encoding="utf-8") as out:
        for index in range(count):
            image = f"images/{names[index % len(names)]}" if names else None
            out.write(json.dumps(question_record(index, shape, image)) + "\n")
    return path
