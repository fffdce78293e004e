"""pipeline.py against the emulator: the whole way from questions to a training set, SIGKILLed at
three points and rerun; skipping what is done; the dry run; bad configs; failing stages."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from rollkit.emulator.testing import get_stats, reset_stats, run_emulator
from rollkit.net.pricing import model_price
from rollkit.workflow.config import example_config
from tests.support import ROOT, read_jsonl, script_env, start_script

QUESTIONS = ROOT / "input_data_files" / "VQAv2" / "questions.jsonl"
FOLDER = "vqav2_example"
CONCURRENCY = 4


def write_config(path: Path, url: str, root: str, more_datasets: str = "", **extra_rollout) -> Path:
    """The demo's run.toml (example_config) with priced models, so the report's cost can be checked,
    CONCURRENCY requests at a time and quicker batch checks; `more_datasets` and `extra_rollout` added."""
    text = example_config(f"{url}/v1", QUESTIONS, root)
    for key, value in {"model_name": "gpt-4.1-mini", "concurrency": CONCURRENCY, "model": "o4-mini",
                       "check-interval": 0.01}.items():
        text, found = re.subn(rf"^{re.escape(key)} = .*$", f"{key} = {json.dumps(value)}", text, flags=re.MULTILINE)
        assert found == 1, key
    rollout = "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra_rollout.items())
    path.write_text(text.replace("[rollout]\n", f"{more_datasets}[rollout]\n").replace("[pack]\n", f"{rollout}[pack]\n"))
    return path


def pipeline(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "pipeline.py"), *args], capture_output=True, text=True,
                          env=script_env(), timeout=timeout, cwd=ROOT)


def outputs(root: Path) -> dict[str, list[str]]:
    """Every training file's rows, in a canonical order: rows follow the order rollout.py finished
    them in, which concurrency makes differ from run to run even without a crash."""
    training, rows = root / "training_data_files" / FOLDER, {}
    for path in sorted(training.iterdir()):
        if path.suffix == ".parquet":
            rows[path.name] = sorted(json.dumps(r, sort_keys=True) for r in pq.read_table(path).to_pylist())
        elif path.suffix == ".jsonl":
            rows[path.name] = sorted(path.read_text().splitlines())
    return rows


def kill_when(config: Path, ready, what: str) -> None:
    """Start the pipeline and SIGKILL it (its stages die with it) the moment `ready()` holds."""
    process = subprocess.Popen([sys.executable, str(ROOT / "pipeline.py"), "--config", str(config)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=script_env(), cwd=ROOT)
    deadline = time.monotonic() + 120
    while not ready() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert process.poll() is None, f"the pipeline ended before {what}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(0.2)  # the stage's PR_SET_PDEATHSIG kill lands


def ledger_has(root: Path, kind: str) -> bool:
    ledger = root / "batch_files" / FOLDER / "ledger"
    return any(f'"kind": "{kind}"' in p.read_text() for p in ledger.glob("*.jsonl")) if ledger.exists() else False


def test_killed_three_times_the_rerun_equals_an_uninterrupted_run_and_pays_nothing_twice(tmp_path):
    with run_emulator("--seed", "7", "--latency-ms", "40", "--answer-key", str(QUESTIONS)) as url:
        clean = pipeline("--config", str(write_config(tmp_path / "clean.toml", url, "clean")))
        assert clean.returncode == 0, clean.stderr
        reset_stats(url)
        root = tmp_path / "crashed"
        config = write_config(tmp_path / "crashed.toml", url, "crashed")
        journal = root / "rollout_output_data_files" / FOLDER / "rollouts.jsonl.journal.jsonl"
        kill_when(config, lambda: len(read_jsonl(journal)) >= 30, "the rollouts were half done")
        assert len(read_jsonl(root / "rollout_output_data_files" / FOLDER / "rollouts.jsonl")) < 16
        kill_when(config, lambda: ledger_has(root, "created") and not ledger_has(root, "downloaded"),
                  "a batch was created and not yet downloaded")
        kill_when(config, lambda: (root / "pipeline_state" / f"{FOLDER}.map.json").exists(), "map was done")
        finished = pipeline("--config", str(config))
        stats = get_stats(url)
    assert finished.returncode == 0, finished.stderr
    assert "rollout: done in an earlier run, skipped" in finished.stdout
    assert outputs(root) == outputs(tmp_path / "clean") and len(outputs(root)) == 3
    assert all(outputs(root).values())
    # Only the requests in flight at the first kill can be answered twice; the batch was never redone.
    assert stats["duplicates"] <= CONCURRENCY
    assert list(stats["batch"]["created_by_sha256"].values()) == [1]
    assert stats["batch"]["lines_answered"] == 16 and not stats["batch"]["answered_twice"]
    saved = json.loads((root / "pipeline.config.json").read_text())
    assert [s["name"] for s in saved["stages"]] == ["rollout", "pack", "batch", "map", "export:prm.parquet",
                                                    "export:sft.jsonl", "report"]
    page = (root / "report" / "index.html").read_text()
    usage = [json.loads(line)["response"]["body"]["usage"]
             for path in (root / "batch_files" / FOLDER / "results").glob("*.jsonl") for line in path.open()]
    prompt, completion = (sum(u[k] for u in usage) for k in ("prompt_tokens", "completion_tokens"))
    price_in, price_out = model_price("o4-mini")
    assert (f"<td>batch verification</td><td>{root / 'batch_files' / FOLDER}</td><td>o4-mini</td><td>16</td>"
            f"<td>0</td><td>0</td><td>{prompt:,}</td><td>{completion:,}</td>"
            f"<td>${(prompt * price_in + completion * price_out) / 1e6:,.2f}</td>") in page
    assert (root / "verified_output_data_files" / f"{FOLDER}.jsonl").exists()
    again = pipeline("--config", str(config))
    assert again.returncode == 0 and again.stdout.count("done in an earlier run, skipped") == 7
    planned = pipeline("--config", str(config), "--dry-run")  # now packed from the real rollouts
    assert "batch verification: 16 requests (one per rollout), prompt tokens" in planned.stdout
    assert planned.stdout.count("(done in an earlier run)") == 7


def test_sigint_to_the_pipeline_alone_stops_the_running_stage_the_usual_way(tmp_path):
    """`kill -INT` on a pipeline started as `nohup pipeline.py ... &` (SIGINT ignored): the rollout
    stage gets the SIGINT and saves what it finished (not a SIGKILL a quarter second later)."""
    journal = tmp_path / "run" / "rollout_output_data_files" / FOLDER / "rollouts.jsonl.journal.jsonl"
    with run_emulator("--latency-ms", "300") as url:
        config = write_config(tmp_path / "run.toml", url, str(tmp_path / "run"))
        process = start_script("pipeline.py", "--config", str(config), parent_sigint="ignored")
        deadline = time.monotonic() + 120
        while not read_jsonl(journal) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        try:
            _, err = process.communicate(timeout=60)
        finally:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted: finished work is saved" in err  # rollout.py's own Ctrl-C message
    assert "interrupted: run the same command again to resume" in err


def test_dry_run_prints_the_plan_and_calls_nothing(tmp_path):
    second = f"""[[dataset]]
name = "vqav2"
split = "again"
input = "{QUESTIONS}"
rollout = {{ num-rollouts = 3 }}
"""
    with run_emulator("--answer-key", str(QUESTIONS)) as url:
        done = pipeline("--config", str(write_config(tmp_path / "run.toml", url, "out", second)), "--dry-run")
        stats = get_stats(url)
    assert done.returncode == 0, done.stderr
    assert stats["requests"] == 0 and not (tmp_path / "out").exists()
    assert done.stdout.count("dry run: 8 records (0 bad)") == 2 and "cost" in done.stdout
    assert "at most 16 requests (one per rollout), prompt tokens" in done.stdout  # 8 questions x 2 rollouts
    assert "at most 24 requests (one per rollout), prompt tokens" in done.stdout  # the second dataset's own 3
    bound = re.search(r"at most 16 requests \(one per rollout\), prompt tokens ([\d,]+) at most", done.stdout)
    assert int(bound.group(1).replace(",", "")) > 16 * 2048  # each solution may be --max-tokens long
    for folder in ("vqav2_example", "vqav2_again"):
        for stage in ("rollout", "pack", "batch", "map", "export:prm.parquet", "export:sft.jsonl"):
            assert f"[{folder}] {stage}" in done.stdout
        assert f"rollout_output_data_files/{folder}/rollouts.jsonl" in done.stdout
        assert f"verified_output_data_files/{folder}.jsonl" in done.stdout
    assert "[run] report" in done.stdout


def test_a_flag_no_script_has_is_refused_before_anything_runs(tmp_path):
    config = write_config(tmp_path / "run.toml", "http://127.0.0.1:9", "out", **{"num-rolouts": 3})
    done = pipeline("--config", str(config))
    assert done.returncode == 2 and "rollout.py has no flag --num-rolouts" in done.stderr
    assert not (tmp_path / "out" / "rollout_output_data_files").exists()
    (tmp_path / "bad.toml").write_text("root = 3\n")
    assert pipeline("--config", str(tmp_path / "bad.toml")).returncode == 2


def test_a_failing_stage_stops_the_pipeline_with_its_status(tmp_path):
    with run_emulator("--require-key", "right-key", "--answer-key", str(QUESTIONS)) as url:
        done = pipeline("--config", str(write_config(tmp_path / "run.toml", url, "out")))
    assert done.returncode == 1 and "[vqav2_example] rollout failed (exit status 1)" in done.stderr
    assert not (tmp_path / "out" / "pipeline_state" / f"{FOLDER}.rollout.json").exists()
    assert "== [vqav2_example] pack" not in done.stdout


def test_an_outage_stops_the_pipeline_with_exit_3_and_a_rerun_finishes(tmp_path):
    config = write_config(tmp_path / "run.toml", "http://127.0.0.1:1", "out", **{"max-outage": 1})
    with run_emulator("--down-at", "0", "--down-for", "3600", "--answer-key", str(QUESTIONS)) as url:
        config.write_text(config.read_text().replace("http://127.0.0.1:1", url))
        stopped = pipeline("--config", str(config))
    assert stopped.returncode == 3, stopped.stderr
    assert "== [vqav2_example] pack" not in stopped.stdout
    errors = tmp_path / "out" / "rollout_output_data_files" / FOLDER
    error_files = list(errors.glob("*.errors.jsonl"))
    assert error_files and not any(read_jsonl(p) for p in error_files)  # nothing written off
    with run_emulator("--seed", "7", "--answer-key", str(QUESTIONS)) as url:
        config.write_text(re.sub(r'base-url = ".*"', f'base-url = "{url}/v1"', config.read_text()))
        done = pipeline("--config", str(config))
    assert done.returncode == 0, done.stderr
    assert outputs(tmp_path / "out")


def test_the_dry_run_finds_what_a_run_would_trip_on_before_anything_is_paid(tmp_path):
    def dry(text: str, run: bool = False) -> subprocess.CompletedProcess:
        path = tmp_path / "run.toml"
        path.write_text(text)
        return pipeline("--config", str(path), *([] if run else ["--dry-run"]))

    good = write_config(tmp_path / "good.toml", "http://127.0.0.1:9", str(tmp_path / "out")).read_text()
    bad_format = dry(good.replace('format = "sft"', 'format = "trl_prm"'))
    assert bad_format.returncode == 2 and "export:sft.jsonl: " in bad_format.stderr
    assert "invalid choice: 'trl_prm'" in bad_format.stderr and "Traceback" not in bad_format.stderr
    bad_answers = dry(good.replace('num-mc = 4', 'num-mc = 4\nanswer-format = "latex"'), run=True)
    assert bad_answers.returncode == 2 and "rollout: " in bad_answers.stderr and "'latex'" in bad_answers.stderr
    assert not (tmp_path / "out").exists()  # the real run stopped before any stage
    missing = dry(good.replace(str(QUESTIONS), str(tmp_path / "nope.jsonl")))
    assert missing.returncode == 2 and f"input {tmp_path / 'nope.jsonl'} does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr
    single = dry(good.replace("[[dataset]]", "[dataset]"))
    assert single.returncode == 2 and "(line 4): [dataset] is one table" in single.stderr
    renamed = tmp_path / "renamed.jsonl"  # the image under a name rollkit does not guess
    renamed.write_text("".join(json.dumps({("img" if k == "image" else k): v for k, v in r.items()}) + "\n"
                               for r in read_jsonl(QUESTIONS)))
    unmapped = dry(good.replace(str(QUESTIONS), str(renamed)))
    assert unmapped.returncode == 2 and "rollout --dry-run: " in unmapped.stderr
    assert "--image-field img" in unmapped.stderr and "Traceback" not in unmapped.stderr
    typo = dry(good.replace('name = "vqav2"', 'name = "vqav2"\nqestion-field = "q"'))
    assert typo.returncode == 2 and "unknown keys qestion-field (line 6)" in typo.stderr
