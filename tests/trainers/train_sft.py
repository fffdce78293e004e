"""Trains SmolLM2 with the current TRL's SFTTrainer on a `--format sft` export (`conversations` with
`from`/`value`, which TRL turns into `messages`), the images dropped: the model reads text only.

Runs in the trainer env (current TRL): python train_sft.py MODEL_DIR ROWS.jsonl OUT_DIR
Prints one JSON line: rows, the tokens that carry loss in the first collated batch, the losses.
"""

import json
import sys

from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

model_dir, rows_path, out_dir = sys.argv[1:4]
rows = load_dataset("json", data_files=rows_path, split="train")
rows = rows.select_columns(["conversations"])
tokenizer = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir)
config = SFTConfig(output_dir=out_dir, max_steps=2, per_device_train_batch_size=2, learning_rate=1e-4,
                   max_length=1024, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                   seed=0, dataloader_num_workers=0)
trainer = SFTTrainer(model=model, args=config, train_dataset=rows, processing_class=tokenizer)
batch = trainer.data_collator([trainer.train_dataset[i] for i in range(min(2, len(rows)))])
trainer.train()
print(json.dumps({
    "rows": len(rows),
    "columns": trainer.train_dataset.column_names,
    "batch_loss_tokens": int((batch["labels"] != -100).sum()),
    "losses": [entry["loss"] for entry in trainer.state.log_history if "loss" in entry],
    "optimizer_steps": trainer.state.global_step,
}))
