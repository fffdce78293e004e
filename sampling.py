"""The seed's sampling.py: `rollkit sample` (rollkit/cli/sample.py), run from the repo root as before."""

from rollkit.cli import run_script

if __name__ == "__main__":
    raise SystemExit(run_script("rollkit.cli.sample"))  # Ctrl-C honoured before its imports
