"""The seed's sampling.py: `rollkit sample` (rollkit/cli/sample.py), run from the repo root as before."""

from rollkit.cli.sample import main

if __name__ == "__main__":
    raise SystemExit(main())
