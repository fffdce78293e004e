"""The seed's rollout.py: `rollkit rollout` (rollkit/cli/rollout.py), run from the repo root as before."""

from rollkit.cli import run_script

if __name__ == "__main__":
    raise SystemExit(run_script("rollkit.cli.rollout"))  # Ctrl-C honoured before its imports
