"""`rollkit emulator` (also `python -m rollkit.emulator`): run a local OpenAI/Azure-compatible
chat-completions server with synthetic, seeded answers.

    rollkit emulator --port 8000 --seed 1 --rpm 500 --tpm 200000 \\
        --answer-key input_data_files/VQAv2/questions.jsonl --fault-500 0.02 --latency-ms 300

then point any client at http://127.0.0.1:8000/v1 (OpenAI, `Authorization: Bearer <any key>`) or
http://127.0.0.1:8000/openai/deployments/<name>/chat/completions?api-version=2024-10-21 (Azure,
`api-key: <any key>`). The server prints exactly one line when ready:

    rollkit emulator listening on http://127.0.0.1:8000

Answers: structured step solutions for generation prompts, the rest of a solution for an assistant
prefix (or `continue_final_message`), 0-10 scores for prompts that ask for a "scale from 0 to 10",
and step verdicts for prompts that ask for a `<conclusion>`. The same request body always gets the
same answer. Responses say `"model": "emulator/<requested model>"`.

Rate limits are token buckets per model (OpenAI path) or deployment (Azure path), with the real
`x-ratelimit-*` headers and 429 bodies; `--window-seconds` shrinks the minute for fast tests.
Fault rates are probabilities in 0..1, drawn per request attempt from `--seed`.
Files and Batches: /v1/files and /v1/batches (and Azure's /openai/files, /openai/batches) validate
input files, enforce --batch-enqueued-tokens, and run each line through the same answers; a small
batch completes in a few seconds (--batch-time-scale shrinks that). Faults: --batch-fault-*.
Counters: GET /_emulator/stats, POST /_emulator/reset; an outage now: POST /_emulator/down?seconds=S.
Only 127.0.0.1 is ever bound.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace
from pathlib import Path

from rollkit.emulator import model_rules
from rollkit.emulator.answers import load_answer_key
from rollkit.emulator.config import ALLOWED_HOST, BatchSettings, EmulatorConfig, FaultRates
from rollkit.emulator.generation import add_generation_flags, generation_from_args
from rollkit.emulator.ratelimit import HEADER_STYLES
from rollkit.emulator.serving import serve


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a rate between 0 and 1")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    # `python -m rollkit.emulator` is how tests and run_demo.sh start it; `rollkit emulator` the same
    name = "python -m rollkit.emulator" if Path(sys.argv[0]).parent.name == "emulator" else "rollkit emulator"
    p = argparse.ArgumentParser(prog=name, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_server_flags(p)
    _add_fault_flags(p)
    _add_answer_flags(p)
    _add_batch_flags(p)
    add_generation_flags(p)
    model_rules.add_flags(p)
    p.add_argument("--log-level", default="WARNING", help="DEBUG logs each request, never its key (default: WARNING)")
    return p


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=ALLOWED_HOST, help="must be 127.0.0.1 (the only host allowed)")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="seeds answers and faults (default: 0)")
    p.add_argument("--rpm", type=int, default=0, help="requests per window, 0 = unlimited (default: 0)")
    p.add_argument("--tpm", type=int, default=0, help="tokens per window, 0 = unlimited (default: 0)")
    p.add_argument("--window-seconds", type=float, default=60.0, help="rate-limit window (default: 60)")
    p.add_argument("--burst-seconds", type=_positive, default=10.0,
                   help="seconds of a minute's budget usable at once (Azure: 1 or 10; default: 10)")
    p.add_argument("--count-rejected", action="store_true",
                   help="a 429 still uses up a request of the budget, as on OpenAI")
    p.add_argument("--headers", choices=HEADER_STYLES, default="openai",
                   help="rate-limit headers: openai (all six), azure (remaining-* only), none (default: openai)")
    p.add_argument("--headers-unknown", type=_rate, default=0.0,
                   help="share of remaining-* values sent as -1, as Azure sometimes does (default: 0)")
    p.add_argument("--no-retry-after", action="store_true", help="429s carry no retry-after headers")
    p.add_argument("--down-at", type=_non_negative,
                   help="go down this many seconds after start: refuse connections, cut open ones")
    p.add_argument("--down-for", type=_non_negative, default=0.0,
                   help="stay down this long, then serve again on the same port (default: 0)")
    p.add_argument("--latency-ms", type=_non_negative, default=0.0, help="mean answer latency (default: 0)")


def _add_fault_flags(p: argparse.ArgumentParser) -> None:
    faults = p.add_argument_group("fault injection (probabilities 0..1, default 0)")
    for name, help_text in (
        ("429", "429 whatever the budget"), ("500", "500/502/503"), ("timeout", "stall --timeout-sleep s"),
        ("reset", "reset the connection"), ("malformed", "200 with a cut-off JSON body"),
        ("content-filter", "400 content_filter or 200 finish_reason content_filter"),
        ("length", "200 with finish_reason length, content cut"),
    ):
        faults.add_argument(f"--fault-{name}", type=_rate, default=0.0, help=help_text)
    p.add_argument("--timeout-sleep", type=_non_negative, default=30.0, help="stall of a timeout fault (default: 30)")


def _add_answer_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--p-correct", type=_rate, default=0.6, help="a generation is right (default: 0.6)")
    p.add_argument("--p-continue-correct", type=_rate, default=0.8,
                   help="a continuation of an all-good prefix is right (default: 0.8)")
    p.add_argument("--judge-garbage", type=_rate, default=0.02, help="a judge reply ignores the format (default: 0.02)")
    p.add_argument("--realism", action="store_true",
                   help="an honest opponent for Monte-Carlo scoring: per-question difficulty, recoverable wrong "
                        "steps, varied lengths (overrides --p-correct and --p-continue-correct)")
    p.add_argument("--answer-key", type=Path, help="JSON/JSONL with question+answer or conversations records")
    p.add_argument("--require-key", help="accept only this API key (others get 401)")
    p.add_argument("--no-auth", action="store_true", help="accept requests without a key, like vLLM")
    p.add_argument("--prm-no-prompt-logprobs", action="store_true",
                   help="refuse prompt_logprobs with a 400, as OpenAI does (models named *prm*: emulator/prm.py)")
    p.add_argument("--prm-no-logprobs", action="store_true", help="answer logprobs: null (a server without them)")


def _add_batch_flags(p: argparse.ArgumentParser) -> None:
    batch = p.add_argument_group("Files and Batches APIs")
    batch.add_argument("--batch-time-scale", type=_non_negative, default=1.0,
                       help="multiplies every batch phase (validate 1 s, 0.02 s a line, finalize 0.5 s); "
                            "0.1 for fast tests (default: 1)")
    batch.add_argument("--batch-enqueued-tokens", type=int, default=0,
                       help="enqueued prompt tokens allowed per model/deployment, 0 = no limit (default: 0)")
    batch.add_argument("--batch-fail-fast", action="store_true",
                       help="Azure routes refuse an over-quota create with 400 token_limit_exceeded "
                            "(default: the batch fails in validation)")
    batch.add_argument("--batch-max-lines", type=int, default=0,
                       help="lines per input file, 0 = the service's (50,000 OpenAI, 100,000 Azure)")
    batch.add_argument("--batch-no-files-list", action="store_true",
                       help="GET /files answers 404, as on servers without files.list")
    batch.add_argument("--batch-no-batches-list", action="store_true", help="GET /batches answers 404")
    batch.add_argument("--batch-max-bytes", type=int, default=200 * 1024 * 1024, help="bytes per upload (default: 200 MiB)")
    for name, help_text in (
        ("fail", "a batch fails part way"), ("expire", "a batch expires part way, with partial output"),
        ("stall", "a batch stops progressing until cancelled"), ("line-500", "a line gets a 500"),
        ("content-filter", "a line's prompt is refused by the content filter"),
    ):
        batch.add_argument(f"--batch-fault-{name}", type=_rate, default=0.0, help=help_text)


def config_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> EmulatorConfig:
    generation = generation_from_args(parser or build_parser(), args)
    rates = FaultRates(rate_limit=args.fault_429, server_error=args.fault_500, timeout=args.fault_timeout,
                       reset=args.fault_reset, malformed=args.fault_malformed,
                       content_filter=args.fault_content_filter, length=args.fault_length)
    batch = BatchSettings(
        time_scale=args.batch_time_scale, enqueued_tokens=args.batch_enqueued_tokens, fail_fast=args.batch_fail_fast,
        max_lines=args.batch_max_lines, max_bytes=args.batch_max_bytes, fault_fail=args.batch_fault_fail,
        fault_expire=args.batch_fault_expire, fault_stall=args.batch_fault_stall,
        fault_line_500=args.batch_fault_line_500, fault_content_filter=args.batch_fault_content_filter,
        files_list=not args.batch_no_files_list, batches_list=not args.batch_no_batches_list)
    config = EmulatorConfig(
        host=args.host, port=args.port, seed=args.seed, rpm=args.rpm, tpm=args.tpm,
        window_seconds=args.window_seconds, burst_seconds=args.burst_seconds,
        count_rejected=args.count_rejected, header_style=args.headers, unknown_share=args.headers_unknown,
        retry_after=not args.no_retry_after, down_at=args.down_at, down_for=args.down_for, latency_ms=args.latency_ms, timeout_sleep=args.timeout_sleep,
        faults=rates, p_correct=args.p_correct, p_continue_correct=args.p_continue_correct,
        judge_garbage=args.judge_garbage, answer_key=args.answer_key, require_key=args.require_key,
        no_auth=args.no_auth, batch=batch,
    )
    config = replace(config, rules=model_rules.rules_from_args(args))
    config = replace(config, prm_prompt_logprobs=not args.prm_no_prompt_logprobs,
                     prm_logprobs=not args.prm_no_logprobs)
    return replace(config, realism=args.realism, generation=generation)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.host != ALLOWED_HOST:
        parser.error(f"--host {args.host} refused: the emulator only binds {ALLOWED_HOST}")
    if args.window_seconds <= 0:
        parser.error("--window-seconds must be positive")
    if args.rpm < 0 or args.tpm < 0:
        parser.error("--rpm and --tpm must be 0 (unlimited) or positive")
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = config_from_args(args, parser)
    answer_key = load_answer_key(config.answer_key) if config.answer_key else {}
    asyncio.run(serve(config, answer_key))
    return 0
