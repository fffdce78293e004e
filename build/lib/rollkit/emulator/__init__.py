"""A local OpenAI/Azure-compatible chat-completions server with seeded synthetic answers.

Run it with ``rollkit emulator --help`` (or ``python -m rollkit.emulator``; its flags are in
`command.py`); start it from tests with ``rollkit.emulator.testing.run_emulator``. The ground truth of its answers is public:
`truth_for_question`, `is_bad_step`, `first_wrong_step` (see `policy.py`), and `request_key`
(the key of `GET /_emulator/stats`).
"""

from rollkit.emulator.answers import truth_for_question
from rollkit.emulator.stats import request_key
from rollkit.emulator.steps_text import first_wrong_step, is_bad_step

__all__ = ["first_wrong_step", "is_bad_step", "request_key", "truth_for_question"]
