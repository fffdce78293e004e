"""Flags every script shares, defined once, and the wrapper that turns errors into exit codes.

Exit status: 0 when every record is done or recorded as a permanent error, 1 for a fatal error (bad
credentials, unreadable input, output locked, bad endpoint file), 2 for bad usage (argparse), bad
input (an empty input, a range that selects no record) or a request every record would have refused
(unknown model, a parameter the model refuses: see `refusals`), 3 when every endpoint stayed unreachable
for --max-outage seconds (a plain rerun does the rest).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path

from rollkit.cli.signals import honour_ctrl_c
from rollkit.content.inputs import EmptyInput, FieldMap, InputError, InputItem, check_fields, iter_inputs
from rollkit.net.client import (
    DEFAULT_CUT_OFF_RESENDS,
    DEFAULT_MAX_OUTAGE_SECONDS,
    DEFAULT_REQUEST_TIMEOUT_SECONDS,
    FatalEndpointError,
    OutageError,
    UniformRefusal,
)
from rollkit.net.endpoints import (
    EndpointConfigError,
    EndpointPool,
    endpoint_from_flags,
    load_endpoints_toml,
    resolve_key,
)
from rollkit.net.kinds.reasoning import EFFORTS
from rollkit.net.secrets import RedactingFilter
from rollkit.stages.summary import NothingUseful
from rollkit.store.result_log import LogLockedError

log = logging.getLogger("rollkit")


def prog(verb: str, script: str) -> str:
    """The name usage lines and hints show: the seed's script when it is what runs (`python rollout.py`),
    else `rollkit VERB` (the console command, `python -m rollkit` and the Python API)."""
    return script if Path(sys.argv[0]).name == script else f"rollkit {verb}"


def command_line(verb: str, script: str) -> str:
    """How to run this verb again, for hints: `python rollout.py` or `rollkit rollout`."""
    name = prog(verb, script)
    return f"python {name}" if name == script else name


def new_parser(verb: str, script: str, description: str | None) -> argparse.ArgumentParser:
    """A verb's parser, its module docstring as the description (kept as written)."""
    return argparse.ArgumentParser(prog=prog(verb, script), description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_endpoint_flags(parser: argparse.ArgumentParser, prefix: str = "", rate_limits: bool = True) -> None:
    """`--base-url`, `--endpoints`, `--azure-endpoint` and their options; `prefix` names a role
    (e.g. `scorer-`) when a script talks to two sets of endpoints."""
    group = parser.add_argument_group(f"{prefix or 'endpoint '}options".replace("-", " "))
    dest = prefix.replace("-", "_")
    group.add_argument(f"--{prefix}base-url", dest=f"{dest}base_url",
                       help="any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1")
    group.add_argument(f"--{prefix}endpoints", dest=f"{dest}endpoints", metavar="FILE.toml",
                       help="many endpoints: [[endpoint]] tables (kind, base_url, model or deployment, "
                            "api_version, key_env, rpm, tpm)")
    group.add_argument(f"--{prefix}azure-endpoint", dest=f"{dest}azure_endpoint",
                       help="Azure OpenAI resource URL; key from AZURE_API_KEY")
    group.add_argument(f"--{prefix}deployment", dest=f"{dest}deployment", help="Azure deployment name")
    group.add_argument(f"--{prefix}api-version", dest=f"{dest}api_version", help="Azure api-version")
    group.add_argument(f"--{prefix}api-key-env", dest=f"{dest}api_key_env",
                       help="environment variable holding the key (default OPENAI_API_KEY or AZURE_API_KEY)")
    if not rate_limits:  # the Batch API has enqueued-token quotas instead
        return
    group.add_argument(f"--{prefix}rpm", dest=f"{dest}rpm", type=float, default=0,
                       help="a ceiling on requests per minute (default 0: learn the limit from the server)")
    group.add_argument(f"--{prefix}tpm", dest=f"{dest}tpm", type=float, default=0,
                       help="a ceiling on tokens per minute (default 0: learn the limit from the server)")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run options")
    group.add_argument("--retry-failed", action="store_true",
                       help="redo records that failed or came back incomplete in an earlier run")
    group.add_argument("--dry-run", action="store_true",
                       help="read the input, print requests, tokens and cost; call nothing")
    group.add_argument("--price-in", type=float, help="dollars per 1M prompt tokens (dry run)")
    group.add_argument("--price-out", type=float, help="dollars per 1M completion tokens (dry run)")
    group.add_argument("--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT_SECONDS,
                       help="seconds per request, as the openai SDK (default: 600; reasoning models take minutes)")
    group.add_argument("--cut-off-resends", type=int, default=DEFAULT_CUT_OFF_RESENDS, metavar="N",
                       help="a request cut off by the timeout on a server that still answers may be billed: "
                            "send it again at most N times, doubling the timeout each time (default: 2)")
    group.add_argument("--max-attempts", type=int, default=5, help="tries per request on 5xx/timeouts")
    group.add_argument("--max-outage", type=float, default=DEFAULT_MAX_OUTAGE_SECONDS, metavar="SECONDS",
                       help="stop (exit 3) once every endpoint has been unreachable this long; "
                            "what is not done stays undone for a plain rerun (default: 600)")
    group.add_argument("--backoff", type=float, default=1.0,
                       help="first retry wait in seconds; doubles each try, with jitter, up to 30 s")
    group.add_argument("--window-seconds", type=float, default=60.0,
                       help="length of the rate-limit window (60 for real services; the emulator can shrink it)")
    group.add_argument("--max-image-side", type=int, help="downscale images so the longest side fits")
    group.add_argument("--reasoning-effort", choices=EFFORTS,
                       help="how long reasoning models (o1, o3, o4-mini, gpt-5) think; other models are sent "
                            "no effort")
    add_image_root_flag(group)
    # The seed's range: record numbers from 1, both ends included (--start 1 --end 100, then
    # --start 101 --end 200 on the next machine). Kept 0-based, end excluded, inside (args.start).
    group.add_argument("--start", type=_from_one_based, metavar="N",
                       help="first input record to take, counted from 1 (default: 1)")
    group.add_argument("--end", type=_positive, metavar="N", help="last input record to take, included")
    group.add_argument("-v", "--verbose", action="store_true", help="log every retry and failure")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: records are numbered from 1")
    return value


def _from_one_based(text: str) -> int:
    return _positive(text) - 1


def add_image_root_flag(parser) -> None:
    parser.add_argument("--image-root", metavar="DIR",
                        help="folder relative image paths start from (default: the input file's folder)")


def build_pool(args: argparse.Namespace, model: str | None, port: int | None = None,
               prefix: str = "") -> EndpointPool:
    """The endpoints for one role, from `--{prefix}endpoints` or the single-endpoint flags."""
    dest = prefix.replace("-", "_")
    value = lambda name: getattr(args, f"{dest}{name}", None)  # noqa: E731
    if value("endpoints"):
        endpoints = load_endpoints_toml(value("endpoints"), default_model=model)
    else:
        endpoints = [endpoint_from_flags(
            base_url=value("base_url"), port=port, azure_endpoint=value("azure_endpoint"), model=model,
            deployment=value("deployment"), api_version=value("api_version"),
            key_env=value("api_key_env"), rpm=value("rpm") or 0, tpm=value("tpm") or 0)]
    for endpoint in endpoints:
        endpoint.window_seconds = args.window_seconds
        resolve_key(endpoint)
    return EndpointPool(endpoints)


def build_judge_pool(args: argparse.Namespace, prefix: str, model: str | None, port: int | None,
                     generator_model: str | None, generator_port: int | None) -> EndpointPool:
    """A judge's endpoints: its own `--{prefix}*` endpoint flags when any is given, else the
    generator's; there, on Azure, a judge model names its own deployment."""
    dest = prefix.replace("-", "_")
    if any(getattr(args, f"{dest}{flag}", None) for flag in ("base_url", "endpoints", "azure_endpoint")):
        return build_pool(args, model, port, prefix=prefix)
    shared = argparse.Namespace(**{**vars(args), "deployment": None if model else args.deployment})
    return build_pool(shared, model or generator_model, port or generator_port)


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger("rollkit")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


FATAL_ERRORS = (FatalEndpointError, EndpointConfigError, InputError, LogLockedError, NothingUseful)
RESUME_HINT = "finished work is saved; run the same command again to resume"
EXIT_OUTAGE = 3


def run_main(main: Coroutine | Callable[[], int], verbose: bool = False, fatal: tuple = ()) -> int:
    """Run a stage (a coroutine, or a plain function for the batch processor's synchronous loop);
    fatal errors, the shared ones and the caller's `fatal`, print one clear line and exit 1.
    Ctrl-C prints how to resume and exits 130, however the stage was started (honour_ctrl_c)."""
    honour_ctrl_c()  # before asyncio.run, which adds its own Ctrl-C handling only over Python's
    setup_logging(verbose)
    try:
        result = asyncio.run(main) if asyncio.iscoroutine(main) else main()
        return result or 0
    except OutageError as exc:
        print(f"stopped by an outage: {exc}; {RESUME_HINT}", file=sys.stderr)
        return EXIT_OUTAGE
    except UniformRefusal as exc:  # a mistake in the command (model name, parameters): fix it, run again
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EmptyInput as exc:  # bad input, not a failure of the run
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (*FATAL_ERRORS, *fatal) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: {RESUME_HINT}", file=sys.stderr)
        return 130


def add_io_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input_file", "--input", dest="input", nargs="+", required=True,
                        help="JSON list or JSONL file(s), folders or globs")
    parser.add_argument("--output_file", "--output", dest="output", required=True, help="output JSONL")
    parser.add_argument("--concurrency", "--concurrent_requests", dest="concurrency", type=int, default=16,
                        help="requests in flight at once (seed 004's --concurrent_requests/--concurrency)")
    add_field_flags(parser)


def add_field_flags(parser: argparse.ArgumentParser) -> None:
    """`--question-field` and the others: which of a dataset's fields rollkit reads as what."""
    group = parser.add_argument_group("input fields (default: question, answer/answers, images/image/image_path, "
                                      "options; conversations and OpenAI messages are read as they are)")
    group.add_argument("--question-field", metavar="NAME", help="the field holding the question, e.g. problem")
    group.add_argument("--answer-field", metavar="NAME", help="the field holding the reference answer, e.g. solution")
    group.add_argument("--image-field", metavar="NAME",
                       help="the field holding the image: a path, a URL, a list of them, or image bytes "
                            "(none: the dataset has no images, whatever its fields look like)")
    group.add_argument("--options-field", metavar="NAME[,NAME...]",
                       help="the field holding multiple-choice options (a list or an object of letter: text), "
                            "or one column per option, e.g. A,B,C,D (none: the fields that look like options are not)")


def field_map(args: argparse.Namespace) -> FieldMap:
    return FieldMap.from_flags(getattr(args, "question_field", None), getattr(args, "answer_field", None),
                               getattr(args, "image_field", None), getattr(args, "options_field", None))


def read_inputs(args: argparse.Namespace, *, needs_answer: bool = False,
                needs: tuple[str, ...] = ()) -> Iterator[InputItem]:
    """The stage's input records, with its field flags applied; first, the first record of every input
    is checked (FieldError, exit 2, naming the input, the fields it has and the flag to map them).
    `needs_answer`: the stage scores against a reference answer; `needs`: record fields a prompt
    template fills from."""
    fields = field_map(args)
    check_fields(args.input, fields, needs_answer=needs_answer, needs=needs)
    return iter_inputs(args.input, start=getattr(args, "start", None), end=getattr(args, "end", None),
                       image_root=getattr(args, "image_root", None), fields=fields)


def add_sampling_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--answers_per_question", "--answers-per-question", dest="n", type=int, default=4,
                        help="candidates to sample per question")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    parser.add_argument("--max-tokens", type=int, default=2048, help="max tokens per candidate")
    parser.add_argument("--drop-truncated", action="store_true",
                        help="leave candidates cut off at --max-tokens out (default: keep them as they stand, "
                             "with finish_reason length in `candidates`)")
    add_request_shape_flags(parser)


def add_request_shape_flags(parser) -> None:
    """`--no-n` and `--no-seed`, for servers that refuse those request fields."""
    parser.add_argument("--no-n", action="store_true",
                        help="one request per sample instead of one request with n (for servers without n)")
    parser.add_argument("--no-seed", action="store_true",
                        help="do not send a per-sample `seed` (for servers that reject it)")


def endpoints_take_n(args: argparse.Namespace) -> bool:
    """Whether to ask for several choices per request: not with --no-n, nor when any endpoint in
    --endpoints says `supports_n = false` (the pool may send a request to any of them)."""
    if args.no_n:
        return False
    endpoints = getattr(args, "endpoints", None)
    return not endpoints or all(e.supports_n for e in load_endpoints_toml(endpoints))


def add_selection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scorer-max-tokens", type=int, default=512,
                        help="max tokens per judge reply (a PRM is asked for 1)")
    parser.add_argument("--min-score", type=float, help="keep the best candidate only if it scores this much (0-10 for a judge; "
                             "0-1 with --scorer-kind prm, the aggregate of its step scores)")
    parser.add_argument("--sft-output", help="write the kept pairs as `conversations` JSONL for SFT")
