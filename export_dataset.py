"""The seed's export_dataset.py: `rollkit export` (rollkit/cli/export.py), run from the repo root as before."""

from rollkit.cli.export import main

if __name__ == "__main__":
    raise SystemExit(main())
