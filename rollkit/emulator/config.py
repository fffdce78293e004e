"""The emulator's settings, one frozen dataclass filled from the command line (see __main__)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rollkit.emulator.generation import GenerationSettings
from rollkit.emulator.model_rules import ModelRules
from rollkit.emulator.ratelimit import MeterSettings

# Only loopback: the emulator accepts any key and answers with synthetic data, so it must never be
# reachable from another machine.
ALLOWED_HOST = "127.0.0.1"


@dataclass(frozen=True)
class FaultRates:
    """Probability (0..1) of each injected fault, drawn independently per request attempt."""

    rate_limit: float = 0.0  # 429 regardless of budget
    server_error: float = 0.0  # 500/502/503
    timeout: float = 0.0  # sleep `timeout_sleep` seconds, then answer
    reset: float = 0.0  # close the connection without a response
    malformed: float = 0.0  # 200 with a truncated JSON body
    content_filter: float = 0.0  # 400 content_filter error or 200 with finish_reason content_filter
    length: float = 0.0  # 200 with finish_reason length and truncated content


@dataclass(frozen=True)
class BatchSettings:
    """The Files and Batches APIs: pace, limits, quota and faults (see batches.py)."""

    time_scale: float = 1.0  # multiplies every batch phase; 1.0 runs a 10-line batch in about 2 s
    enqueued_tokens: int = 0  # prompt tokens of unfinished batches allowed per model/deployment; 0 = no limit
    fail_fast: bool = False  # Azure routes refuse an over-quota create with 400 instead of failing in validation
    max_lines: int = 0  # lines per input file; 0 = the service's own (50,000 OpenAI, 100,000 Azure)
    max_bytes: int = 200 * 1024 * 1024  # bytes per uploaded file
    fault_fail: float = 0.0  # a batch fails part way (output of the lines done so far)
    fault_expire: float = 0.0  # a batch expires part way (partial output, batch_expired errors)
    fault_stall: float = 0.0  # a batch stops making progress until it is cancelled
    fault_line_500: float = 0.0  # a line is answered with a 500 in the error file
    fault_content_filter: float = 0.0  # a line's prompt is refused by the content filter (always, for that line)
    files_list: bool = True  # False: GET /files answers 404 (servers without files.list)
    batches_list: bool = True  # False: GET /batches answers 404


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything one emulator process needs; defaults match `python -m rollkit.emulator --help`."""

    host: str = ALLOWED_HOST
    port: int = 0  # 0: the OS picks a free port, printed on the listening line
    seed: int = 0
    rpm: int = 0  # 0 = unlimited
    tpm: int = 0  # 0 = unlimited
    window_seconds: float = 60.0  # length of the rate-limit "minute"; tests shrink it
    burst_seconds: float = 10.0  # share of a minute's budget usable at once (Azure's longer window)
    count_rejected: bool = False  # a 429 still uses up a request of the budget, as on OpenAI
    header_style: str = "openai"  # openai | azure (remaining-* only) | none
    unknown_share: float = 0.0  # share of remaining-* header values sent as -1
    retry_after: bool = True  # 429s carry retry-after(-ms); some proxies send nothing
    down_at: float | None = None  # seconds after start when the server goes down (refuses connections)
    down_for: float = 0.0  # how long it stays down
    latency_ms: float = 0.0  # mean simulated latency of a successful call
    timeout_sleep: float = 30.0  # how long a timeout fault stalls; longer than any client timeout
    faults: FaultRates = FaultRates()
    p_correct: float = 0.6
    p_continue_correct: float = 0.8
    judge_garbage: float = 0.02
    answer_key: Path | None = None
    # If set, only this key is accepted (tests check 401). repr=False: a key must never reach a log.
    require_key: str | None = field(default=None, repr=False)
    no_auth: bool = False  # accept requests without any key, like vLLM without --api-key
    batch: BatchSettings = BatchSettings()
    realism: bool = False  # per-question difficulty, recoverable wrong steps, varied lengths (policy.py)
    generation: GenerationSettings = GenerationSettings()  # speed and queueing (generation.py)
    rules: ModelRules = ModelRules()  # real servers' and models' rules (model_rules.py)
    prm_prompt_logprobs: bool = True  # a PRM model (prm.py) answers prompt_logprobs; False: 400, as OpenAI
    prm_logprobs: bool = True  # False: logprobs null, a server without them

    def meter(self) -> MeterSettings:
        return MeterSettings(self.rpm, self.tpm, self.window_seconds, self.burst_seconds,
                             self.count_rejected, self.header_style, self.unknown_share)
