"""The seed's merge_and_map_batch.py: `rollkit pack` and `rollkit map` (rollkit/cli/pack.py, map.py), with
the seed's form without a subcommand (rollkit/cli/merge_and_map.py), run from the repo root as before."""

from rollkit.cli import run_script


def main(argv: list[str] | None = None) -> int:
    return run_script("rollkit.cli.merge_and_map", argv)  # Ctrl-C honoured before its imports


if __name__ == "__main__":
    raise SystemExit(main())
