"""Peak memory of a whole stage loop as the input grows: 10k against 1M input lines.

    python bench/bench_stage_memory.py [--small 10000 --large 1000000]

Each size runs in a fresh process that imports the full engine (as reject.py does) and drives the
real StageRunner over a streamed JSONL input with a process step that answers at once, so what is
measured is the loop itself: input streaming, the done set, the in-run duplicate set, the output
log. Prints peak RSS (VmHWM) per size and their ratio (goal <= 1.5).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import asyncio, sys
sys.path.insert(0, sys.argv[3])
import rollkit.cli.reject  # noqa: F401  (the same imports as a real stage)
from rollkit.content.inputs import iter_inputs
from rollkit.stages.runner import Outcome, StageRunner

async def process(item, eid):
    return Outcome(record={"generated_answers": ["4"]})

runner = StageRunner("bench", sys.argv[2], concurrency=64).open()
asyncio.run(runner.run(iter_inputs(sys.argv[1]), process))
runner.close()
peak = next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]
print(int(peak) / 1024)
"""


def write_input(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for index in range(count):
            out.write(json.dumps({"question": f"How many apples are in basket {index}?", "answer": str(index % 10),
                                  "image": f"images/basket_{index % 1000}.jpg"}) + "\n")


def measure(count: int, folder: Path) -> tuple[float, float]:
    source, output = folder / f"in_{count}.jsonl", folder / f"out_{count}.jsonl"
    write_input(source, count)
    root = str(Path(__file__).resolve().parents[1])
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", CHILD, str(source), str(output), root],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1]), time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        small, small_time = measure(args.small, Path(folder))
        print(f"{args.small:>9,} input lines: peak RSS {small:6.1f} MB  ({small_time:.1f} s)", flush=True)
        large, large_time = measure(args.large, Path(folder))
        print(f"{args.large:>9,} input lines: peak RSS {large:6.1f} MB  ({large_time:.1f} s, "
              f"{args.large / large_time:,.0f} records/s through the loop)")
    print(f"peak RSS ratio {args.large:,} / {args.small:,}: {large / small:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
