"""The seed's score.py: `rollkit score` (rollkit/cli/score.py), run from the repo root as before."""

from rollkit.cli import run_script

if __name__ == "__main__":
    raise SystemExit(run_script("rollkit.cli.score"))  # Ctrl-C honoured before its imports
