"""The seed's score.py: `rollkit score` (rollkit/cli/score.py), run from the repo root as before."""

from rollkit.cli import run_script


def main(argv: list[str] | None = None) -> int:
    return run_script("rollkit.cli.score", argv)  # Ctrl-C honoured before its imports


if __name__ == "__main__":
    raise SystemExit(main())
