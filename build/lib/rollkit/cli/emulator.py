"""`rollkit emulator`: the rehearsal server. Its flags belong to the emulator (rollkit/emulator/command.py),
which the engine never imports; `python -m rollkit.emulator` is the same command."""

from rollkit.emulator.command import build_parser, main

__all__ = ["build_parser", "main"]
