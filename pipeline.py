"""The seed's pipeline.py: `rollkit pipeline` (rollkit/cli/pipeline.py), run from the repo root as before."""

from rollkit.cli.pipeline import main

if __name__ == "__main__":
    raise SystemExit(main())
