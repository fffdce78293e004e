"""`python -m rollkit`: the same as the `rollkit` command."""

from rollkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
