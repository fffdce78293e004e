"""report.py's examples page on the seed's real rollouts and verdicts (plus judge replies that name a
wrong step), verified into another folder than their images; and the page in headless chromium."""

from __future__ import annotations

import colorsys
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from rollkit.report.examples import MAX_OTHERS
from tests.support import FIXTURES, chromium, read_jsonl, run_script
from tests.support.export import MERGED, VERDICTS, _verified_with_errors


@pytest.fixture(scope="module")
def verified(tmp_path_factory) -> Path:
    """A folder of verified files written away from the images: the seed's 12 with o4-mini's
    verdicts, and 3 seed rollouts whose judge replies are wrong at perception 1, reasoning 2, none."""
    folder = tmp_path_factory.mktemp("run")
    done = run_script("merge_and_map_batch.py", "map", "--rollouts", str(MERGED), "--results", str(VERDICTS),
                      "--output", str(folder / "verified" / "seed.jsonl"))
    assert done.returncode == 0, done.stderr
    (folder / "cases").mkdir()
    shutil.copy(_verified_with_errors(folder / "cases"), folder / "verified" / "cases.jsonl")
    return folder / "verified"


def report(paths: list[Path], out: Path, *args: str) -> str:
    done = run_script("report.py", *map(str, paths), "--out", str(out), *args)
    assert done.returncode == 0, done.stderr
    assert "href='examples.html'" in (out / "index.html").read_text()
    return (out / "examples.html").read_text()


def shown(page: str) -> list[tuple[str, str]]:
    """(tag, rollout id) of each example in page order."""
    return re.findall(r"<p class='meta'>(Monte-Carlo and judge disagree|sample) · ([^ ]+) ·", page)


def test_disagreements_first_with_thumbnails_scores_and_the_judges_step(tmp_path, verified):
    out = tmp_path / "report"
    page = report([verified], out)
    examples = shown(page)
    # disagree: 7056ee67 and eeb7c051 (MC zero from step 1, judge Correct) and case1 (MC zero at
    # step 1, judge wrong at reasoning 2); case0 (both at step 1) and case2 (both sound) agree
    disagree = {rid[:8] for tag, rid in examples if tag != "sample"}
    assert disagree == {"7056ee67", "eeb7c051", "case1"}
    assert [tag for tag, _ in examples][:3] == ["Monte-Carlo and judge disagree"] * 3
    assert len(examples) == 3 + MAX_OTHERS and all(tag == "sample" for tag, _ in examples[3:])
    thumbs = re.findall(r"<img src='(thumbs/[0-9a-f]+\.jpg)'", page)
    assert len(thumbs) == len(examples) and "image not found" not in page
    for thumb in set(thumbs):
        with Image.open(out / thumb) as image:
            assert max(image.size) == 240
    # every step of case1 is shown with its score, the judge's step badged
    case1 = page.split("· case1 ·")[1].split("<div class='example'>")[0]
    record = read_jsonl(MERGED)[1]
    steps = record["steps_with_score"]
    assert case1.count("<li class='step") == len(steps)
    perception = record["response"].split("[Reasoning]")[0].count("</step_")
    assert re.search(rf"<li class='step judge-wrong' data-step='{perception + 1}'", case1)
    assert case1.count("judge: first wrong step") == 1 and "MC 0.00 (0/16)" in case1


def test_image_root_finds_images_a_verified_file_does_not_record(tmp_path, verified):
    old = tmp_path / "old" / "verified.jsonl"
    old.parent.mkdir()
    old.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "image_root"}) + "\n"
                           for r in read_jsonl(verified / "seed.jsonl")))
    lost = report([old], tmp_path / "lost")
    assert f"image not found: {old.parent.resolve() / 'images'}" in lost and "<img" not in lost
    found = report([old], tmp_path / "found", "--image-root", str(FIXTURES))
    assert "image not found" not in found and found.count("<img src='thumbs/") == len(shown(found))


def _rgb(hue: float) -> tuple[int, int, int]:
    """The background step_colour gives a step of that hue (hsl(h,65%,85%))."""
    return tuple(round(c * 255) for c in colorsys.hls_to_rgb(hue / 360, 0.85, 0.65))


def _near(colours: list[tuple[int, tuple]], target: tuple[int, ...], tolerance: int = 3) -> int:
    return sum(n for n, c in colours if all(abs(a - b) <= tolerance for a, b in zip(c, target, strict=True)))


def test_the_examples_render_in_a_headless_browser(tmp_path, verified):
    out = tmp_path / "report"
    page = report([verified], out)
    # after the page loaded, every thumbnail decoded to a real width
    probe = out / "probe.html"
    probe.write_text(page.replace("</body>", "<script>addEventListener('load', () => document.body.setAttribute("
                                  "'data-sizes', [...document.images].map(i => [i.naturalWidth, i.naturalHeight, "
                                  "i.width, i.height].join(' ')).join(',')))</script></body>"))
    dom = chromium.dump_dom(probe, tmp_path / "profile")
    sizes = [[int(n) for n in size.split()] for size in re.search(r'data-sizes="([\d ,]+)"', dom).group(1).split(",")]
    assert len(sizes) == len(shown(page))
    for natural_w, natural_h, w, h in sizes:  # decoded, and drawn 240 px wide without stretching
        assert natural_w > 0 and w == 240 and abs(h / w - natural_h / natural_w) < 0.02
    assert dom.count("<li class=\"step") == page.count("<li class='step")
    shot = chromium.screenshot(out / "examples.html", tmp_path / "shot.png", tmp_path / "profile2", "1000,3000")
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 22)
    assert len(colours) > 2000  # photographs, not a blank page or broken-image icons
    assert _near(colours, _rgb(0)) > 5000 and _near(colours, _rgb(120)) > 5000  # steps scored 0 and 1
    assert _near(colours, (204, 0, 0), 10) > 100  # the judge's first wrong step, outlined and badged
