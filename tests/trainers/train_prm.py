"""Trains SmolLM2 as a token classifier with TRL 1.13's PRMTrainer on a `--format trl-prm` export.

Runs in the trainer env (trl==1.13.0), not in rollkit's: python train_prm.py MODEL_DIR ROWS.jsonl OUT_DIR
Prints one JSON line: rows, steps (over all rows), labelled tokens and their labels (labels != -100 over the
whole tokenized set and in the collated batch of the first 4 rows), the steps of those rows, and the losses.
"""

import json
import sys

from datasets import load_dataset
from transformers import AutoModelForTokenClassification, AutoTokenizer
from trl.experimental.prm import PRMConfig, PRMTrainer

model_dir, rows_path, out_dir = sys.argv[1:4]
rows = load_dataset("json", data_files=rows_path, split="train")
steps = [len(completions) for completions in rows["completions"]]
tokenizer = AutoTokenizer.from_pretrained(model_dir)
if tokenizer.pad_token is None:
    tokenizer.pad_token = tokenizer.eos_token
model = AutoModelForTokenClassification.from_pretrained(model_dir, num_labels=2)
model.config.pad_token_id = tokenizer.pad_token_id
config = PRMConfig(output_dir=out_dir, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-4,
                   max_length=None, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                   seed=0, dataloader_num_workers=0)
trainer = PRMTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer)
labelled = [[label for label in labels if label != -100] for labels in trainer.train_dataset["labels"]]
batch = trainer.data_collator([trainer.train_dataset[i] for i in range(min(4, len(rows)))])
trainer.train()
print(json.dumps({
    "rows": len(rows),
    "steps": steps,
    "labelled_tokens": [len(labels) for labels in labelled],
    "token_labels": labelled,
    "batch_labelled_tokens": int((batch["labels"] != -100).sum()),
    "batch_steps": sum(steps[:4]),
    "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
    "optimizer_steps": trainer.state.global_step,
}))
