"""The seed's reject.py: `rollkit reject` (rollkit/cli/reject.py), run from the repo root as before."""

from rollkit.cli import run_script

if __name__ == "__main__":
    raise SystemExit(run_script("rollkit.cli.reject"))  # Ctrl-C honoured before its imports
