"""The seed's score.py: `rollkit score` (rollkit/cli/score.py), run from the repo root as before."""

from rollkit.cli.score import main

if __name__ == "__main__":
    raise SystemExit(main())
