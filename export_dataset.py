"""The seed's export_dataset.py: `rollkit export` (rollkit/cli/export.py), run from the repo root as before."""

from rollkit.cli import run_script


def main(argv: list[str] | None = None) -> int:
    return run_script("rollkit.cli.export", argv)  # Ctrl-C honoured before its imports


if __name__ == "__main__":
    raise SystemExit(main())
