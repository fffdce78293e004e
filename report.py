"""The seed's report.py: `rollkit report` (rollkit/cli/report.py), run from the repo root as before."""

from rollkit.cli import run_script

if __name__ == "__main__":
    raise SystemExit(run_script("rollkit.cli.report"))  # Ctrl-C honoured before its imports
