"""The seed's batch_processor.py: `rollkit batch` (rollkit/cli/batch.py), run from the repo root as before."""

from rollkit.cli import run_script

if __name__ == "__main__":
    raise SystemExit(run_script("rollkit.cli.batch"))  # Ctrl-C honoured before its imports
