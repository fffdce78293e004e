"""`rollkit VERB`: the command line. One module per verb, each with `build_parser()` (its flags, the one
truth the pipeline and the Python API check keys against) and `main(argv) -> int` (its exit status);
`common` holds the flags every verb shares and the wrapper that turns errors into exit codes.

A new verb is a module here and a line in VERBS; the root scripts of the seed are shims over these.
Verb modules are imported only when their verb runs, so `rollkit --help` answers at once.

May import: every part of rollkit; nothing imports it but the scripts, `python -m rollkit`,
rollkit.workflow (to check flags) and the Python API in rollkit/__init__.py.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Mapping
from types import ModuleType

from rollkit.cli.signals import honour_ctrl_c

# verb -> (module, one line for `rollkit --help`)
VERBS: dict[str, tuple[str, str]] = {
    "sample": ("rollkit.cli.sample", "sample N candidate answers per question (the seed's sampling.py)"),
    "score": ("rollkit.cli.score", "score every sampled candidate with a judge model (score.py)"),
    "reject": ("rollkit.cli.reject", "rejection sampling end to end: sample, score, keep the best (reject.py)"),
    "rollout": ("rollkit.cli.rollout", "structured rollouts with Monte-Carlo step scores (rollout.py)"),
    "pack": ("rollkit.cli.pack", "pack rollouts into Batch API files for step-wise verification"),
    "batch": ("rollkit.cli.batch", "run packed files through the Batch API; --status, --cancel (batch_processor.py)"),
    "map": ("rollkit.cli.map", "join batch results back onto the rollouts (merge_and_map_batch.py map)"),
    "export": ("rollkit.cli.export", "rollouts to training sets: TRL/OpenRLHF PRM, SFT, pairs, VisualPRM"),
    "report": ("rollkit.cli.report", "a run's outputs to one HTML page with figures (report.py)"),
    "pipeline": ("rollkit.cli.pipeline", "rollout -> pack -> batch -> map -> export -> report from run.toml"),
    "emulator": ("rollkit.cli.emulator", "a local OpenAI/Azure-compatible server with seeded answers, for tests"),
    "check-answer": ("rollkit.cli.check_answer", "parse an answer from a response and check it (accuracy_reward.py)"),
    "prm-score": ("rollkit.cli.prm_score", "step scores from a served PRM for rollouts or candidates, and an aggregate"),
    "evaluate": ("rollkit.cli.evaluate", "best-of-N accuracy against N per picker, first-error F1 as ProcessBench"),
}


def run_script(module: str, argv: list[str] | None = None) -> int:
    """`module.main(argv)` for a root script or a verb, with Ctrl-C honoured before the module's
    imports (most of rollkit: a second or so, in which a SIGINT to a script started with SIGINT
    ignored would be lost); a Ctrl-C during them exits 130, nothing done."""
    honour_ctrl_c()
    try:
        entry = importlib.import_module(module).main
    except KeyboardInterrupt:
        print("interrupted while starting: nothing was done", file=sys.stderr)
        return 130
    return entry(argv)


def verb_module(verb: str) -> ModuleType:
    """The module of `verb` (its `build_parser` and `main`); KeyError for an unknown verb."""
    return importlib.import_module(VERBS[verb][0])


class UnknownFlag(ValueError):
    """A flag the verb's parser does not have (a config key with a typo, a flag of another verb)."""


@functools.cache
def verb_flags(verb: str) -> frozenset[str]:
    """Every `--flag` of `verb`, read off its own parser (the one truth)."""
    parser = verb_module(verb).build_parser()
    # argparse keeps no public list of a parser's options; _actions is the one every tool reads
    return frozenset(flag for action in parser._actions for flag in action.option_strings if flag.startswith("--"))


def flag_argv(verb: str, flags: Mapping[str, object], where: str, name: str | None = None) -> list[str]:
    """`{"num-rollouts": 4, "no-n": True}` -> ["--num-rollouts", "4", "--no-n"], each key found among the
    verb's flags spelled with dashes or underscores; `True` gives a switch, `False` and `None` leave the
    flag out, a list or tuple gives several values. UnknownFlag names `where` and the command (`name`)."""
    known = verb_flags(verb)
    argv: list[str] = []
    for key, value in flags.items():
        flag = next((f for f in (f"--{key}", f"--{key.replace('_', '-')}", f"--{key.replace('-', '_')}")
                     if f in known), None)
        if flag is None:
            raise UnknownFlag(f"{where}: {name or f'rollkit {verb}'} has no flag --{key}")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list | tuple):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def build_parser() -> argparse.ArgumentParser:
    from rollkit import __version__

    parser = argparse.ArgumentParser(
        prog="rollkit", description="Question datasets to verified LLM/VLM training data.",
        epilog="`rollkit VERB --help` shows a verb's flags. The seed's scripts (rollout.py, ...) run the same code.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"rollkit {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", title="verbs")
    for verb, (_, summary) in VERBS.items():
        verbs.add_parser(verb, help=summary, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`rollkit VERB ARGS...`: the verb's own `main(ARGS)` and its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in VERBS:
        parser = build_parser()
        if not argv:
            parser.print_help()
            return 2
        parser.parse_args(argv[:1])  # --help, --version, or an unknown verb (exit 2 naming the choices)
        return 2
    return run_script(VERBS[argv[0]][0], argv[1:])
