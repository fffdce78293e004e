"""The seed's merge_and_map_batch.py: `pack` and `map` under one command, and its form without a
subcommand (it packed, and mapped with --map). The verbs themselves are rollkit/cli/pack.py and map.py."""

from __future__ import annotations

import argparse
import sys

from rollkit.cli import batch_files, pack
from rollkit.cli import map as map_verb


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="merge_and_map_batch.py", description=batch_files.DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    pack.add_arguments(commands.add_parser("pack", help="pack rollouts into batch input files"))
    map_verb.add_arguments(commands.add_parser("map", help="join batch results back onto the rollouts"))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("pack", "map", "-h", "--help"):
        # the seed's command line had no subcommand: it packed, and mapped with --map
        argv = ["map", *[a for a in argv if a != "--map"]] if "--map" in argv else ["pack", *argv]
    parser = build_parser()
    args = batch_files.finish_args(parser, parser.parse_args(argv))
    return batch_files.run_checked(args, pack.run if args.command == "pack" else map_verb.run)
