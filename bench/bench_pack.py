"""How fast `pack` runs, whether its memory stays flat, and how full its files are. Prints figures.

    .venv/bin/python bench/bench_pack.py                     # 100k rollouts (and 25k for the memory ratio)
    .venv/bin/python bench/bench_pack.py --rollouts 20000    # smaller, if the full run is too slow

1. Writes N synthetic rollouts (structured step solutions, ~1-2 KB each) referring to a pool of
   synthetic PNG images of real-world sizes (640x480 photos up to 1080x3000 infographics). The
   second half of the input is another "dataset": taller images and longer solutions, as when
   rollouts of two datasets are packed together.
2. Packs every fourth rollout (N/4, the same mix) and all N, each in a fresh subprocess, and reports MB/s of rollout input, peak
   RSS of each run and their ratio (flat memory: ratio near 1), and image encodings vs images.
3. Fill ratio at a token limit per file (--max-tokens-per-file): estimated tokens in each file over
   the limit, for `pack` (exact per-request counts) and for the seed's way of packing by averages
   (average tokens of the first 1,000 lines x lines, cut at 80% of the limit to be safe), over the
   same requests in the same order; and the same for the first dataset alone, where averages
   work best. Files over the limit would fail with token_limit_exceeded.

Everything is written under a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

SIZES_A = [(640, 480), (640, 427), (500, 375), (1024, 768), (800, 600)]  # photos (VQAv2-like)
SIZES_B = [(1080, 3000), (1200, 2400), (800, 2200), (1500, 1500)]  # infographics: more tiles
SEED_SAMPLE = 1000
SEED_MARGIN = 0.8


def make_input(folder: Path, count: int, images: int, seed: int = 0) -> Path:
    from rollkit.emulator.policy import continue_solution

    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    names = {"a": [], "b": []}
    for i in range(images):
        kind = "a" if i % 2 == 0 else "b"
        size = rng.choice(SIZES_A if kind == "a" else SIZES_B)
        name = f"images/{kind}_{i:05d}.png"
        Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256))).save(folder / name)
        names[kind].append(name)
    path = folder / "rollouts.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for n in range(count):
            kind = "a" if n < count // 2 else "b"
            question = f"How many objects of kind {n % 997} are in picture {n // 4}?"
            response = continue_solution(rng, "", str(n % 10), 0.5)
            if kind == "b":  # longer solutions in the second dataset
                response = response.replace("</step_1>", " Reading the small print of the legend as well. " * 6
                                            + "</step_1>", 1)
            image = names[kind][(n // 4) % len(names[kind])]
            out.write(json.dumps({"question": question, "image": image, "response": response,
                                  "answer": str(n % 10), "uid": f"q{n // 4}"}) + "\n")
    return path


def child(args: argparse.Namespace) -> None:
    """Pack in this process and print seconds, peak RSS and image encodings as JSON."""
    import resource

    from rollkit.batch.limits import FileLimits
    from rollkit.batch.pack import Packer, PackSettings
    from rollkit.content.images import load_image

    limits = FileLimits(100_000, 200_000_000, args.max_tokens_per_file)
    settings = PackSettings(out_dir=Path(args.out_dir), model="gpt-4.1", limits=limits,
                            max_completion_tokens=args.max_completion_tokens)
    start = time.perf_counter()
    report = Packer(settings).run([args.input])
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "requests": report.requests, "files": len(report.new_files),
                      "encodings": load_image.cache_info().misses}))


def run_child(input_path: Path, out_dir: Path, args: argparse.Namespace) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", "--input", str(input_path), "--out-dir", str(out_dir),
                           "--max-tokens-per-file", str(args.max_tokens_per_file),
                           "--max-completion-tokens", str(args.max_completion_tokens)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def every_fourth(path: Path, dest: Path) -> Path:
    """A quarter of the input with the same mix of images and lengths (for the memory ratio)."""
    with open(path, encoding="utf-8") as src, open(dest, "w", encoding="utf-8") as out:
        out.writelines(line for n, line in enumerate(src) if n % 4 == 0)
    return dest


def describe(files: list[int], limit: int) -> dict:
    full = files[:-1] or files  # the last file holds what is left
    return {"files": len(files), "mean_fill": statistics.fmean(f / limit for f in full),
            "min_fill": min(f / limit for f in full), "over_limit": sum(f > limit for f in files)}


def greedy(tokens: list[int], limit: int) -> list[int]:
    """pack's cut when only the token limit binds: fill each file until the next line would not fit."""
    files, current = [], 0
    for t in tokens:
        if current and current + t > limit:
            files.append(current)
            current = 0
        current += t
    return files + [current]


def by_averages(tokens: list[int], limit: int) -> tuple[list[int], int, float]:
    """The seed's way: average of the first lines x lines, cut at SEED_MARGIN of the limit."""
    average = statistics.fmean(tokens[:SEED_SAMPLE])
    per_file = max(1, math.floor(limit * SEED_MARGIN / average))
    return [sum(tokens[i:i + per_file]) for i in range(0, len(tokens), per_file)], per_file, average


def print_fill(out_dir: Path, limit: int) -> None:
    rows = [json.loads(line) for line in (out_dir / "packed_ids.jsonl").read_text().splitlines()]
    tokens = [r["tokens"] for r in rows]
    per_file: dict[str, int] = {}
    for r in rows:
        per_file[r["file"]] = per_file.get(r["file"], 0) + r["tokens"]
    print(f"\nfill at --max-tokens-per-file {limit:,} (estimated tokens per file / limit; the last file left out):")
    print(f"  {'':44}{'files':>7}{'mean fill':>11}{'min fill':>10}{'over limit':>12}")
    half = tokens[:len(tokens) // 2]
    seed_all, lines_all, average_all = by_averages(tokens, limit)
    seed_half, lines_half, _ = by_averages(half, limit)
    table = (("pack, whole input (files written)", list(per_file.values())),
             (f"seed, whole input ({lines_all} lines a file)", seed_all),
             ("pack, first dataset only (same cut)", greedy(half, limit)),
             (f"seed, first dataset only ({lines_half} lines a file)", seed_half))
    for name, files in table:
        f = describe(files, limit)
        print(f"  {name:44}{f['files']:>7}{f['mean_fill']:>11.3f}{f['min_fill']:>10.3f}{f['over_limit']:>12}")
    print(f"  seed: {average_all:.0f} tokens a line from the first {SEED_SAMPLE:,} lines, x{1 / SEED_MARGIN:.2f} "
          "for safety; files over the limit would fail with token_limit_exceeded")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=100_000, help="rollouts in the large run (default 100k)")
    parser.add_argument("--images", type=int, default=600, help="distinct images (default 600)")
    parser.add_argument("--max-tokens-per-file", type=int, default=2_000_000, help="token limit per file")
    parser.add_argument("--max-completion-tokens", type=int, default=1024, help="completion allowance per request")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    root = Path(tempfile.mkdtemp(prefix="bench_pack_"))
    try:
        start = time.perf_counter()
        big = make_input(root / "in", args.rollouts, args.images)
        print(f"input: {args.rollouts:,} rollouts, {big.stat().st_size / 1e6:.1f} MB JSONL, {args.images} images "
              f"(written in {time.perf_counter() - start:.1f} s)")
        small = every_fourth(big, root / "in" / "small.jsonl")
        results = {}
        for label, path in (("small", small), ("large", big)):
            results[label] = run_child(path, root / f"out_{label}", args)
            r, mb = results[label], path.stat().st_size / 1e6
            out_mb = sum(p.stat().st_size for p in (root / f"out_{label}").glob("*.jsonl")) / 1e6
            print(f"pack {label}: {r['requests']:,} rollouts, {mb:.1f} MB in {r['seconds']:.1f} s = {mb / r['seconds']:.1f} "
                  f"MB/s of rollouts ({r['requests'] / r['seconds']:,.0f} rollouts/s, {out_mb:,.0f} MB of batch files); "
                  f"peak RSS {r['maxrss_mb']:.0f} MB; {r['encodings']} image encodings")
        ratio = results["large"]["maxrss_mb"] / results["small"]["maxrss_mb"]
        print(f"peak RSS large/small: {ratio:.2f} for {args.rollouts / (args.rollouts // 4):.0f}x the input")
        print_fill(root / "out_large", args.max_tokens_per_file)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
