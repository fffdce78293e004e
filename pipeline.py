"""The seed's pipeline.py: `rollkit pipeline` (rollkit/cli/pipeline.py), run from the repo root as before."""

from rollkit.cli import run_script

if __name__ == "__main__":
    raise SystemExit(run_script("rollkit.cli.pipeline"))  # Ctrl-C honoured before its imports
