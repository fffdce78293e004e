"""`rollkit map` (the seed's `merge_and_map_batch.py map`): Batch API results joined back onto the
rollouts. The whole story, with `pack`, is in rollkit/cli/batch_files.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from rollkit.batch.mapping import map_results
from rollkit.cli import batch_files
from rollkit.cli.common import new_parser


def add_arguments(mapping: argparse.ArgumentParser) -> None:
    batch_files.add_common(mapping)
    mapping.set_defaults(command="map")
    mapping.add_argument("--results", nargs="+", help="result files or folders (default: batch_files/SPLIT/results)")
    mapping.add_argument("--output", type=Path, help="output JSONL (default: verified_output_data_files/SPLIT.jsonl)")
    mapping.add_argument("--verification-model", help="model name to record when results do not say it")


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("map", "merge_and_map_batch.py map", batch_files.DESCRIPTION)
    add_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> None:
    report = map_results(args.rollouts, args.results, args.output, args.verification_model)
    print(report.summary())
    print(f"written to {args.output}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    return batch_files.run_checked(batch_files.finish_args(parser, parser.parse_args(argv)), run)
