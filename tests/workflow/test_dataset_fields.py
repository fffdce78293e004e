"""A dataset's own field names in run.toml reach rollout.py as its field flags."""

from __future__ import annotations

import pytest

from rollkit.workflow.config import ConfigError, load_config

CONFIG = """
root = "runs"
[pack]
model = "judge"
[[dataset]]
name = "math"
input = "math.jsonl"
question-field = "problem"
answer-field = "solution"
rollout = {{ num-rollouts = 2 }}
{extra}
"""


def test_field_keys_become_rollout_flags_and_bad_ones_are_named(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(CONFIG.format(extra=""), encoding="utf-8")
    (dataset,) = load_config(path).datasets
    assert dataset.overrides["rollout"] == {"question-field": "problem", "answer-field": "solution", "num-rollouts": 2}
    path.write_text(CONFIG.format(extra="image-field = 3"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[\[dataset\]\] 1: .*image-field must be strings"):
        load_config(path)
    path.write_text(CONFIG.format(extra="img-field = 'x'"), encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown keys img-field"):
        load_config(path)
