"""prm-score's two modes, measured. Prints figures; not a test.

    .venv/bin/python bench/bench_prm.py                       # the emulator: 1 endpoint, then 8
    .venv/bin/python bench/bench_prm.py --vllm-url http://127.0.0.1:PORT   # also a real vLLM running
                                                                          # tests/real's SmolLM2

Real vLLM (given --vllm-url): the same 8-step solutions scored in one request per solution
(prompt_logprobs) and one per step (top_logprobs): time, requests and prompt tokens per solution,
and prompt tokens served from the prefix cache. Emulator: solutions scored per second with one
endpoint and with 8 (`--endpoints`), each endpoint answering after --latency-ms, in one-request mode.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import _path  # noqa: F401

from rollkit.emulator.testing import run_emulators
from tests.support.prm import rollout_record, solution, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
STEPS = 8


def solutions(path: Path, count: int) -> Path:
    rng = random.Random(8)
    return write_jsonl(path, [rollout_record(f"How many boats are there? ({i})", "3",
                                             solution(rng, rng.choice([None, 2, 5]), "3", steps=STEPS), True,
                                             f"b{i}") for i in range(count)])


def score(inputs: Path, out: Path, model: str, endpoint: list[str], *flags: str) -> dict:
    command = [sys.executable, str(ROOT / "rollkit" / "cli" / "prm_score.py"), "--input", str(inputs),
               "--output", str(out), "--model", model, "--text-only", *endpoint, *flags]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "OPENAI_API_KEY": "bench", "PATH": "/usr/bin:/bin"})
    if done.returncode:
        raise SystemExit(f"prm-score failed:\n{done.stderr[-2000:]}")
    return json.loads(Path(f"{out}.summary.json").read_text())


def per_solution(summary: dict, count: int) -> str:
    r = summary["requests"]
    return (f"{summary['elapsed_seconds'] / count:.2f} s, {r['sent'] / count:.1f} requests, "
            f"{r['prompt_tokens'] / count:,.0f} prompt tokens ({r['cached_tokens'] / count:,.0f} cached)")


def real(url: str, folder: Path, count: int) -> None:
    inputs = solutions(folder / "real.jsonl", count)
    endpoint = ["--base-url", f"{url.rstrip('/')}/v1", "--concurrency", "8"]
    one = score(inputs, folder / "one.jsonl", "smollm2", endpoint, "--prm-mode", "one-request")
    per = score(inputs, folder / "per.jsonl", "smollm2", endpoint, "--prm-mode", "per-step")
    print(f"real vLLM, {count} solutions of {STEPS} steps, per solution:")
    print(f"  one-request  {per_solution(one, count)}")
    print(f"  per-step     {per_solution(per, count)}")
    print(f"  time ratio one-request / per-step: {one['elapsed_seconds'] / per['elapsed_seconds']:.2f}")


def emulated(folder: Path, count: int, latency: float, k: int) -> None:
    inputs = solutions(folder / "emu.jsonl", count)
    with run_emulators(*[["--no-auth", "--latency-ms", str(latency)]] * 8) as urls:
        table = folder / "endpoints.toml"
        table.write_text("".join(f'[[endpoint]]\nname = "e{i}"\nbase_url = "{u}/v1"\nmodel = "bench-prm"\n'
                                 for i, u in enumerate(urls)))
        rates = {}
        for name, endpoint in (("1 endpoint", ["--base-url", f"{urls[0]}/v1"]),
                               ("8 endpoints", ["--endpoints", str(table)])):
            summary = score(inputs, folder / f"{name[0]}.jsonl", "bench-prm", endpoint, "--prm-mode", "one-request",
                            "--concurrency", "64", "--prompt-logprobs", str(k))
            rates[name] = count / summary["elapsed_seconds"]
            print(f"emulator, {name}: {rates[name]:,.0f} solutions/s ({per_solution(summary, count)})")
    print(f"  ratio 8 / 1: {rates['8 endpoints'] / rates['1 endpoint']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-url", help="a vLLM serving tests/real's SmolLM2 as `smollm2`")
    parser.add_argument("--real-solutions", type=int, default=6)
    parser.add_argument("--solutions", type=int, default=800, help="emulator solutions")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="each emulator's answer time")
    parser.add_argument("--prompt-logprobs", type=int, default=20,
                        help="k asked of the emulators (their CPU time grows with it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prm-") as folder:
        if args.vllm_url:
            real(args.vllm_url, Path(folder), args.real_solutions)
        emulated(Path(folder), args.solutions, args.latency_ms, args.prompt_logprobs)


if __name__ == "__main__":
    main()
