"""`python -m rollkit.emulator`: the same as `rollkit emulator` (rollkit/cli/emulator.py)."""

from rollkit.cli.emulator import main

if __name__ == "__main__":
    raise SystemExit(main())
