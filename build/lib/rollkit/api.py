"""The Python API: each verb of the `rollkit` command run from a typed config, in this process, by the same
code as the command line (its `main`), with its summary returned as an object; and the record files.

A config has the verb's common flags as typed fields (None: the verb's own default) and `flags` for any
other flag of the verb by its name (`{"mc-mode": "adaptive", "no-n": True}`); both are checked against
the verb's own parser before anything runs. A verb that ends with a non-zero exit status raises
StageError (its message went to stderr, as on the command line), unless `check=False`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

PathLike = str | os.PathLike
Paths = PathLike | Sequence[PathLike]


class StageError(RuntimeError):
    """A verb ended with a non-zero exit status: 1 fatal, 2 bad usage or input, 3 an outage (run it
    again later: finished work is kept), 130 interrupted."""

    def __init__(self, verb: str, exit_code: int) -> None:
        super().__init__(f"rollkit {verb} exited with status {exit_code} (its message is above, on stderr)")
        self.verb, self.exit_code = verb, exit_code


@dataclass(frozen=True)
class Summary:
    """What a verb did: its exit status, what it printed, and the figures of its `<output>.summary.json`
    (records written, failed, skipped; requests, tokens, 429s; endpoints) when the verb writes one."""

    verb: str
    exit_code: int
    printed: str
    data: dict = field(default_factory=dict)

    @property
    def records(self) -> dict:
        return self.data.get("records", {})

    @property
    def requests(self) -> dict:
        return self.data.get("requests", {})


@dataclass(kw_only=True)
class VerbConfig:
    """What every config has: `flags`, any other flag of the verb by its name."""

    VERB: ClassVar[str]
    POSITIONAL: ClassVar[tuple[str, ...]] = ()  # fields given as positional arguments
    SUMMARY_OF: ClassVar[str | None] = None  # the field whose path + ".summary.json" the verb writes
    flags: dict[str, Any] = field(default_factory=dict)

    def argv(self) -> list[str]:
        """The command line this config stands for (after `rollkit VERB`), checked against the parser."""
        from rollkit.cli import flag_argv

        values = {f.name: _plain(getattr(self, f.name)) for f in fields(self)
                  if f.name != "flags" and getattr(self, f.name) is not None}  # None: the verb's default
        positional = [str(v) for name in self.POSITIONAL for v in _listed(values.pop(name))]
        return positional + flag_argv(self.VERB, {**values, **self.flags}, type(self).__name__)


def _plain(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _listed(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclass(kw_only=True)
class EndpointFields:
    """One endpoint by flags, or many in an endpoints file (see README: Endpoints)."""

    base_url: str | None = None
    endpoints: PathLike | None = None
    azure_endpoint: str | None = None
    deployment: str | None = None
    api_version: str | None = None
    api_key_env: str | None = None


@dataclass(kw_only=True)
class OnlineConfig(VerbConfig, EndpointFields):
    """A stage that sends requests record by record and resumes from its journal."""

    SUMMARY_OF: ClassVar[str | None] = "output"
    input: Paths
    output: PathLike
    concurrency: int | None = None


@dataclass(kw_only=True)
class SampleConfig(OnlineConfig):
    VERB: ClassVar[str] = "sample"
    model: str
    answers_per_question: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(kw_only=True)
class ScoreConfig(OnlineConfig):
    VERB: ClassVar[str] = "score"
    model: str
    min_score: float | None = None


@dataclass(kw_only=True)
class RejectConfig(OnlineConfig):
    VERB: ClassVar[str] = "reject"
    generator_model: str
    scorer_model: str
    answers_per_question: int | None = None
    max_tokens: int | None = None
    min_score: float | None = None
    sft_output: PathLike | None = None


@dataclass(kw_only=True)
class RolloutConfig(OnlineConfig):
    VERB: ClassVar[str] = "rollout"
    model: str
    dataset_name: str | None = None
    num_rollouts: int | None = None
    num_mc: int | None = None
    mc_mode: str | None = None
    max_tokens: int | None = None


@dataclass(kw_only=True)
class PackConfig(VerbConfig):
    VERB: ClassVar[str] = "pack"
    rollouts: Paths
    out_dir: PathLike
    model: str
    target: str | None = None


@dataclass(kw_only=True)
class BatchConfig(VerbConfig, EndpointFields):
    VERB: ClassVar[str] = "batch"
    batch_dir: PathLike
    model: str | None = None
    check_interval: float | None = None


@dataclass(kw_only=True)
class MapConfig(VerbConfig):
    VERB: ClassVar[str] = "map"
    rollouts: Paths
    results: Paths
    output: PathLike


@dataclass(kw_only=True)
class ExportConfig(VerbConfig):
    VERB: ClassVar[str] = "export"
    SUMMARY_OF: ClassVar[str | None] = "output"
    rollouts: Paths
    format: str
    output: PathLike
    labels: str | None = None


@dataclass(kw_only=True)
class ReportConfig(VerbConfig):
    VERB: ClassVar[str] = "report"
    POSITIONAL: ClassVar[tuple[str, ...]] = ("paths",)
    paths: Paths
    out: PathLike


@dataclass(kw_only=True)
class PipelineConfig(VerbConfig):
    VERB: ClassVar[str] = "pipeline"
    config: PathLike
    dry_run: bool = False


def run(config: VerbConfig, *, check: bool = True) -> Summary:
    """Run `config`'s verb in this process and return its Summary; StageError when it fails (`check`)."""
    from rollkit.cli import verb_module

    argv = config.argv()
    code, printed = _call(lambda: verb_module(config.VERB).main(argv))
    if code and check:
        raise StageError(config.VERB, code)
    data = {}
    if config.SUMMARY_OF and not code:
        path = Path(os.fspath(getattr(config, config.SUMMARY_OF)) + ".summary.json")
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return Summary(config.VERB, code, printed, data)


def _call(main: Callable[[], int]) -> tuple[int, str]:
    """A verb's `main`: its exit status (argparse's too) and its stdout, which still shows as it comes.
    Inside a running event loop (a notebook) it runs in a thread, as asyncio.run needs a loop of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _exit_status(main)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(_exit_status, main).result()


def _exit_status(main: Callable[[], int]) -> tuple[int, str]:
    shown = _Tee(sys.stdout)
    with contextlib.redirect_stdout(shown):
        try:
            code = main() or 0
        except SystemExit as exc:  # argparse: bad usage, message on stderr
            code = exc.code if isinstance(exc.code, int) else 2
    return code, shown.kept.getvalue()


class _Tee(io.TextIOBase):
    """Writes through to `stream` and keeps a copy."""

    def __init__(self, stream) -> None:
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def read_records(paths: Paths) -> list[dict]:
    """Every record of JSONL or JSON-list files, folders or globs (any stage's input or output), in order.
    A line or element that is not a JSON object raises rollkit.content.inputs.InputError naming its place."""
    from rollkit.content.inputs import expand_paths

    return [record for path in expand_paths(_plain(paths)) for record in _file_records(path)]


def _file_records(path: Path) -> Iterable[dict]:
    import jsonlines

    from rollkit.content.inputs import InputError
    from rollkit.content.jsonlist import ListSyntaxError, list_elements

    with open(path, encoding="utf-8-sig") as handle:
        is_list = handle.read(4096).lstrip().startswith("[")
        handle.seek(0)
        try:
            items = list(list_elements(handle)) if is_list else list(enumerate(
                jsonlines.Reader(handle).iter(type=dict, skip_empty=True), start=1))
        except jsonlines.InvalidLineError as exc:
            raise InputError(f"{path}:{exc.lineno}: not a JSON object ({exc})") from exc
        except ListSyntaxError as exc:
            raise InputError(f"{path}: {exc}") from exc
    for index, value in items:
        if not isinstance(value, dict):
            raise InputError(f"{path} item {index}: not a JSON object")
        yield value


def write_records(path: PathLike, records: Iterable[dict]) -> Path:
    """Records as a JSONL file, written whole or not at all (a crash leaves the old file)."""
    from rollkit.store.atomic import atomic_write
    from rollkit.store.result_log import dump_line

    with atomic_write(path, "wb") as out:
        for record in records:
            out.write(dump_line(record))
    return Path(path)
