"""The seed's reject.py: `rollkit reject` (rollkit/cli/reject.py), run from the repo root as before."""

from rollkit.cli.reject import main

if __name__ == "__main__":
    raise SystemExit(main())
