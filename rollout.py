"""The seed's rollout.py: `rollkit rollout` (rollkit/cli/rollout.py), run from the repo root as before."""

from rollkit.cli.rollout import main

if __name__ == "__main__":
    raise SystemExit(main())
