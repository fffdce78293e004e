"""The seed's merge_and_map_batch.py: `rollkit pack` and `rollkit map` (rollkit/cli/pack.py, map.py), with
the seed's form without a subcommand (rollkit/cli/merge_and_map.py), run from the repo root as before."""

from rollkit.cli import run_script

if __name__ == "__main__":
    raise SystemExit(run_script("rollkit.cli.merge_and_map"))  # Ctrl-C honoured before its imports
