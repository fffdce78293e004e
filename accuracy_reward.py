"""The seed's accuracy_reward.py: `rollkit check-answer` (rollkit/cli/check_answer.py), and the answer
checks of rollkit.answers for `from accuracy_reward import parse_answer, check_answer, get_mode`."""

from rollkit.answers import (  # noqa: F401  (the seed's library names)
    anls_similarity,
    check_answer,
    check_answer_async,
    get_mode,
    parse_answer,
    register_format,
    register_mode,
    set_llm_judge,
)
from rollkit.cli import run_script


def main(argv: list[str] | None = None) -> int:
    return run_script("rollkit.cli.check_answer", argv)  # Ctrl-C honoured before its imports


if __name__ == "__main__":
    raise SystemExit(main())
