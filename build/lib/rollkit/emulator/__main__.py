"""`python -m rollkit.emulator`: the same as `rollkit emulator` (rollkit/emulator/command.py)."""

from rollkit.emulator.command import main

if __name__ == "__main__":
    raise SystemExit(main())
