"""The seed's sampling.py: `rollkit sample` (rollkit/cli/sample.py), run from the repo root as before."""

from rollkit.cli import run_script


def main(argv: list[str] | None = None) -> int:
    return run_script("rollkit.cli.sample", argv)  # Ctrl-C honoured before its imports


if __name__ == "__main__":
    raise SystemExit(main())
