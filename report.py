"""The seed's report.py: `rollkit report` (rollkit/cli/report.py), run from the repo root as before."""

from rollkit.cli.report import main

if __name__ == "__main__":
    raise SystemExit(main())
