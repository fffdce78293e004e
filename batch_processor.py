"""The seed's batch_processor.py: `rollkit batch` (rollkit/cli/batch.py), run from the repo root as before."""

from rollkit.cli.batch import main

if __name__ == "__main__":
    raise SystemExit(main())
