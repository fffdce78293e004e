"""`rollkit pack` (the seed's `merge_and_map_batch.py pack`): rollouts into Batch API files for step-wise
verification. The whole story, with `map`, is in rollkit/cli/batch_files.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from rollkit.batch.limits import TARGETS, FileLimits
from rollkit.batch.pack import Packer, PackSettings
from rollkit.batch.verify_requests import DEFAULT_MAX_COMPLETION_TOKENS, JudgePrompt
from rollkit.cli import batch_files
from rollkit.cli.common import add_image_root_flag, new_parser


def add_arguments(pack: argparse.ArgumentParser) -> None:
    batch_files.add_common(pack)
    pack.set_defaults(command="pack")
    pack.add_argument("--out-dir", type=Path, help="folder of the batch files (default: batch_files/SPLIT)")
    pack.add_argument("--model", required=True,
                      help="`model` of every line: the deployment name on Azure, the served model name on vLLM")
    pack.add_argument("--target", choices=sorted(TARGETS),
                      help="whose limits, line url and model to write (default: from the endpoint flags, else azure)")
    routes = pack.add_argument_group("endpoint flags (only pick the default --target; pack calls nothing)")
    routes.add_argument("--azure-endpoint", help="Azure OpenAI resource: --target azure")
    routes.add_argument("--base-url", help="OpenAI or another Batch API: --target openai")
    routes.add_argument("--port", type=int, help="a local vLLM server: --target vllm (run the files with vllm run-batch)")
    pack.add_argument("--max-lines", type=int, help="requests per file (default: 100,000 azure, 50,000 openai)")
    pack.add_argument("--max-bytes", type=int, help="bytes per file (default: 200,000,000)")
    pack.add_argument("--max-tokens-per-file", type=int,
                      help="estimated tokens per file, 0 = no cap (default: 50M azure, none openai)")
    pack.add_argument("--max-completion-tokens", type=int, default=DEFAULT_MAX_COMPLETION_TOKENS,
                      help=f"judge reply budget per request (default: {DEFAULT_MAX_COMPLETION_TOKENS})")
    pack.add_argument("--max-model-len", type=int, metavar="N",
                      help="the served model's context (vllm's --max-model-len): each line's max_completion_tokens "
                           "is lowered so its prompt and reply fit in N; a line that cannot keep room for a reply "
                           "goes to pack.errors.jsonl (over_context). Without it `vllm run-batch` answers 400 to "
                           "lines over the context and still exits 0")
    pack.add_argument("--max-image-side", type=int, help="downscale images so the longest side fits")
    add_image_root_flag(pack)
    pack.add_argument("--prompt-file", metavar="FILE",
                      help="the judge's template instead of rollkit/prompts/verify_steps.txt: text with "
                           "{{question}} and {{solution}}; its name and sha256 go into manifest.json and map's output")
    pack.add_argument("--prefix", help="file name prefix (default: the split, or 'batch')")
    pack.add_argument("--verified", nargs="+", default=[],
                      help="result files or folders: rollouts with a good result there are left out")


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("pack", "merge_and_map_batch.py pack", batch_files.DESCRIPTION)
    add_arguments(parser)
    return parser


def pack_settings(args: argparse.Namespace) -> PackSettings:
    defaults = TARGETS[args.target].limits
    tokens = defaults.max_tokens if args.max_tokens_per_file is None else (args.max_tokens_per_file or None)
    limits = FileLimits(args.max_lines or defaults.max_lines, args.max_bytes or defaults.max_bytes, tokens)
    return PackSettings(out_dir=args.out_dir, model=args.model, target=args.target, limits=limits,
                        prefix=args.prefix or (Path(args.split).name if args.split else "batch"),
                        max_completion_tokens=args.max_completion_tokens, max_image_side=args.max_image_side,
                        max_model_len=args.max_model_len, verified=args.verified, image_root=args.image_root,
                        prompt=JudgePrompt.from_file(args.prompt_file) if args.prompt_file else JudgePrompt.built_in())


def run(args: argparse.Namespace) -> None:
    report = Packer(pack_settings(args)).run(args.rollouts)
    print(f"packed {report.requests} requests into {len(report.new_files)} new files in {args.out_dir} "
          f"(left out: {report.already_packed} already packed, {report.already_verified} already verified, "
          f"{report.duplicates} duplicate ids; {report.errors} errors in pack.errors.jsonl)")
    for entry in report.new_files:
        print(f"  {entry['name']}: {entry['lines']} lines, {entry['bytes']:,} bytes, "
              f"~{entry['tokens']:,} tokens")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    return batch_files.run_checked(batch_files.finish_args(parser, parser.parse_args(argv)), run)
