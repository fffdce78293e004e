"""rollkit: turn question datasets into verified LLM/VLM training data.

The `rollkit` command (`rollkit --help`) and this Python API run the same code. In a notebook::

    import rollkit

    summary = rollkit.run(rollkit.RolloutConfig(
        input="questions.jsonl", output="rollouts.jsonl", model="gpt-4.1",
        base_url="http://127.0.0.1:8000/v1", dataset_name="vqav2", num_rollouts=2, num_mc=4))
    summary.records["written"], summary.requests["sent"]
    rollouts = rollkit.read_records("rollouts.jsonl")

Configs, one per verb (fields typed; `flags={...}` for any other flag of the verb): SampleConfig,
ScoreConfig, RejectConfig, RolloutConfig, PackConfig, BatchConfig, MapConfig, ExportConfig,
ReportConfig, PipelineConfig. `run(config)` returns a Summary or raises StageError; `read_records`
and `write_records` read and write the record files. Everything loads on first use, so
`import rollkit` stays light (see rollkit/api.py).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("run", "read_records", "write_records", "Summary", "StageError", "VerbConfig", "SampleConfig",
        "ScoreConfig", "RejectConfig", "RolloutConfig", "PackConfig", "BatchConfig", "MapConfig", "ExportConfig",
        "ReportConfig", "PipelineConfig")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("rollkit.api"), name)
    raise AttributeError(f"module 'rollkit' has no attribute {name!r}")
