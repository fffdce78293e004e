"""How fast export_dataset.py turns verified rollouts into rows, and whether its memory stays flat.

    .venv/bin/python bench/bench_export.py                      # 1M rollouts (and 250k for the memory ratio)
    .venv/bin/python bench/bench_export.py --rollouts 100000    # smaller, if the full run is too slow
    .venv/bin/python bench/bench_export.py --only visualprm     # visualprm rows on 200k rollouts (and 50k)

1. Writes N synthetic verified rollouts in map's shape (schema 2: 6 scored steps, a verdict, the
   judge's first incorrect step), 4 per question, with images from a small pool of real PNG files.
2. Baseline, in the same run: the floor any export pays, reading each line with json.loads and
   writing it back with json.dumps.
3. Exports N/4 and N rollouts (trl-prm, consensus labels, --split val=0.05, JSONL), N as
   Parquet, and N/4 and N as preference pairs, each in a fresh subprocess; prints rows/s, the ratio to the baseline, and peak RSS of
   each run with the ratio between the two sizes (flat memory: near 1).
4. visualprm on V rollouts (--visualprm-rollouts, default 200k) and V/4: conversations as JSONL
   (mc-hard labels), messages as Parquet, and --balance (which reads the input twice), with the
   baseline measured on the same V rollouts.

Everything is written under a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from PIL import Image  # noqa: E402

STEPS = 6


def make_input(folder: Path, count: int, seed: int = 0) -> Path:
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(8):
        name = f"images/p{i}.png"
        Image.new("RGB", (64, 48), (i * 30, 90, 160)).save(folder / name)
        images.append(name)
    path = folder / "verified.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for n in range(count):
            entry = f"{n // 4:032x}"
            first = rng.choice([None, None, 2, 4])
            scores = [1.0 if first is None or i < first else 0.0 for i in range(STEPS)]
            judge_wrong = first if rng.random() < 0.8 else rng.choice([None, 1, 3])
            steps = [{"step": f"Step {i} of rollout {n}: the {i}th object on the left is a red cube near the wall.",
                      "score": s, "num_mc_correct": int(4 * s), "num_mc_total": 4, "measured": True}
                     for i, s in enumerate(scores)]
            out.write(json.dumps({
                "question": f"How many red cubes are in picture {n // 4}?", "answer": "3",
                "image": images[(n // 4) % len(images)], "image_root": str(folder), "entry_id": entry,
                "rollout_id": f"{entry}:r{n % 4}", "response": "[Visual Elements] ...", "steps_with_score": steps,
                "first_incorrect_step": first, "is_correct": first is None, "verification_status": "ok",
                "conclusion": judge_wrong is None,
                "judge_first_incorrect_step": None if judge_wrong is None else
                {"section": "perception", "index": judge_wrong + 1, "step": judge_wrong},
            }) + "\n")
    return path


def child(args: argparse.Namespace) -> None:
    """Run one export (or the baseline) in this process; print seconds, rows and peak RSS as JSON."""
    import resource

    start = time.perf_counter()
    if args.child == "baseline":
        rows = 0
        with open(args.input, encoding="utf-8") as src, open(args.output, "w", encoding="utf-8") as dst:
            for line in src:
                dst.write(json.dumps(json.loads(line), ensure_ascii=False) + "\n")
                rows += 1
    else:
        from rollkit.export.labels import Policy
        from rollkit.export.run import Exporter, ExportSettings

        fmt = {"pairs": "pairs", "export": "trl-prm"}.get(args.child, "visualprm")
        settings = ExportSettings(inputs=[args.input], fmt=fmt, policy=Policy("consensus"),
                                  output=Path(args.output), splits=[("val", 0.05)])
        if fmt == "visualprm":
            settings = replace(settings, policy=Policy("mc-hard"), visualprm=visualprm_settings(args.child))
        counts = Exporter(settings).run()
        rows = counts.records
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds beside wall seconds: on a machine shared with other work, CPU time moves less
    print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "rows": rows, "rss_mb": usage.ru_maxrss / 1024}))


def visualprm_settings(mode: str):
    from rollkit.export.run import VisualPRMSettings
    from rollkit.export.visualprm import StepTokens, system_prompt

    tokens = StepTokens()
    return VisualPRMSettings(chat_schema="messages" if mode == "visualprm-messages" else "conversations",
                             tokens=tokens, system=system_prompt(None, tokens), balance=mode == "visualprm-balance")


def run_child(mode: str, source: Path, output: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, "--input", str(source), "--output", str(output)],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def head(source: Path, target: Path, lines: int) -> Path:
    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as dst:
        for n, line in enumerate(src):
            if n >= lines:
                break
            dst.write(line)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=1_000_000)
    parser.add_argument("--visualprm-rollouts", type=int, default=200_000)
    parser.add_argument("--only", choices=("prm", "visualprm"), help="run one part")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    folder = Path(tempfile.mkdtemp(prefix="bench_export_"))
    try:
        if args.only != "visualprm":
            prm_and_pairs(folder, args.rollouts)
        if args.only != "prm":
            visualprm(folder, args.visualprm_rollouts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(base: dict, runs: dict[str, dict]) -> None:
    base_rate, base_cpu = base["rows"] / base["seconds"], base["rows"] / base["cpu_seconds"]
    print(f"baseline (json.loads + json.dumps per line): {base_rate:,.0f} rows/s, {base_cpu:,.0f} rows per CPU "
          f"second, peak RSS {base['rss_mb']:.0f} MB")
    for name, run in runs.items():
        rate, cpu = run["rows"] / run["seconds"], run["rows"] / run["cpu_seconds"]
        print(f"export {name:15s} {run['rows']:>9,} rollouts: {rate:,.0f} rows/s ({rate / base_rate:.2f}x the "
              f"baseline), {cpu:,.0f} rows per CPU second ({cpu / base_cpu:.2f}x), peak RSS {run['rss_mb']:.0f} MB")


def inputs(folder: Path, count: int) -> tuple[Path, Path]:
    started = time.perf_counter()
    full = make_input(folder, count)
    small = head(full, folder / "quarter.jsonl", count // 4)
    print(f"input: {count:,} rollouts, {full.stat().st_size / 1e6:,.0f} MB "
          f"(written in {time.perf_counter() - started:.0f} s)")
    return full, small


def measure(folder: Path, count: int, plan: list[tuple[str, str, bool, str]]) -> dict[str, dict]:
    """Each (name, child mode, on the N/4 input?, output file) of `plan` in a fresh subprocess, after
    the baseline on the same N rollouts."""
    folder.mkdir(parents=True, exist_ok=True)
    full, small = inputs(folder, count)
    base = run_child("baseline", full, folder / "baseline.jsonl")
    runs = {name: run_child(mode, small if quarter else full, folder / output) for name, mode, quarter, output in plan}
    report(base, runs)
    return runs


def prm_and_pairs(folder: Path, count: int) -> None:
    runs = measure(folder, count, [("jsonl N/4", "export", True, "q.jsonl"), ("jsonl N", "export", False, "n.jsonl"),
                                   ("parquet N", "export", False, "n.parquet"),
                                   ("pairs N/4", "pairs", True, "pq.jsonl"), ("pairs N", "pairs", False, "pn.jsonl")])
    ratio = runs["jsonl N"]["rss_mb"] / runs["jsonl N/4"]["rss_mb"]
    print(f"peak RSS N / N/4: {ratio:.2f} (flat memory: near 1; the duplicate table holds 16 bytes a row)")
    ratio = runs["pairs N"]["rss_mb"] / runs["pairs N/4"]["rss_mb"]
    print(f"pairs, peak RSS N / N/4: {ratio:.2f} (rollouts without a partner wait on disk)")


def visualprm(folder: Path, count: int) -> None:
    runs = measure(folder / "visualprm", count, [
        ("visualprm V/4", "visualprm", True, "q.jsonl"), ("visualprm V", "visualprm", False, "n.jsonl"),
        ("vprm msgs pq V", "visualprm-messages", False, "n.parquet"),
        ("vprm balance V", "visualprm-balance", False, "b.jsonl")])
    ratio = runs["visualprm V"]["rss_mb"] / runs["visualprm V/4"]["rss_mb"]
    print(f"visualprm, peak RSS V / V/4: {ratio:.2f} (flat memory: near 1; --balance keeps 8 bytes a row)")


if __name__ == "__main__":
    main()
