"""Trains SmolLM2 with the current TRL's DPOTrainer on a `--format pairs` export (`prompt`, `chosen`,
`rejected`), the images dropped: the model reads text only.

Runs in the trainer env (current TRL): python train_dpo.py MODEL_DIR ROWS.jsonl OUT_DIR
Prints one JSON line: rows, the losses and the reward margins logged.
"""

import json
import sys

from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

model_dir, rows_path, out_dir = sys.argv[1:4]
rows = load_dataset("json", data_files=rows_path, split="train")
rows = rows.select_columns(["prompt", "chosen", "rejected"])
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
config = DPOConfig(output_dir=out_dir, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-5,
                   max_length=1024, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                   seed=0, dataloader_num_workers=0)
trainer = DPOTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer)
trainer.train()
logged = [entry for entry in trainer.state.log_history if "loss" in entry]
print(json.dumps({
    "rows": len(rows),
    "losses": [entry["loss"] for entry in logged],
    "reward_margins": [entry.get("rewards/margins") for entry in logged],
    "optimizer_steps": trainer.state.global_step,
}))
