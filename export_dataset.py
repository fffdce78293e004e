"""The seed's export_dataset.py: `rollkit export` (rollkit/cli/export.py), run from the repo root as before."""

from rollkit.cli import run_script

if __name__ == "__main__":
    raise SystemExit(run_script("rollkit.cli.export"))  # Ctrl-C honoured before its imports
