"""`rollkit VERB`: every verb is registered with its parser and main, `rollkit --help` lists them all,
and each seed script at the root is a shim with exactly its verb's flags."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from rollkit.cli import VERBS, verb_flags, verb_module
from tests.support import ROOT, script_env

SHIMS = {"sample": ["sampling.py"], "score": ["score.py"], "reject": ["reject.py"], "rollout": ["rollout.py"],
         "pack": ["merge_and_map_batch.py", "pack"], "map": ["merge_and_map_batch.py", "map"],
         "batch": ["batch_processor.py"], "export": ["export_dataset.py"], "report": ["report.py"],
         "pipeline": ["pipeline.py"], "check-answer": ["accuracy_reward.py"]}


def rollkit(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rollkit", *args], capture_output=True, text=True,
                          env=script_env(), cwd=cwd, timeout=120)


def flags_in(help_text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9_-]*", help_text))


def test_rollkit_help_lists_every_verb_with_one_line_and_loads_none():
    done = rollkit("--help")
    assert done.returncode == 0
    for verb, (module, summary) in VERBS.items():
        assert re.search(rf"^\s+{re.escape(verb)}\b", done.stdout, re.M), verb
        assert module.startswith("rollkit.cli.") and summary
    loaded = subprocess.run([sys.executable, "-c", "import sys, rollkit.cli; rollkit.cli.build_parser(); "
                             "print(sorted(m for m in sys.modules if m.startswith('rollkit.')))"],
                            capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert loaded.strip() == "['rollkit.cli', 'rollkit.cli.signals']"  # no verb's imports for the list


def test_no_verb_or_an_unknown_one_is_bad_usage():
    assert rollkit().returncode == 2
    unknown = rollkit("rollouts")
    assert unknown.returncode == 2 and "invalid choice: 'rollouts'" in unknown.stderr


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_a_parser_and_a_main(verb):
    module = verb_module(verb)
    assert callable(module.main) and module.build_parser().parse_known_args is not None
    assert verb_flags(verb) >= {"--help"}


@pytest.mark.parametrize("verb", sorted(SHIMS))
def test_each_seed_script_has_exactly_its_verbs_flags(verb):
    script, *sub = SHIMS[verb]
    shown = subprocess.run([sys.executable, str(ROOT / script), *sub, "--help"], capture_output=True, text=True,
                           env=script_env(), cwd=ROOT, timeout=120)
    assert shown.returncode == 0, shown.stderr
    # the verb's own help, less what its description mentions in passing
    assert {f for f in flags_in(shown.stdout) if f in verb_flags(verb)} == verb_flags(verb)
    assert (ROOT / script).read_text(encoding="utf-8").count("\n") <= 25  # a shim, not a second copy
