"""How fast a stage resumes, and how its memory grows with the input. Prints figures; not a test.

    .venv/bin/python bench/bench_resume.py                 # 1 GB output, 10k vs 1M inputs
    .venv/bin/python bench/bench_resume.py --size-mb 200 --large 200000

1. Writes a synthetic stage output of --size-mb (rollout-like records of 1-2 KB, `entry_id`
   first, written by ResultLog.append), then times ResultLog.open() (lock, torn-tail check, scan
   of the done ids) against a naive scan that json.loads every line, in the same run. Both read
   the file from the page cache, as a restart right after a crash does.
2. In a fresh subprocess per size and mode, streams an input JSONL with iter_inputs and reports
   the peak RSS: "stream" (iter_inputs and entry_id alone), "first run" (a ResultLog done set
   built by appending a result per input), "restart" (the done set rebuilt by open(), every
   input found done). The done set is what grows with the input; the report says how much.

Everything is written under a temporary folder in /tmp, removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jsonlines

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rollkit.store.result_log import ResultLog  # noqa: E402

WORDS = ("the of and to in is that for it as with was on be by at this had not are but from or have an "
         "count number image left right red blue step answer total each there").split()


def synthetic_output(path: Path, size_mb: int) -> int:
    """A stage output of about size_mb MB: rollout-like records of 1-2 KB. Returns the record count."""
    rng = random.Random(0)
    responses = [" ".join(rng.choices(WORDS, k=rng.randint(120, 280))) for _ in range(512)]
    steps = [[{"step": " ".join(rng.choices(WORDS, k=12)), "score": rng.random(), "num_mc_correct": rng.randint(0, 16),
               "num_mc_total": 16} for _ in range(rng.randint(2, 5))] for _ in range(64)]
    target, count = size_mb << 20, 0
    with ResultLog(path, fsync_interval=30) as out:
        while count % 1000 or path.stat().st_size < target:
            eid = hashlib.md5(str(count).encode()).hexdigest()
            out.append({"entry_id": eid, "image": f"images/COCO_train2014_{count:012d}.jpg",
                        "question": f"How many objects are in picture {count}?", "answer": str(count % 9),
                        "response": responses[count % 512], "steps_with_score": steps[count % 64],
                        "model": "emulator"})
            count += 1
    return count


def naive_scan(path: Path) -> int:
    done = set()
    with open(path, "rb") as f:
        for line in f:
            done.add(json.loads(line)["entry_id"])
    return len(done)


def bench_scan(folder: Path, size_mb: int) -> None:
    path = folder / "out.jsonl"
    t0 = time.perf_counter()
    written = synthetic_output(path, size_mb)
    mb = path.stat().st_size / 1e6
    print(f"output: {mb:,.0f} MB, {written:,} records of {mb * 1e6 / written:,.0f} B "
          f"(written in {time.perf_counter() - t0:.1f} s)")
    t0, c0 = time.perf_counter(), time.process_time()
    naive = naive_scan(path)
    naive_s, naive_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    with ResultLog(path) as out:
        fast_s, fast_cpu = time.perf_counter() - t0, time.process_time() - c0
        assert len(out) == naive == written, (len(out), naive, written)
    print(f"ResultLog.open():   {fast_s:6.2f} s  {mb / fast_s:7,.0f} MB/s  {written / fast_s:11,.0f} ids/s"
          f"   (CPU {fast_cpu:.2f} s: {mb / fast_cpu:,.0f} MB/s)")
    print(f"naive json.loads:   {naive_s:6.2f} s  {mb / naive_s:7,.0f} MB/s  {written / naive_s:11,.0f} ids/s"
          f"   (CPU {naive_cpu:.2f} s: {mb / naive_cpu:,.0f} MB/s)")
    print(f"speed-up: {naive_s / fast_s:.1f}x wall, {naive_cpu / fast_cpu:.1f}x CPU; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


# Peak RSS is VmHWM of /proc/self/status: ru_maxrss would carry the parent's peak over fork+exec.
CHILD = """
import json, sys, time
from rollkit.store.result_log import ResultLog
from rollkit.content.inputs import entry_id, iter_inputs
def peak_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
inputs, output, mode = sys.argv[1:4]
idle_kb = peak_kb()
t0, n, table_bytes = time.perf_counter(), 0, 0
if mode == "stream":  # iter_inputs and entry_id alone
    for item in iter_inputs(inputs):
        n += entry_id(item.record) is not None
else:  # "first run" appends a result per input; "restart" finds every id done
    with ResultLog(output) as out:
        for item in iter_inputs(inputs):
            eid = entry_id(item.record)
            if eid not in out:
                out.append({"entry_id": eid, "answer": item.record["answer"]})
        n, table_bytes = len(out), out.index_bytes()
print(json.dumps({"n": n, "idle_mb": idle_kb / 1024, "peak_mb": peak_kb() / 1024, "table_mb": table_bytes / 2**20,
                  "seconds": time.perf_counter() - t0}))
"""
MODES = ("stream", "first run", "restart")


def input_file(path: Path, n: int) -> Path:
    with jsonlines.open(path, "w") as writer:
        for i in range(n):
            writer.write({"question": f"How many red objects are left of the blue one in scene {i}?",
                          "image": f"images/COCO_train2014_{i:012d}.jpg", "answer": str(i % 7),
                          "uid": hashlib.md5(str(i).encode()).hexdigest()})
    return path


def run_child(inputs: Path, output: Path, mode: str) -> dict:
    if mode == "first run":
        output.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-c", CHILD, str(inputs), str(output), mode], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def bench_memory(folder: Path, small: int, large: int) -> None:
    results = {}
    for n in (small, large):
        inputs = input_file(folder / f"in_{n}.jsonl", n)
        for mode in MODES:
            results[n, mode] = r = run_child(inputs, folder / f"out_{n}.jsonl", mode)
            extra = (f", done set {r['table_mb']:.1f} MB = {r['table_mb'] * 2**20 / r['n']:.1f} B/id"
                     if r["table_mb"] else "")
            print(f"{n:>9,} inputs, {mode:9}: peak RSS {r['peak_mb']:6.1f} MB (interpreter + imports "
                  f"{r['idle_mb']:.1f} MB), {r['seconds']:.1f} s{extra}")
        inputs.unlink()
    for mode in MODES:
        ratio = results[large, mode]["peak_mb"] / results[small, mode]["peak_mb"]
        print(f"peak RSS ratio {large:,} / {small:,} inputs, {mode}: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the synthetic output to scan")
    parser.add_argument("--small", type=int, default=10_000, help="input lines of the small memory run")
    parser.add_argument("--large", type=int, default=1_000_000, help="input lines of the large memory run")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="rollkit-bench-", dir="/tmp"))
    try:
        bench_scan(folder, args.size_mb)
        (folder / "out.jsonl").unlink()
        bench_memory(folder, args.small, args.large)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"bench peak RSS (this process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
