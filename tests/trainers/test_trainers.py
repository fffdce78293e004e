"""Real trainers train on each export: the seed's real rollouts exported by export_dataset.py, then 2
optimizer steps on CPU with SmolLM2-135M-Instruct in the trainer envs (tests/trainers/envs.py), each
training script run as a subprocess in its env; rows with images train a tiny randomly initialised
Qwen2-VL built from transformers' classes with SmolLM2's tokenizer (no image-reading model can be fetched). Skipped with a reason when an env or the model is
absent, unless ROLLKIT_TRAINER_TIER=1 requires them (tests/trainers/run_tier.sh builds and sets it)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import FIXTURES, ROOT, read_jsonl, run_script

sys.path.insert(0, str(Path(__file__).parent))
from envs import CURRENT_ENV, PRM_ENV, TrainerEnv, model_built, model_dir  # noqa: E402

from rollkit.emulator.testing import run_emulator  # noqa: E402

# A training run takes 1-2 minutes alone; a busy 2-core machine can make that several times longer.
pytestmark = [pytest.mark.trainers, pytest.mark.timeout(1200)]
HERE = Path(__file__).parent
ROLLOUTS = FIXTURES / "rollouts_gpt-4.1.jsonl"
REQUIRED = os.environ.get("ROLLKIT_TRAINER_TIER") == "1"
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false",
           # one thread: two OpenMP threads spinning on a busy 2-core machine ran a step 7x slower
           "OMP_NUM_THREADS": "1"}


def need(env: TrainerEnv) -> Path:
    """The env's python, or a skip (a failure when the tier is required) naming what is missing."""
    missing = [what for what, there in ((f"env {env.folder}", env.built()),
                                        (f"model {model_dir()}", model_built())) if not there]
    if missing:
        message = f"{', '.join(missing)} not built: run tests/trainers/run_tier.sh"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return env.python


def export(output: Path, *args: str, rollouts: Path = ROLLOUTS) -> Path:
    done = run_script("export_dataset.py", "--rollouts", str(rollouts), "--dataset-name", "vqav2",
                      "--output", str(output), *args)
    assert done.returncode == 0, done.stderr
    assert read_jsonl(output), done.stdout
    return output


def train(python: Path, script: str, rows: Path, tmp_path: Path, *extra: str) -> dict:
    """Runs a training script in its env; returns the JSON line it prints last."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({**OFFLINE, "HF_HOME": str(tmp_path / "hf-home")})
    done = subprocess.run([str(python), str(HERE / script), str(model_dir()), str(rows), str(tmp_path / "out"),
                           *extra], capture_output=True, text=True, env=env, timeout=1100, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(script, json.dumps(result))  # the tier's output, for the record
    return result


def system_text(row: dict) -> str:
    return "".join(part.get("text", "") for m in row["messages"] if m["role"] == "system" for part in m["content"])


def assert_trained(result: dict) -> None:
    assert result["optimizer_steps"] == 2
    assert len(result["losses"]) == 2 and all(math.isfinite(loss) for loss in result["losses"])


def test_trl_prm_rows_train_with_trl_1_13_prm_trainer_one_labelled_token_per_step(tmp_path):
    python = need(PRM_ENV)
    rows = export(tmp_path / "prm.jsonl", "--format", "trl-prm", "--labels", "mc-hard")
    result = train(python, "train_prm.py", rows, tmp_path)
    exported = read_jsonl(rows)
    assert result["rows"] == len(exported)
    assert result["steps"] == [len(row["completions"]) for row in exported]
    assert result["labelled_tokens"] == result["steps"]  # every step of every row, exactly one token
    assert result["token_labels"] == [[int(label) for label in row["labels"]] for row in exported]
    assert result["batch_labelled_tokens"] == result["batch_steps"]  # and the collator keeps them all
    assert_trained(result)


@pytest.mark.parametrize("step_tokens", ["+,-", "<+>,<->"])
def test_visualprm_rows_train_with_the_current_trl_sft_trainer_loss_on_one_step_token_per_step(tmp_path, step_tokens):
    python = need(CURRENT_ENV)
    rows = export(tmp_path / "vp.jsonl", "--format", "visualprm", "--chat-schema", "messages", "--labels", "mc-hard",
                  "--step-tokens", step_tokens)
    result = train(python, "train_visualprm.py", rows, tmp_path, step_tokens)
    exported, trained = read_jsonl(rows), result["rows"]
    steps = [row["steps"] for row in trained]
    assert steps == [sum(m["role"] == "assistant" for m in row["messages"]) for row in exported]
    # only the step tokens carry loss, one per step, and they are the row's own good/bad tokens in order
    assert [row["labelled_tokens"] for row in trained] == steps
    assert all(row["labels_match"] for row in trained)
    anywhere = [row["step_token_ids_anywhere"] for row in trained]
    if step_tokens == "+,-":  # hyphens and the system prompt hold them too: unmasking every id is wrong
        assert any(count > step for count, step in zip(anywhere, steps, strict=True))
    else:  # added tokens occur in the step turns and where the system prompt names them, nowhere else
        named = [sum(system_text(row).count(token) for token in step_tokens.split(",")) for row in exported]
        assert anywhere == [step + count for step, count in zip(steps, named, strict=True)]
    assert_trained(result)


def test_visualprm_messages_rows_train_with_their_images_through_a_collator_like_the_seeds(tmp_path):
    """The rows as the seed's sft_qwen.py reads them: `load_dataset(EXPORT_FOLDER)` on a Parquet export, the
    row's image put into the `<image>` item, a Qwen2-VL processor, the loss on the step tokens."""
    python = need(CURRENT_ENV)
    out = tmp_path / "export" / "prm.parquet"
    done = run_script("export_dataset.py", "--rollouts", str(ROLLOUTS), "--format", "visualprm", "--chat-schema",
                      "messages", "--labels", "mc-hard", "--output", str(out))
    assert done.returncode == 0, done.stderr
    result = train(python, "train_visualprm_images.py", out.parent, tmp_path)
    rows = read_jsonl(ROLLOUTS)
    trained = result["rows"]
    assert [row["steps"] for row in trained] == [len(r["steps_with_score"]) for r in rows]
    assert [row["labelled_tokens"] for row in trained] == [row["steps"] for row in trained]
    assert all(row["labels_match"] for row in trained)
    # every row's image reached the processor: one image, one grid, as many image tokens as the grid holds
    for row in trained:
        assert row["image_is_pil"] and row["images_to_processor"] == row["grids"] == 1
        assert row["image_pads_match_grid"] and row["pixel_rows"] > 0
    assert result["vision_weights_changed"] > 0  # the loss flowed back through the image tokens
    assert_trained(result)


def test_sft_rows_train_with_the_current_trl_sft_trainer(tmp_path):
    python = need(CURRENT_ENV)
    rows = export(tmp_path / "sft.jsonl", "--format", "sft", "--labels", "mc-hard")
    result = train(python, "train_sft.py", rows, tmp_path)
    assert result["rows"] == len(read_jsonl(rows))
    assert "input_ids" in result["columns"]  # TRL read `conversations` (from/value) as a conversation
    assert result["batch_loss_tokens"] > 0
    assert_trained(result)


@pytest.fixture(scope="module")
def emulator_rollouts(tmp_path_factory) -> Path:
    """The seed's questions each have only right or only wrong rollouts, so they form no pair: DPO
    trains on rollout.py's rollouts against the emulator (4 per question, right and wrong)."""
    need(CURRENT_ENV)  # no rollouts for a test that skips
    out = tmp_path_factory.mktemp("rollouts") / "rollouts.jsonl"
    questions = ROOT / "input_data_files" / "VQAv2" / "questions.jsonl"
    with run_emulator("--seed", "3", "--answer-key", str(questions)) as url:
        done = run_script("rollout.py", "--input", str(questions), "--output", str(out), "--base-url", f"{url}/v1",
                          "--model_name", "p", "--dataset-name", "vqav2", "--num-rollouts", "4", "--num-mc", "2")
    assert done.returncode == 0, done.stderr
    return out


def test_pairs_train_with_the_current_trl_dpo_trainer(tmp_path, emulator_rollouts):
    python = need(CURRENT_ENV)
    seed_pairs = tmp_path / "seed_pairs.jsonl"
    done = run_script("export_dataset.py", "--rollouts", str(ROLLOUTS), "--dataset-name", "vqav2",
                      "--format", "pairs", "--output", str(seed_pairs))
    assert done.returncode == 0 and not read_jsonl(seed_pairs)  # why the emulator's rollouts are used
    rows = export(tmp_path / "pairs.jsonl", "--format", "pairs", "--labels", "mc-hard", rollouts=emulator_rollouts)
    result = train(python, "train_dpo.py", rows, tmp_path)
    assert result["rows"] == len(read_jsonl(rows))
    assert all(margin is not None and math.isfinite(margin) for margin in result["reward_margins"])
    assert_trained(result)
